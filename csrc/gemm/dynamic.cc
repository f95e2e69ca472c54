// dynamic_linear: the activation range, the uint8 quantization of x and the
// GEMM with its float epilogue, without a round trip through Python between
// them (at M = 1 those round trips cost as much as the GEMV itself).
#include <cmath>
#include <limits>
#include <vector>

#include "gemm/gemm.h"
#include "quant/quant.h"

namespace qk::gemm {
namespace {

struct Range {
  float lo, hi;  // min(x, 0) and max(x, 0)
  bool finite;
};

// Eight independent lanes, so the compiler vectorizes the loop without
// reordering a reduction; v * 0 is NaN exactly when v is NaN or infinite.
Range activation_range(const float* x, size_t n) {
  constexpr size_t kLanes = 8;
  float lo[kLanes] = {}, hi[kLanes] = {}, probe[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (size_t j = 0; j < kLanes; ++j) {
      const float v = x[i + j];
      lo[j] = v < lo[j] ? v : lo[j];
      hi[j] = v > hi[j] ? v : hi[j];
      probe[j] += v * 0.0f;
    }
  for (; i < n; ++i) {
    const float v = x[i];
    lo[0] = v < lo[0] ? v : lo[0];
    hi[0] = v > hi[0] ? v : hi[0];
    probe[0] += v * 0.0f;
  }
  Range r{0.0f, 0.0f, true};
  for (size_t j = 0; j < kLanes; ++j) {
    r.lo = lo[j] < r.lo ? lo[j] : r.lo;
    r.hi = hi[j] > r.hi ? hi[j] : r.hi;
    r.finite = r.finite && probe[j] == 0.0f;
  }
  return r;
}

// Python's round(): half to even whatever the thread's rounding mode.
double round_half_even(double v) {
  const double r = std::floor(v), frac = v - r;
  if (frac > 0.5 || (frac == 0.5 && std::fmod(r, 2.0) != 0.0)) return r + 1.0;
  return r;
}

}  // namespace

DynamicStatus dynamic_linear(const float* x, size_t m, size_t k, const PackedWeight& w, const float* w_scale,
                             const float* bias, float* out) {
  const Range range = activation_range(x, m * k);
  if (!range.finite) return DynamicStatus::kNonFiniteInput;
  // As qk.dynamic_linear's definition: the scale in float64, rounded to
  // float32; 1 when x is all zeros; the zero point from the float32 scale.
  const double lo = range.lo, hi = range.hi;
  float x_scale = static_cast<float>((hi - lo) / 255.0);
  if (!(x_scale > 0.0f)) x_scale = 1.0f;
  const double zp = std::fmin(std::fmax(round_half_even(-lo / x_scale), 0.0), 255.0);

  const size_t n = w.n();
  std::vector<float> scale(n);
  for (size_t j = 0; j < n; ++j) {
    scale[j] = x_scale * w_scale[j];
    if (!(scale[j] > 0.0f && scale[j] <= std::numeric_limits<float>::max())) return DynamicStatus::kBadScale;
  }
  std::vector<uint8_t> x_q(m * k);
  const float zp_f = static_cast<float>(zp);
  quant::quantize(x, x_q.data(), true, quant::Layout{1, 1, m * k}, &x_scale, &zp_f, 0.0f, 255.0f);

  Epilogue ep;
  ep.kind = Epilogue::kFloat;
  ep.a_zero_point = static_cast<int32_t>(zp);
  ep.scale = scale.data();
  ep.bias = bias;
  matmul(x_q.data(), false, m, k, w, ep, out);
  return DynamicStatus::kOk;
}

}  // namespace qk::gemm
