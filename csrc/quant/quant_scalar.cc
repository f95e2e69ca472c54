// Portable reference path; also what every SIMD path must match bit for bit.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "cpu/vector_lanes.h"
#include "quant/add.h"
#include "quant/quant_kernels.h"

namespace qk::quant::scalar {
namespace {

float quantize_one(float x, float scale, float zp, float qmin, float qmax) {
  if (std::isnan(x)) return zp;
  // Round half to even (the default rounding mode); clamp in float so that
  // +-inf and huge values saturate instead of overflowing the integer cast.
  float v = std::nearbyint(x / scale) + zp;
  return v < qmin ? qmin : (v > qmax ? qmax : v);
}

template <typename Q, bool kPerElement>
void quantize(const float* x, void* qv, size_t n, const float* scale, const float* zp, float qmin,
              float qmax) {
  Q* q = static_cast<Q*>(qv);
  for (size_t i = 0; i < n; ++i) {
    const size_t p = kPerElement ? i : 0;
    q[i] = static_cast<Q>(static_cast<int>(quantize_one(x[i], scale[p], zp[p], qmin, qmax)));
  }
}

template <typename Q, bool kPerElement>
void dequantize(const void* qv, float* x, size_t n, const float* scale, const float* zp, bool /*stream*/) {
  const Q* q = static_cast<const Q*>(qv);
  for (size_t i = 0; i < n; ++i) {
    const size_t p = kPerElement ? i : 0;
    x[i] = (static_cast<float>(q[i]) - zp[p]) * scale[p];
  }
}

template <bool kPerElement>
void fake_quantize(const float* x, float* y, size_t n, const float* scale, const float* zp,
                   float qmin, float qmax, bool /*stream*/) {
  for (size_t i = 0; i < n; ++i) {
    const size_t p = kPerElement ? i : 0;
    y[i] = (quantize_one(x[i], scale[p], zp[p], qmin, qmax) - zp[p]) * scale[p];
  }
}

constexpr size_t kAddLanes = 4;  // floats per vector register
#include "quant/add_kernel.inc"

}  // namespace

const QuantKernels kernels = {
    {{quantize<int8_t, false>, quantize<int8_t, true>},
     {quantize<uint8_t, false>, quantize<uint8_t, true>}},
    {{dequantize<int8_t, false>, dequantize<int8_t, true>},
     {dequantize<uint8_t, false>, dequantize<uint8_t, true>}},
    {fake_quantize<false>, fake_quantize<true>},
    add,
};

}  // namespace qk::quant::scalar
