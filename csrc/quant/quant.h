// Quantize / dequantize / fake-quantize over a whole tensor, per-tensor or
// per-channel, on the selected ISA path and across threads.
#pragma once

#include <cstddef>

#include "cpu/isa.h"

namespace qk::quant {

// A contiguous tensor seen as (outer, channels, inner): per-channel
// parameters vary along `channels`; per-tensor is channels == 1.
struct Layout {
  size_t outer, channels, inner;
  size_t size() const { return outer * channels * inner; }
};

// The ISA path the quant family runs on under the current cap.
Isa selected_isa();

// `scale` and `zero_point` have layout.channels values.
void quantize(const float* x, void* q, bool q_unsigned, Layout layout, const float* scale,
              const float* zero_point, float qmin, float qmax);
void dequantize(const void* q, bool q_unsigned, float* x, Layout layout, const float* scale,
                const float* zero_point);
void fake_quantize(const float* x, float* y, Layout layout, const float* scale, const float* zero_point,
                   float qmin, float qmax);

}  // namespace qk::quant
