// FP32 <-> FP16 and FP32 <-> BF16 over whole contiguous arrays, on the
// selected ISA path and across threads. Results are bit-identical to NumPy's
// `x.astype(np.float16)` / `h.astype(np.float32)` on every path (rules in
// fp16_scalar.cc), whatever the thread count.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpu/isa.h"

namespace qk::fp16 {

// The ISA path the fp16 family runs on under the current cap.
Isa selected_isa();

void fp32_to_fp16(const float* x, uint16_t* h, size_t n);
void fp16_to_fp32(const uint16_t* h, float* x, size_t n);
void fp32_to_bf16(const float* x, uint16_t* b, size_t n);
void bf16_to_fp32(const uint16_t* b, float* x, size_t n);

}  // namespace qk::fp16
