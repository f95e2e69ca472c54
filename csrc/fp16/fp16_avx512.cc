// AVX-512 path: 16 lanes (vcvtps2ph / vcvtph2ps on zmm, integer AVX-512 for
// bfloat16). Heads and tails use masked loads and stores, so every element
// runs the same instructions. NaN lanes get NumPy's unquieted bits through a
// rare masked fix-up, as in fp16_avx2.cc (same MXCSR independence argument).
#include <immintrin.h>

// GCC 12's avx512fintrin.h trips -Wmaybe-uninitialized on its own
// _mm512_undefined_* placeholders when these intrinsics inline (false positive).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <cstdint>

#include "fp16/fp16_kernels.h"

namespace qk::fp16::avx512 {
namespace {

// The per-block steps must inline into the loops (a call per block costs a third).
#define QK_FP16_STEP inline __attribute__((always_inline))

constexpr size_t kLanes = 16;

QK_FP16_STEP __mmask16 tail_mask(size_t count) {
  return count >= kLanes ? __mmask16(0xffff) : __mmask16((1u << count) - 1u);
}

// ---- steps: 16 elements, masked-off lanes read as zero ---------------------

QK_FP16_STEP __m256i f32_to_f16_16(__m512 x) {
  __m256i h = _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  if (__builtin_expect(nan != 0, 0)) {
    const __m512i xi = _mm512_castps_si512(x);
    __m512i payload = _mm512_and_si512(_mm512_srli_epi32(xi, 13), _mm512_set1_epi32(0x3ff));
    payload = _mm512_max_epi32(payload, _mm512_set1_epi32(1));
    const __m512i sign = _mm512_and_si512(_mm512_srli_epi32(xi, 16), _mm512_set1_epi32(0x8000));
    const __m512i bits = _mm512_or_si512(_mm512_or_si512(sign, payload), _mm512_set1_epi32(0x7c00));
    h = _mm256_mask_blend_epi16(nan, h, _mm512_cvtepi32_epi16(bits));
  }
  return h;
}

QK_FP16_STEP __m512 f16_to_f32_16(__m256i h) {
  __m512 x = _mm512_cvtph_ps(h);
  const __mmask16 nan =
      _mm256_cmpgt_epi16_mask(_mm256_and_si256(h, _mm256_set1_epi16(0x7fff)), _mm256_set1_epi16(0x7c00));
  if (__builtin_expect(nan != 0, 0)) {
    const __m512i h32 = _mm512_cvtepu16_epi32(h);
    const __m512i sign = _mm512_slli_epi32(_mm512_and_si512(h32, _mm512_set1_epi32(0x8000)), 16);
    const __m512i payload = _mm512_slli_epi32(_mm512_and_si512(h32, _mm512_set1_epi32(0x3ff)), 13);
    const __m512i f = _mm512_or_si512(_mm512_or_si512(sign, payload), _mm512_set1_epi32(0x7f800000));
    x = _mm512_mask_blend_ps(nan, x, _mm512_castsi512_ps(f));
  }
  return x;
}

QK_FP16_STEP __m256i f32_to_bf16_16(__m512 x) {
  const __m512i xi = _mm512_castps_si512(x);
  const __m512i hi = _mm512_srli_epi32(xi, 16);
  const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(hi, _mm512_set1_epi32(1)));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(xi, bias), 16);
  const __mmask16 nan =
      _mm512_cmpgt_epi32_mask(_mm512_and_si512(xi, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
  return _mm512_cvtepi32_epi16(r);
}

QK_FP16_STEP __m512 bf16_to_f32_16(__m256i b) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(b), 16)); }

// ---- loops ----------------------------------------------------------------

template <typename Step16>
void narrow(const float* x, uint16_t* h, size_t n, bool stream, Step16 step) {
  auto masked = [&](size_t i, size_t count) {
    const __mmask16 m = tail_mask(count);
    _mm256_mask_storeu_epi16(h + i, m, step(_mm512_maskz_loadu_ps(m, x + i)));
  };
  size_t i = 0;
  const uintptr_t addr = reinterpret_cast<uintptr_t>(h);
  if (stream && addr % 2 == 0) {
    // Head up to a 64-byte boundary of h (at most 31 halves), then one full
    // cache line (32 halves) per streaming store.
    size_t head = ((64 - addr % 64) % 64) / 2;
    if (head > n) head = n;
    for (; i < head; i += kLanes) masked(i, head - i < kLanes ? head - i : kLanes);
    i = head;
    for (; i + 32 <= n; i += 32) {
      const __m256i a = step(_mm512_loadu_ps(x + i)), b = step(_mm512_loadu_ps(x + i + 16));
      _mm512_stream_si512(reinterpret_cast<__m512i*>(h + i), _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1));
    }
    _mm_sfence();
  }
  for (; i + kLanes <= n; i += kLanes)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(h + i), step(_mm512_loadu_ps(x + i)));
  if (i < n) masked(i, n - i);
}

template <typename Step16>
void widen(const uint16_t* h, float* x, size_t n, bool stream, Step16 step) {
  auto masked = [&](size_t i, size_t count) {
    const __mmask16 m = tail_mask(count);
    _mm512_mask_storeu_ps(x + i, m, step(_mm256_maskz_loadu_epi16(m, h + i)));
  };
  size_t i = 0;
  const uintptr_t addr = reinterpret_cast<uintptr_t>(x);
  if (stream && addr % 4 == 0) {
    size_t head = ((64 - addr % 64) % 64) / 4;  // at most 15 floats
    if (head > n) head = n;
    if (head > 0) masked(0, head);
    i = head;
    for (; i + kLanes <= n; i += kLanes)
      _mm512_stream_ps(x + i, step(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + i))));
    _mm_sfence();
  }
  for (; i + kLanes <= n; i += kLanes)
    _mm512_storeu_ps(x + i, step(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + i))));
  if (i < n) masked(i, n - i);
}

void f32_to_f16(const float* x, uint16_t* h, size_t n, bool stream) {
  narrow(x, h, n, stream, [](__m512 v) { return f32_to_f16_16(v); });
}

void f16_to_f32(const uint16_t* h, float* x, size_t n, bool stream) {
  widen(h, x, n, stream, [](__m256i v) { return f16_to_f32_16(v); });
}

void f32_to_bf16(const float* x, uint16_t* b, size_t n, bool stream) {
  narrow(x, b, n, stream, [](__m512 v) { return f32_to_bf16_16(v); });
}

void bf16_to_f32(const uint16_t* b, float* x, size_t n, bool stream) {
  widen(b, x, n, stream, [](__m256i v) { return bf16_to_f32_16(v); });
}

#undef QK_FP16_STEP

}  // namespace

const Fp16Kernels kernels = {f32_to_f16, f16_to_f32, f32_to_bf16, bf16_to_f32};

}  // namespace qk::fp16::avx512
