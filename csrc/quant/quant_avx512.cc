// AVX-512 path: 16 floats per step; the tail uses masked loads and stores,
// so it runs the same instructions as the main loop.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cpu/vector_lanes.h"
#include "quant/add.h"
#include "quant/quant_kernels.h"

namespace qk::quant::avx512 {
namespace {

constexpr size_t kLanes = 16;

template <bool kPerElement>
struct Params {
  __m512 scale, zp;
  // Masked-off lanes get scale 1 so no lane divides by zero.
  Params(const float* s, const float* z, size_t i, __mmask16 m)
      : scale(kPerElement ? _mm512_mask_loadu_ps(_mm512_set1_ps(1.0f), m, s + i) : _mm512_set1_ps(*s)),
        zp(kPerElement ? _mm512_maskz_loadu_ps(m, z + i) : _mm512_set1_ps(*z)) {}
};

__m512 quantize16(__m512 x, __m512 scale, __m512 zp, __m512 qmin, __m512 qmax) {
  __m512 v = _mm512_roundscale_ps(_mm512_div_ps(x, scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  v = _mm512_add_ps(v, zp);
  v = _mm512_min_ps(_mm512_max_ps(v, qmin), qmax);
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), v, zp);
}

// Values are already in the byte range, so truncating to 8 bits (vpmovdb)
// gives the right int8 or uint8 bytes alike.
void store16(void* q, __m512 v, __mmask16 m) {
  _mm512_mask_cvtepi32_storeu_epi8(q, m, _mm512_cvtps_epi32(v));
}

template <typename Q>
__m512 load16(const Q* q, __mmask16 m) {
  __m128i bytes = _mm_maskz_loadu_epi8(m, q);
  __m512i i32 = std::is_same<Q, uint8_t>::value ? _mm512_cvtepu8_epi32(bytes) : _mm512_cvtepi8_epi32(bytes);
  return _mm512_cvtepi32_ps(i32);
}

// Runs step(i, mask, params) over [0, n) in blocks of 16, the last one masked.
template <bool kPerElement, typename Step>
void for_each_block(size_t n, const float* scale, const float* zp, Step step) {
  for (size_t i = 0; i < n; i += kLanes) {
    const size_t rest = n - i;
    const __mmask16 m = rest >= kLanes ? __mmask16(0xffff) : __mmask16((1u << rest) - 1u);
    step(i, m, Params<kPerElement>(scale, zp, i, m));
  }
}

template <typename Q, bool kPerElement>
void quantize(const float* x, void* qv, size_t n, const float* scale, const float* zp, float qmin,
              float qmax) {
  Q* q = static_cast<Q*>(qv);
  const __m512 lo = _mm512_set1_ps(qmin), hi = _mm512_set1_ps(qmax);
  for_each_block<kPerElement>(n, scale, zp, [&](size_t i, __mmask16 m, const Params<kPerElement>& p) {
    store16(q + i, quantize16(_mm512_maskz_loadu_ps(m, x + i), p.scale, p.zp, lo, hi), m);
  });
}

template <typename Q, bool kPerElement>
void dequantize(const void* qv, float* x, size_t n, const float* scale, const float* zp, bool /*stream*/) {
  const Q* q = static_cast<const Q*>(qv);
  for_each_block<kPerElement>(n, scale, zp, [&](size_t i, __mmask16 m, const Params<kPerElement>& p) {
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_sub_ps(load16(q + i, m), p.zp), p.scale));
  });
}

template <bool kPerElement>
void fake_quantize(const float* x, float* y, size_t n, const float* scale, const float* zp, float qmin,
                   float qmax, bool /*stream*/) {
  const __m512 lo = _mm512_set1_ps(qmin), hi = _mm512_set1_ps(qmax);
  for_each_block<kPerElement>(n, scale, zp, [&](size_t i, __mmask16 m, const Params<kPerElement>& p) {
    __m512 v = quantize16(_mm512_maskz_loadu_ps(m, x + i), p.scale, p.zp, lo, hi);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_sub_ps(v, p.zp), p.scale));
  });
}

constexpr size_t kAddLanes = 16;  // floats per vector register
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

}  // namespace qk::quant::avx512
