// AVX2 + F16C path: vcvtps2ph / vcvtph2ps in blocks of 16 elements, integer
// AVX2 for bfloat16. F16C quiets signalling NaNs, NumPy does not: a block
// holding any NaN (rare) gets its NaN lanes recomputed with integer ops in a
// cold function (see fp16_scalar.cc for the rules). vcvtps2ph ignores FTZ and takes its rounding
// mode from the immediate; DAZ only zeroes float32 subnormals, which round to
// a signed zero half anyway; vcvtph2ps keeps half subnormals under DAZ
// (checked on Zen 1), and its float32 results are never subnormal.
//
// The tail (and the unaligned head before streaming stores) goes through the
// same 16-element step on a zero-padded copy. Large outputs use streaming
// stores (the driver decides); on Zen 1 they cut the time of a 64 MB
// conversion by about a third (measured).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "fp16/fp16_kernels.h"

namespace qk::fp16::avx2 {
namespace {

// The per-block steps must inline into the loops (a call per block costs a third).
#define QK_FP16_STEP inline __attribute__((always_inline))

// ---- FP32 -> FP16 ---------------------------------------------------------

// NumPy's half bits for the NaN lanes of x, as 8 x int16.
__attribute__((cold)) __m128i f16_nan_bits(__m256 x) {
  const __m256i xi = _mm256_castps_si256(x);
  __m256i payload = _mm256_and_si256(_mm256_srli_epi32(xi, 13), _mm256_set1_epi32(0x3ff));
  payload = _mm256_max_epi32(payload, _mm256_set1_epi32(1));
  const __m256i sign = _mm256_and_si256(_mm256_srli_epi32(xi, 16), _mm256_set1_epi32(0x8000));
  const __m256i h = _mm256_or_si256(_mm256_or_si256(sign, payload), _mm256_set1_epi32(0x7c00));
  // Values fit in 16 bits: packus keeps them; undo its per-128-bit-lane order.
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(h, h), 0x08);
  return _mm256_castsi256_si128(packed);
}

// NaN lanes of x (as 8 x int16 masks) replaced by NumPy's bits.
__attribute__((noinline, cold)) __m128i f16_fix_nan(__m256 x, __m128i h) {
  const __m256i m = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  const __m128i m16 = _mm_packs_epi32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
  return _mm_blendv_epi8(h, f16_nan_bits(x), m16);
}

// 16 floats -> 16 halves; one NaN test for the block.
QK_FP16_STEP __m256i f32_to_f16_16(const float* p) {
  const __m256 x0 = _mm256_loadu_ps(p), x1 = _mm256_loadu_ps(p + 8);
  __m128i h0 = _mm256_cvtps_ph(x0, _MM_FROUND_TO_NEAREST_INT);
  __m128i h1 = _mm256_cvtps_ph(x1, _MM_FROUND_TO_NEAREST_INT);
  // Unordered compare of x0 with x1: a lane is set if either is NaN.
  if (__builtin_expect(_mm256_movemask_ps(_mm256_cmp_ps(x0, x1, _CMP_UNORD_Q)) != 0, 0)) {
    h0 = f16_fix_nan(x0, h0);
    h1 = f16_fix_nan(x1, h1);
  }
  return _mm256_set_m128i(h1, h0);
}

// ---- FP16 -> FP32 ---------------------------------------------------------

// 16 results of a widening step.
struct Wide16 {
  __m256 lo, hi;
};

// NumPy's float bits for the NaN lanes of 8 halves (sign << 16 | 0x7f800000 |
// payload << 13, payload not quieted) blended into x.
__attribute__((noinline, cold)) __m256 f32_fix_nan(__m128i h, __m256 x) {
  const __m256i h32 = _mm256_cvtepu16_epi32(h);
  const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(h32, _mm256_set1_epi32(0x8000)), 16);
  const __m256i payload = _mm256_slli_epi32(_mm256_and_si256(h32, _mm256_set1_epi32(0x3ff)), 13);
  const __m256i f = _mm256_or_si256(_mm256_or_si256(sign, payload), _mm256_set1_epi32(0x7f800000));
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(h32, _mm256_set1_epi32(0x7fff)), _mm256_set1_epi32(0x7c00));
  return _mm256_blendv_ps(x, _mm256_castsi256_ps(f), _mm256_castsi256_ps(nan));
}

QK_FP16_STEP Wide16 f16_to_f32_16(const uint16_t* p) {
  const __m128i h0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i h1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8));
  Wide16 r{_mm256_cvtph_ps(h0), _mm256_cvtph_ps(h1)};
  // A NaN half converts to a NaN float: one unordered compare covers all 16.
  if (__builtin_expect(_mm256_movemask_ps(_mm256_cmp_ps(r.lo, r.hi, _CMP_UNORD_Q)) != 0, 0)) {
    r.lo = f32_fix_nan(h0, r.lo);
    r.hi = f32_fix_nan(h1, r.hi);
  }
  return r;
}

QK_FP16_STEP Wide16 bf16_to_f32_16(const uint16_t* p) {
  const __m256i b0 = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m256i b1 = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)));
  return {_mm256_castsi256_ps(_mm256_slli_epi32(b0, 16)), _mm256_castsi256_ps(_mm256_slli_epi32(b1, 16))};
}

// ---- FP32 -> BF16 ---------------------------------------------------------

