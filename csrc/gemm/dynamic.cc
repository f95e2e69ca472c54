// GEMMs whose B is an activation, not a packed weight. dynamic_linear: the
// quantization parameters, the uint8 quantization of x and the GEMM with its
// float epilogue, without round trips through Python between them (at M = 1
// those cost as much as the GEMV itself). batched_matmul: a stack of
// products of two quantized activations (attention's QK^T and PV).
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "gemm/gemm.h"
#include "gemm/pack.h"
#include "parallel/parallel.h"
#include "quant/quant.h"

namespace qk::gemm {
namespace {

// Python's round(): half to even whatever the thread's rounding mode.
double round_half_even(double v) {
  const double r = std::floor(v), frac = v - r;
  if (frac > 0.5 || (frac == 0.5 && std::fmod(r, 2.0) != 0.0)) return r + 1.0;
  return r;
}

}  // namespace

bool dynamic_linear(const float* x, size_t m, size_t k, double lo, double hi, const PackedWeight& w,
                    const float* w_scale, const float* bias, bool relu, float* out) {
  // As qk.dynamic_linear's definition: the scale in float64, rounded to
  // float32; 1 when x is all zeros; the zero point from the float32 scale.
  float x_scale = static_cast<float>((hi - lo) / 255.0);
  if (!(x_scale > 0.0f)) x_scale = 1.0f;
  const double zp = std::fmin(std::fmax(round_half_even(-lo / x_scale), 0.0), 255.0);

  const size_t n = w.n();
  std::vector<float> scale(n);
  for (size_t j = 0; j < n; ++j) {
    scale[j] = x_scale * w_scale[j];
    if (!(scale[j] > 0.0f && scale[j] <= std::numeric_limits<float>::max())) return false;
  }
  const std::unique_ptr<uint8_t[]> x_q(new uint8_t[m * k]);  // no zero fill: quantize writes it all
  const float zp_f = static_cast<float>(zp);
  quant::quantize(x, x_q.get(), true, quant::Layout{1, 1, m * k}, &x_scale, &zp_f, 0.0f, 255.0f);

  Epilogue ep;
  ep.kind = Epilogue::kFloat;
  ep.a_zero_point = static_cast<int32_t>(zp);
  ep.scale = scale.data();
  ep.bias = bias;
  ep.relu = relu;
  matmul(x_q.get(), false, m, k, w, ep, out);
  return true;
}

void batched_matmul(const uint8_t* a, const int8_t* b, size_t batch, size_t m, size_t k, size_t n,
                    int32_t a_zero_point, float scale, float* out) {
  const std::vector<float> scales(n, scale);
  Epilogue ep;
  ep.kind = Epilogue::kFloat;
  ep.a_zero_point = a_zero_point;
  ep.scale = scales.data();
  // One item per task: each packs its B (K x N, a few KiB) and runs its GEMM;
  // an item large enough to split splits inside (the caller takes part in
  // every job, so nested jobs cannot wait on each other).
  parallel_for(batch, 1, 1, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      const PackedWeight w(b + i * k * n, k, n, selected_layout());
      matmul(a + i * m * k, false, m, k, w, ep, out + i * m * n);
    }
  });
}

}  // namespace qk::gemm
