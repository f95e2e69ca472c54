// Pooling over the uint8 NHWC values of an integer chain (baseline code: the
// loops over channels vectorize on every architecture's baseline).
#pragma once

#include <cstddef>
#include <cstdint>

namespace qk::conv {

struct PoolShape {
  size_t batch, height, width, channels;  // the input, NHWC
  size_t kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w;
  size_t pad_top, pad_left;
  size_t out_h, out_w;  // from the caller's geometry (ceil_mode included)
};

// out (batch, out_h, out_w, channels) = the max over each window's taps that
// fall inside the image. Padding needs no value: quantization is monotone,
// so a window's max is its largest real value, and every window of a valid
// geometry holds one (a window of padding alone would give 0, the smallest
// uint8).
void max_pool_u8(const uint8_t* x, const PoolShape& s, uint8_t* out);

// The same on float32 values (NCHW as batch * channels images of one
// channel, or NHWC), as NumPy's maximum over the taps from -inf: NaN
// propagates, a window of padding alone gives -inf.
void max_pool_f32(const float* x, const PoolShape& s, float* out);

// out (batch, channels) = each image's channel sums over its `pixels`
// (x: batch x pixels x channels), exact: the caller keeps 255 * pixels
// within int32.
void channel_sums_u8(const uint8_t* x, size_t batch, size_t pixels, size_t channels, int32_t* out);

}  // namespace qk::conv
