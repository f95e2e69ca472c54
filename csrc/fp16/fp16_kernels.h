// FP32 <-> FP16 and FP32 <-> BF16 conversion over one run of contiguous
// elements, one table per ISA (each defined in fp16_<isa>.cc).
//
// Half and bfloat16 values travel as their raw 16-bit patterns (uint16_t).
// Every path gives the same bits as NumPy's `astype` (see fp16.h), whatever
// the MXCSR rounding mode, DAZ and FTZ bits are.
//
// `stream` asks for non-temporal stores: the driver sets it for outputs too
// big to stay in cache. A path may ignore it; results never depend on it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qk::fp16 {

using F32ToF16Fn = void (*)(const float* x, uint16_t* h, size_t n, bool stream);
using F16ToF32Fn = void (*)(const uint16_t* h, float* x, size_t n, bool stream);

struct Fp16Kernels {
  F32ToF16Fn f32_to_f16;   // IEEE binary16, round to nearest even
  F16ToF32Fn f16_to_f32;   // exact
  F32ToF16Fn f32_to_bf16;  // bfloat16, round to nearest even, NaN quieted
  F16ToF32Fn bf16_to_f32;  // exact
};

// Defined only on their architecture (cpu/isa_list.h).
namespace scalar { extern const Fp16Kernels kernels; }
namespace avx2 { extern const Fp16Kernels kernels; }
namespace avx512 { extern const Fp16Kernels kernels; }
namespace neon { extern const Fp16Kernels kernels; }

}  // namespace qk::fp16
