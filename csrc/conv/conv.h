// INT8 convolution over NHWC images: uint8 activations with a zero point,
// int8 weights, exact int32 sums, then gemm.h's epilogues per output channel.
//  - conv2d: implicit GEMM. Rows of A are gathered from the image per output
//    pixel (taps in (kh, kw, c) order, padding filled with the input zero
//    point, which the epilogue's zero-point correction turns into exact
//    zeros) a block at a time, and multiplied on the GEMM micro-kernels with
//    each group's packed weight; a 1x1, stride-1, unpadded convolution reads
//    the image itself as A.
//  - depthwise_conv2d: one input channel per output channel (K = kh * kw per
//    channel does not fit a GEMM tile): direct int16 products summed in
//    int32 across the channels of a pixel, per ISA (depthwise_<isa>.cc).
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpu/isa.h"
#include "gemm/gemm.h"

namespace qk::conv {

struct Shape {
  size_t batch, height, width, channels;  // the input, NHWC
  size_t kernel_h, kernel_w;
  size_t stride_h, stride_w, dilation_h, dilation_w;
  size_t pad_top, pad_left, pad_bottom, pad_right;
  size_t groups, out_channels;

  // The caller has checked that the dilated kernel fits the padded input.
  size_t out_h() const { return (height + pad_top + pad_bottom - dilation_h * (kernel_h - 1) - 1) / stride_h + 1; }
  size_t out_w() const { return (width + pad_left + pad_right - dilation_w * (kernel_w - 1) - 1) / stride_w + 1; }
};

// The ISA path of the depthwise kernels under the current cap.
Isa depthwise_isa();

// weights[g]: group g's B, K = kernel_h * kernel_w * (channels / groups) rows
// in (kh, kw, c) order by out_channels / groups columns. `ep` has
// out_channels scales and biases; its a_zero_point is the input zero point.
// `out` is (batch, out_h, out_w, out_channels): int32, float or bytes.
void conv2d(const uint8_t* x, const Shape& s, const gemm::PackedWeight* const* weights, const gemm::Epilogue& ep,
            void* out);

// groups == channels == out_channels; taps is (kernel_h * kernel_w, channels) int16.
void depthwise_conv2d(const uint8_t* x, const Shape& s, const int16_t* taps, const gemm::Epilogue& ep, void* out);

}  // namespace qk::conv
