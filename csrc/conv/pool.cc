#include "conv/pool.h"

#include <cstring>

#include "parallel/parallel.h"

namespace qk::conv {
namespace {

// Tap (i, j) of output (oy, ox): the input pixel, or false where it is padding.
bool tap(const PoolShape& s, size_t oy, size_t ox, size_t i, size_t j, size_t* y, size_t* x) {
  const size_t py = oy * s.stride_h + i * s.dilation_h, px = ox * s.stride_w + j * s.dilation_w;
  if (py < s.pad_top || px < s.pad_left) return false;
  *y = py - s.pad_top;
  *x = px - s.pad_left;
  return *y < s.height && *x < s.width;
}

void max_row(const uint8_t* __restrict src, size_t c, uint8_t* __restrict acc) {
  for (size_t k = 0; k < c; ++k) acc[k] = src[k] > acc[k] ? src[k] : acc[k];
}

}  // namespace

void max_pool_u8(const uint8_t* x, const PoolShape& s, uint8_t* out) {
  const size_t c = s.channels, rows = s.batch * s.out_h;
  const size_t work = s.out_w * c * s.kernel_h * s.kernel_w;
  parallel_for(rows, work >= (size_t(1) << 15) ? 1 : (size_t(1) << 15) / (work ? work : 1), 1,
               [&](size_t begin, size_t end) {
                 for (size_t r = begin; r < end; ++r) {
                   const size_t b = r / s.out_h, oy = r % s.out_h;
                   const uint8_t* image = x + b * s.height * s.width * c;
                   for (size_t ox = 0; ox < s.out_w; ++ox) {
                     uint8_t* acc = out + (r * s.out_w + ox) * c;
                     std::memset(acc, 0, c);
                     for (size_t i = 0; i < s.kernel_h; ++i)
                       for (size_t j = 0; j < s.kernel_w; ++j) {
                         size_t y, xx;
                         if (tap(s, oy, ox, i, j, &y, &xx)) max_row(image + (y * s.width + xx) * c, c, acc);
                       }
                   }
                 }
               });
}

}  // namespace qk::conv
