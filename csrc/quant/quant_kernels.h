// Quantize / dequantize / fake-quantize kernels over one run of contiguous
// elements, one table per ISA (each defined in quant_<isa>.cc).
//
// Parameters come either as one value for the whole run (`scale[0]`,
// `zero_point[0]`) or, for per-element kernels, as arrays as long as the run
// (the driver expands per-channel parameters when channels are short).
// Zero points are passed as float: they are small integers, exact in float32.
#pragma once

#include <cstddef>
#include <cstdint>

#include "quant/add.h"

namespace qk::quant {

// q = clip(rint(x / scale) + zero_point, qmin, qmax), NaN -> zero_point.
using QuantizeFn = void (*)(const float* x, void* q, size_t n, const float* scale,
                            const float* zero_point, float qmin, float qmax);
// x = float(q - zero_point) * scale. `stream`: the output is too large to
// stay in cache, so a path may write it with non-temporal stores.
using DequantizeFn = void (*)(const void* q, float* x, size_t n, const float* scale,
                              const float* zero_point, bool stream);
// y = (clip(rint(x / scale) + zero_point, qmin, qmax) - zero_point) * scale
using FakeQuantizeFn = void (*)(const float* x, float* y, size_t n, const float* scale,
                                const float* zero_point, float qmin, float qmax, bool stream);

// The quantized Add of two uint8 runs (add.h).
using AddFn = void (*)(const uint8_t* a, const uint8_t* b, size_t n, const AddParams& p, uint8_t* out);

struct QuantKernels {
  QuantizeFn quantize[2][2];        // [uint8 output][per-element parameters]
  DequantizeFn dequantize[2][2];    // [uint8 input][per-element parameters]
  FakeQuantizeFn fake_quantize[2];  // [per-element parameters]
  AddFn add;
};

// Defined only on their architecture (cpu/isa_list.h).
namespace scalar { extern const QuantKernels kernels; }
namespace avx2 { extern const QuantKernels kernels; }
namespace avx512 { extern const QuantKernels kernels; }
namespace neon { extern const QuantKernels kernels; }

}  // namespace qk::quant
