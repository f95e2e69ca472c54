// The quantized Add of two uint8 tensors (an integer layer chain's residual
// connection): each input dequantized on its own grid, summed in float32,
// requantized onto the output grid and clamped. One float32 expression, the
// same bits on every path (add_kernel.inc, in each quant_<isa>.cc).
#pragma once

#include <cstddef>
#include <cstdint>

namespace qk::quant {

struct AddParams {
  float a_scale, b_scale, out_scale;
  int32_t a_zero_point, b_zero_point, out_zero_point;
  int32_t qmin, qmax;  // the clamp of the output (a fused ReLU raises qmin)
};

// out[i] = clip(rint((a_scale * (a[i] - za) + b_scale * (b[i] - zb)) / out_scale) + zo, qmin, qmax),
// in float32 in that order (no fused multiply-add), halves to even. `out`
// must not overlap `a` or `b` (the Python wrapper copies when it would).
void add_quantized(const uint8_t* a, const uint8_t* b, size_t n, const AddParams& p, uint8_t* out);

}  // namespace qk::quant
