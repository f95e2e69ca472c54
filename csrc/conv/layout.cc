#include "conv/layout.h"

#include "parallel/parallel.h"

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

namespace qk::conv {
namespace {

// out[p * rows + r] = x[r * cols + p] for rows [r0, r1) and columns [p0, p1).
template <typename T>
void transpose_block(const T* x, size_t rows, size_t cols, size_t r0, size_t r1, size_t p0, size_t p1, T* out) {
  for (size_t p = p0; p < p1; ++p)
    for (size_t r = r0; r < r1; ++r) out[p * rows + r] = x[r * cols + p];
}

#if defined(__x86_64__)
// Floats in 4 x 4 blocks of SSE registers (a chain's float output to NCHW
// moved one element at a time: 0.5 ms for a 2 MB batch), the edges as above.
void transpose_block(const float* x, size_t rows, size_t cols, size_t r0, size_t r1, size_t p0, size_t p1,
                     float* out) {
  const size_t r4 = r0 + (r1 - r0) / 4 * 4, p4 = p0 + (p1 - p0) / 4 * 4;
  for (size_t p = p0; p < p4; p += 4)
    for (size_t r = r0; r < r4; r += 4) {
      __m128 a = _mm_loadu_ps(x + r * cols + p), b = _mm_loadu_ps(x + (r + 1) * cols + p);
      __m128 c = _mm_loadu_ps(x + (r + 2) * cols + p), d = _mm_loadu_ps(x + (r + 3) * cols + p);
      _MM_TRANSPOSE4_PS(a, b, c, d);
      _mm_storeu_ps(out + p * rows + r, a);
      _mm_storeu_ps(out + (p + 1) * rows + r, b);
      _mm_storeu_ps(out + (p + 2) * rows + r, c);
      _mm_storeu_ps(out + (p + 3) * rows + r, d);
    }
  transpose_block<float>(x, rows, cols, r4, r1, p0, p1, out);
  transpose_block<float>(x, rows, cols, r0, r4, p4, p1, out);
}
#endif

// out[p * rows + r] = x[r * cols + p] for a (rows, cols) matrix, in tiles of
// kTile x kTile so reads and writes both stay within a few cache lines.
template <typename T>
void transpose(const T* x, size_t rows, size_t cols, T* out) {
  constexpr size_t kTile = 32;
  for (size_t p0 = 0; p0 < cols; p0 += kTile) {
    const size_t p1 = p0 + kTile < cols ? p0 + kTile : cols;
    for (size_t r0 = 0; r0 < rows; r0 += kTile)
      transpose_block(x, rows, cols, r0, r0 + kTile < rows ? r0 + kTile : rows, p0, p1, out);
  }
}

// The same for a compile-time number of rows (an image's few channels, the
// input of a network's first convolution): GCC vectorizes the interleave of
// R planes, where the general loop moves one byte at a time.
template <size_t R, typename T>
void interleave(const T* x, size_t cols, T* out) {
  for (size_t p = 0; p < cols; ++p)
    for (size_t r = 0; r < R; ++r) out[p * R + r] = x[r * cols + p];
}

template <typename T>
void transpose_image(const T* x, size_t rows, size_t cols, T* out) {
  switch (rows) {
    case 1: return interleave<1>(x, cols, out);
    case 2: return interleave<2>(x, cols, out);
    case 3: return interleave<3>(x, cols, out);
    case 4: return interleave<4>(x, cols, out);
    default: return transpose(x, rows, cols, out);
  }
}

template <typename T>
void transpose_images(const T* x, size_t batch, size_t rows, size_t cols, T* out) {
  const size_t image = rows * cols;
  parallel_for(batch, image >= (size_t(1) << 16) ? 1 : (size_t(1) << 16) / (image ? image : 1), 1,
               [&](size_t begin, size_t end) {
                 for (size_t b = begin; b < end; ++b) transpose_image(x + b * image, rows, cols, out + b * image);
               });
}

}  // namespace

void nchw_to_nhwc(const uint8_t* x, size_t batch, size_t channels, size_t pixels, uint8_t* out) {
  transpose_images(x, batch, channels, pixels, out);
}

void nhwc_to_nchw(const float* x, size_t batch, size_t pixels, size_t channels, float* out) {
  transpose_images(x, batch, pixels, channels, out);
}

}  // namespace qk::conv
