// AVX2 path: 8 floats per step. The tail goes through the same step on a
// padded copy, so the last elements are computed exactly like the rest.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cpu/vector_lanes.h"
#include "quant/add.h"
#include "quant/quant_kernels.h"

namespace qk::quant::avx2 {
namespace {

constexpr size_t kLanes = 8;

// Scale and zero point for 8 consecutive elements.
template <bool kPerElement>
struct Params {
  __m256 scale, zp;
  Params(const float* s, const float* z, size_t i)
      : scale(kPerElement ? _mm256_loadu_ps(s + i) : _mm256_set1_ps(*s)),
        zp(kPerElement ? _mm256_loadu_ps(z + i) : _mm256_set1_ps(*z)) {}
};

// Returns the clamped grid value as float (integer-valued).
__m256 quantize8(__m256 x, __m256 scale, __m256 zp, __m256 qmin, __m256 qmax) {
  __m256 v = _mm256_round_ps(_mm256_div_ps(x, scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  v = _mm256_add_ps(v, zp);
  v = _mm256_min_ps(_mm256_max_ps(v, qmin), qmax);
  return _mm256_blendv_ps(v, zp, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

// Writes 8 in-range integers as bytes.
template <typename Q>
void store_bytes8(Q* q, __m256 v) {
  __m256i i32 = _mm256_cvtps_epi32(v);
  __m128i i16 = _mm_packs_epi32(_mm256_castsi256_si128(i32), _mm256_extracti128_si256(i32, 1));
  __m128i i8 = std::is_same<Q, uint8_t>::value ? _mm_packus_epi16(i16, i16) : _mm_packs_epi16(i16, i16);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(q), i8);
}

template <typename Q>
__m256 load8(const Q* q) {
  __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q));
  __m256i i32 = std::is_same<Q, uint8_t>::value ? _mm256_cvtepu8_epi32(bytes) : _mm256_cvtepi8_epi32(bytes);
  return _mm256_cvtepi32_ps(i32);
}

// Stores 8 floats, with a non-temporal store when streaming (the caller
// guarantees 32-byte alignment then): large outputs skip the cache.
template <bool kStream>
void store_floats8(float* y, __m256 v) {
  if (kStream)
    _mm256_stream_ps(y, v);
  else
    _mm256_storeu_ps(y, v);
}

// Runs step(in, out, params, stream_tag) over [0, n) in blocks of 8. Partial
// blocks (the tail, and when streaming the head up to 32-byte alignment of
// `out`) run the same step on padded copies.
template <bool kPerElement, typename In, typename Out, typename Step>
void for_each_block(const In* in, Out* out, size_t n, const float* scale, const float* zp, bool stream,
                    Step step) {
  auto partial = [&](size_t i, size_t count) {
    In in_pad[kLanes] = {};
    Out out_pad[kLanes];
    float scale_pad[kLanes], zp_pad[kLanes];
    std::memcpy(in_pad, in + i, count * sizeof(In));
    for (size_t j = 0; j < kLanes; ++j) {
      scale_pad[j] = kPerElement ? (j < count ? scale[i + j] : 1.0f) : scale[0];
      zp_pad[j] = kPerElement ? (j < count ? zp[i + j] : 0.0f) : zp[0];
    }
    step(in_pad, out_pad, Params<kPerElement>(scale_pad, zp_pad, 0), std::false_type{});
    std::memcpy(out + i, out_pad, count * sizeof(Out));
  };
  size_t i = 0;
  if (stream) {
    const size_t misaligned = reinterpret_cast<uintptr_t>(out) % 32;
    if (misaligned != 0 && misaligned % sizeof(Out) == 0) {
      i = (32 - misaligned) / sizeof(Out);
      if (i > n) i = n;
      partial(0, i);
    } else if (misaligned != 0) {
      stream = false;
    }
  }
  if (stream) {
    for (; i + kLanes <= n; i += kLanes) step(in + i, out + i, Params<kPerElement>(scale, zp, i), std::true_type{});
    _mm_sfence();
  } else {
    for (; i + kLanes <= n; i += kLanes) step(in + i, out + i, Params<kPerElement>(scale, zp, i), std::false_type{});
  }
  if (i < n) partial(i, n - i);
}

template <typename Q, bool kPerElement>
void quantize(const float* x, void* qv, size_t n, const float* scale, const float* zp, float qmin,
              float qmax) {
  const __m256 lo = _mm256_set1_ps(qmin), hi = _mm256_set1_ps(qmax);
  for_each_block<kPerElement>(x, static_cast<Q*>(qv), n, scale, zp, false,
                              [&](const float* xi, Q* qi, const Params<kPerElement>& p, auto) {
                                store_bytes8(qi, quantize8(_mm256_loadu_ps(xi), p.scale, p.zp, lo, hi));
                              });
}

template <typename Q, bool kPerElement>
void dequantize(const void* qv, float* x, size_t n, const float* scale, const float* zp, bool stream) {
  for_each_block<kPerElement>(static_cast<const Q*>(qv), x, n, scale, zp, stream,
                              [&](const Q* qi, float* xi, const Params<kPerElement>& p, auto tag) {
                                store_floats8<decltype(tag)::value>(
                                    xi, _mm256_mul_ps(_mm256_sub_ps(load8(qi), p.zp), p.scale));
                              });
}

template <bool kPerElement>
void fake_quantize(const float* x, float* y, size_t n, const float* scale, const float* zp, float qmin,
                   float qmax, bool stream) {
  const __m256 lo = _mm256_set1_ps(qmin), hi = _mm256_set1_ps(qmax);
  for_each_block<kPerElement>(x, y, n, scale, zp, stream,
                              [&](const float* xi, float* yi, const Params<kPerElement>& p, auto tag) {
                                __m256 v = quantize8(_mm256_loadu_ps(xi), p.scale, p.zp, lo, hi);
                                store_floats8<decltype(tag)::value>(yi, _mm256_mul_ps(_mm256_sub_ps(v, p.zp), p.scale));
                              });
}

constexpr size_t kAddLanes = 8;  // floats per vector register
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

}  // namespace qk::quant::avx2