// 8 bf16 values, rounded to nearest even, as int32 lanes (high halves zero).
QK_FP16_STEP __m256i bf16_round(__m256i xi) {
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(xi, 16), _mm256_set1_epi32(1));
  return _mm256_srli_epi32(_mm256_add_epi32(xi, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
}

// NaN lanes of x replaced by their top bits with the quiet bit set.
__attribute__((noinline, cold)) __m256i bf16_fix_nan(__m256 x, __m256i r) {
  const __m256i q = _mm256_or_si256(_mm256_srli_epi32(_mm256_castps_si256(x), 16), _mm256_set1_epi32(0x40));
  return _mm256_blendv_epi8(r, q, _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q)));
}

QK_FP16_STEP __m256i f32_to_bf16_16(const float* p) {
  const __m256 x0 = _mm256_loadu_ps(p), x1 = _mm256_loadu_ps(p + 8);
  __m256i r0 = bf16_round(_mm256_castps_si256(x0)), r1 = bf16_round(_mm256_castps_si256(x1));
  if (__builtin_expect(_mm256_movemask_ps(_mm256_cmp_ps(x0, x1, _CMP_UNORD_Q)) != 0, 0)) {
    r0 = bf16_fix_nan(x0, r0);
    r1 = bf16_fix_nan(x1, r1);
  }
  // packus works per 128-bit lane: [r0 0-3, r1 0-3 | r0 4-7, r1 4-7]; reorder quadwords.
  return _mm256_permute4x64_epi64(_mm256_packus_epi32(r0, r1), 0xd8);
}

// ---- loops ----------------------------------------------------------------

// Narrowing (float -> 16-bit): Step16(const float*) -> __m256i of 16 results.
template <typename Step16>
void narrow(const float* x, uint16_t* h, size_t n, bool stream, Step16 step) {
  auto padded = [&](size_t i, size_t count) {
    float in[16] = {};
    uint16_t out[16];
    std::memcpy(in, x + i, count * sizeof(float));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), step(in));
    std::memcpy(h + i, out, count * sizeof(uint16_t));
  };
  size_t i = 0;
  const uintptr_t addr = reinterpret_cast<uintptr_t>(h);
  if (stream && addr % 2 == 0) {
    // Head up to a 32-byte boundary of h, then 32 halves (one cache line)
    // per iteration with streaming stores.
    size_t head = ((32 - addr % 32) % 32) / 2;
    if (head > n) head = n;
    if (head > 0) padded(0, head);
    i = head;
    for (; i + 32 <= n; i += 32) {
      const __m256i a = step(x + i), b = step(x + i + 16);
      _mm256_stream_si256(reinterpret_cast<__m256i*>(h + i), a);
      _mm256_stream_si256(reinterpret_cast<__m256i*>(h + i + 16), b);
    }
    _mm_sfence();
  }
  for (; i + 16 <= n; i += 16) _mm256_storeu_si256(reinterpret_cast<__m256i*>(h + i), step(x + i));
  if (i < n) padded(i, n - i);
}

// Widening (16-bit -> float): Step16(const uint16_t*) -> Wide16.
template <typename Step16>
void widen(const uint16_t* h, float* x, size_t n, bool stream, Step16 step) {
  auto padded = [&](size_t i, size_t count) {
    uint16_t in[16] = {};
    float out[16];
    std::memcpy(in, h + i, count * sizeof(uint16_t));
    const Wide16 r = step(in);
    _mm256_storeu_ps(out, r.lo);
    _mm256_storeu_ps(out + 8, r.hi);
    std::memcpy(x + i, out, count * sizeof(float));
  };
  size_t i = 0;
  const uintptr_t addr = reinterpret_cast<uintptr_t>(x);
  if (stream && addr % 4 == 0) {
    // Head up to a 32-byte boundary of x, then 16 floats (two 32-byte
    // streaming stores) per iteration.
    size_t head = ((32 - addr % 32) % 32) / 4;
    if (head > n) head = n;
    if (head > 0) padded(0, head);
    i = head;
    for (; i + 16 <= n; i += 16) {
      const Wide16 r = step(h + i);
      _mm256_stream_ps(x + i, r.lo);
      _mm256_stream_ps(x + i + 8, r.hi);
    }
    _mm_sfence();
  }
  for (; i + 16 <= n; i += 16) {
    const Wide16 r = step(h + i);
    _mm256_storeu_ps(x + i, r.lo);
    _mm256_storeu_ps(x + i + 8, r.hi);
  }
  if (i < n) padded(i, n - i);
}

void f32_to_f16(const float* x, uint16_t* h, size_t n, bool stream) {
  narrow(x, h, n, stream, [](const float* p) { return f32_to_f16_16(p); });
}

void f16_to_f32(const uint16_t* h, float* x, size_t n, bool stream) {
  widen(h, x, n, stream, [](const uint16_t* p) { return f16_to_f32_16(p); });
}

void f32_to_bf16(const float* x, uint16_t* b, size_t n, bool stream) {
  narrow(x, b, n, stream, [](const float* p) { return f32_to_bf16_16(p); });
}

void bf16_to_f32(const uint16_t* b, float* x, size_t n, bool stream) {
  widen(b, x, n, stream, [](const uint16_t* p) { return bf16_to_f32_16(p); });
}

#undef QK_FP16_STEP

}  // namespace

const Fp16Kernels kernels = {f32_to_f16, f16_to_f32, f32_to_bf16, bf16_to_f32};

}  // namespace qk::fp16::avx2
