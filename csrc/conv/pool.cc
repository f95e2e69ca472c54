#include "conv/pool.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "parallel/parallel.h"

namespace qk::conv {
namespace {

// The outputs [first, last) of a row whose tap at column offset `off`
// (j * dilation) lands inside the image: pad_left <= ox * stride + off <
// pad_left + width.
void tap_range(const PoolShape& s, size_t off, size_t* first, size_t* last) {
  const size_t sw = s.stride_w, limit = s.width + s.pad_left;
  *first = off >= s.pad_left ? 0 : (s.pad_left - off + sw - 1) / sw;
  *last = off >= limit ? 0 : (limit - off + sw - 1) / sw;
  if (*last > s.out_w) *last = s.out_w;
}

// Per output row, tap by tap over the outputs it reaches (the tap's bounds
// worked out once per row and tap, not per pixel: at 16 channels that was
// most of the time), each output starting at `init`, which no tap loses to
// (the identity of max_of: taps in padding are skipped).
template <class T, class Max>
void max_pool(const T* x, const PoolShape& s, T init, Max max_of, T* out) {
  const size_t c = s.channels, rows = s.batch * s.out_h;
  const size_t work = s.out_w * c * s.kernel_h * s.kernel_w;
  parallel_for(rows, work >= (size_t(1) << 15) ? 1 : (size_t(1) << 15) / (work ? work : 1), 1,
               [&](size_t begin, size_t end) {
                 for (size_t r = begin; r < end; ++r) {
                   const size_t b = r / s.out_h, oy = r % s.out_h;
                   T* row_out = out + r * s.out_w * c;
                   std::fill(row_out, row_out + s.out_w * c, init);
                   for (size_t i = 0; i < s.kernel_h; ++i) {
                     const size_t py = oy * s.stride_h + i * s.dilation_h;
                     if (py < s.pad_top || py - s.pad_top >= s.height) continue;
                     const T* in_row = x + (b * s.height + (py - s.pad_top)) * s.width * c;
                     for (size_t j = 0; j < s.kernel_w; ++j) {
                       const size_t off = j * s.dilation_w;
                       size_t first, last;
                       tap_range(s, off, &first, &last);
                       if (first >= last) continue;
                       const T* __restrict src = in_row + (first * s.stride_w + off - s.pad_left) * c;
                       T* __restrict acc = row_out + first * c;
                       if (c == 1) {  // NCHW: one value per pixel, a strided run of the row
                         const size_t sw = s.stride_w;
                         for (size_t ox = 0; ox < last - first; ++ox) acc[ox] = max_of(acc[ox], src[ox * sw]);
                         continue;
                       }
                       for (size_t ox = first; ox < last; ++ox, src += s.stride_w * c, acc += c)
                         for (size_t k = 0; k < c; ++k) acc[k] = max_of(acc[k], src[k]);
                     }
                   }
                 }
               });
}

}  // namespace

// uint8 max from 0, the identity of uint8 max (every window holds a real
// value, so padding never wins).
void max_pool_u8(const uint8_t* x, const PoolShape& s, uint8_t* out) {
  max_pool<uint8_t>(x, s, 0, [](uint8_t a, uint8_t b) { return b > a ? b : a; }, out);
}

// NumPy's maximum, tap after tap from -inf: NaN propagates, and of equal
// values (+0 and -0) the later tap's.
void max_pool_f32(const float* x, const PoolShape& s, float* out) {
  max_pool<float>(x, s, -std::numeric_limits<float>::infinity(),
                  [](float a, float b) { return (a > b || a != a) ? a : b; }, out);
}

// Pixel by pixel, each adding its row of channels to the image's sums (the
// loop over channels vectorizes; one global pool of a batch-1 ResNet is
// 4 KiB, so no threads).
void channel_sums_u8(const uint8_t* x, size_t batch, size_t pixels, size_t channels, int32_t* out) {
  for (size_t b = 0; b < batch; ++b) {
    int32_t* __restrict acc = out + b * channels;
    std::memset(acc, 0, channels * sizeof(int32_t));
    for (size_t p = 0; p < pixels; ++p) {
      const uint8_t* __restrict src = x + (b * pixels + p) * channels;
      for (size_t k = 0; k < channels; ++k) acc[k] += src[k];
    }
  }
}

}  // namespace qk::conv
