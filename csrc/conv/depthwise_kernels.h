// Depthwise convolution kernels, one table per ISA (depthwise_<isa>.cc, all
// compiled from depthwise_kernel.inc with that ISA's flags).
#pragma once

#include <cstddef>
#include <cstdint>

namespace qk::conv {

// One output row (one image, one output y) of a depthwise convolution.
struct DepthwiseRow {
  const uint8_t* const* rows;  // kernel_h input rows (width x channels); `padding` where the row is padding
  const uint8_t* padding;      // width x channels bytes of the input zero point: (zp - zp) * w = 0
  size_t width, channels, out_w;
  size_t kernel_h, kernel_w, stride_w, dilation_w, pad_left;
  int32_t zero_point;   // of the input
  const int16_t* taps;  // (kernel_h * kernel_w, channels)
  int32_t* sums;        // out_w x channels, exact: sum over taps of (x - zp) * w
  const uint8_t** tap_pixels;  // kernel_h * kernel_w pointers: the kernel's workspace
};

struct DepthwiseKernels {
  void (*row)(const DepthwiseRow& r);
};

// Defined only on their architecture (cpu/isa_list.h).
namespace scalar { extern const DepthwiseKernels kernels; }
namespace avx2 { extern const DepthwiseKernels kernels; }
namespace avx512 { extern const DepthwiseKernels kernels; }
namespace neon { extern const DepthwiseKernels kernels; }

}  // namespace qk::conv
