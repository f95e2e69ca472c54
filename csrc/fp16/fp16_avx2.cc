// AVX2 + F16C path: vcvtps2ph / vcvtph2ps on 8 lanes, integer AVX2 for
// bfloat16. F16C quiets signalling NaNs, NumPy does not: a block holding any
// NaN (rare) gets its NaN lanes recomputed with integer ops (see
// fp16_scalar.cc for the rules). vcvtps2ph ignores FTZ and takes its rounding
// mode from the immediate; DAZ only zeroes float32 subnormals, which round to
// a signed zero half anyway; vcvtph2ps keeps half subnormals under DAZ
// (checked on Zen 1), and its float32 results are never subnormal.
//
// The tail (and the unaligned head before streaming stores) goes through the
// same 8-lane step on a zero-padded copy.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "fp16/fp16_kernels.h"

namespace qk::fp16::avx2 {
namespace {

// The per-block steps must inline into the loops (a call per block costs a third).
#define QK_FP16_STEP inline __attribute__((always_inline))

constexpr size_t kLanes = 8;

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

// 16 floats -> 16 halves; one NaN test for the block (cheaper, measured,
// than testing the halves produced).
QK_FP16_STEP __m256i f32_to_f16_16(const float* p) {
  const __m256 x0 = _mm256_loadu_ps(p), x1 = _mm256_loadu_ps(p + 8);
  __m128i h0 = _mm256_cvtps_ph(x0, _MM_FROUND_TO_NEAREST_INT);
  __m128i h1 = _mm256_cvtps_ph(x1, _MM_FROUND_TO_NEAREST_INT);
  const __m256 nan = _mm256_or_ps(_mm256_cmp_ps(x0, x0, _CMP_UNORD_Q), _mm256_cmp_ps(x1, x1, _CMP_UNORD_Q));
  if (__builtin_expect(_mm256_movemask_ps(nan) != 0, 0)) {
    h0 = f16_fix_nan(x0, h0);
    h1 = f16_fix_nan(x1, h1);
  }
  return _mm256_set_m128i(h1, h0);
}

// ---- FP16 -> FP32 ---------------------------------------------------------

QK_FP16_STEP __m256 f16_to_f32_8(__m128i h) {
  __m256 x = _mm256_cvtph_ps(h);
  const __m128i nan = _mm_cmpgt_epi16(_mm_and_si128(h, _mm_set1_epi16(0x7fff)), _mm_set1_epi16(0x7c00));
  if (__builtin_expect(_mm_movemask_epi8(nan) != 0, 0)) {
    // sign << 16 | 0x7f800000 | payload << 13, payload not quieted.
    const __m256i h32 = _mm256_cvtepu16_epi32(h);
    const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(h32, _mm256_set1_epi32(0x8000)), 16);
    const __m256i payload = _mm256_slli_epi32(_mm256_and_si256(h32, _mm256_set1_epi32(0x3ff)), 13);
    const __m256i f = _mm256_or_si256(_mm256_or_si256(sign, payload), _mm256_set1_epi32(0x7f800000));
    x = _mm256_blendv_ps(x, _mm256_castsi256_ps(f), _mm256_castsi256_ps(_mm256_cvtepi16_epi32(nan)));
  }
  return x;
}

// ---- FP32 -> BF16 ---------------------------------------------------------

// 8 bf16 values, rounded to nearest even, as int32 lanes (high halves zero).
QK_FP16_STEP __m256i f32_to_bf16_8(__m256 x) {
  const __m256i xi = _mm256_castps_si256(x);
  const __m256i hi = _mm256_srli_epi32(xi, 16);
  const __m256i bias = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), _mm256_and_si256(hi, _mm256_set1_epi32(1)));
  __m256i r = _mm256_srli_epi32(_mm256_add_epi32(xi, bias), 16);
  const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  if (__builtin_expect(_mm256_movemask_ps(nan) != 0, 0))  // NaN: keep the top bits, set the quiet bit
    r = _mm256_blendv_epi8(r, _mm256_or_si256(hi, _mm256_set1_epi32(0x40)), _mm256_castps_si256(nan));
  return r;
}

QK_FP16_STEP __m256 bf16_to_f32_8(__m128i b) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(b), 16)); }

// ---- loops ----------------------------------------------------------------

QK_FP16_STEP __m128i load_h8(const uint16_t* h) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(h)); }

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

// Widening (16-bit -> float): Step8(__m128i) -> __m256 of 8 results.
template <typename Step8>
void widen(const uint16_t* h, float* x, size_t n, bool stream, Step8 step) {
  auto padded = [&](size_t i, size_t count) {
    uint16_t in[kLanes] = {};
    float out[kLanes];
    std::memcpy(in, h + i, count * sizeof(uint16_t));
    _mm256_storeu_ps(out, step(load_h8(in)));
    std::memcpy(x + i, out, count * sizeof(float));
  };
  size_t i = 0;
  const uintptr_t addr = reinterpret_cast<uintptr_t>(x);
  if (stream && addr % 4 == 0) {
    size_t head = ((32 - addr % 32) % 32) / 4;
    if (head > n) head = n;
    if (head > 0) padded(0, head);
    i = head;
    for (; i + 16 <= n; i += 16) {
      const __m256 a = step(load_h8(h + i)), b = step(load_h8(h + i + 8));
      _mm256_stream_ps(x + i, a);
      _mm256_stream_ps(x + i + 8, b);
    }
    _mm_sfence();
  }
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    const __m256 a = step(load_h8(h + i)), b = step(load_h8(h + i + 8));
    _mm256_storeu_ps(x + i, a);
    _mm256_storeu_ps(x + i + 8, b);
  }
  for (; i + kLanes <= n; i += kLanes) _mm256_storeu_ps(x + i, step(load_h8(h + i)));
  if (i < n) padded(i, n - i);
}

void f32_to_f16(const float* x, uint16_t* h, size_t n, bool stream) {
  narrow(x, h, n, stream, [](const float* p) { return f32_to_f16_16(p); });
}

void f16_to_f32(const uint16_t* h, float* x, size_t n, bool stream) {
  widen(h, x, n, stream, [](__m128i v) { return f16_to_f32_8(v); });
}

void f32_to_bf16(const float* x, uint16_t* b, size_t n, bool stream) {
  narrow(x, b, n, stream, [](const float* p) {
    // packus works per 128-bit lane: [a0-3 b0-3 | a4-7 b4-7] -> reorder quadwords.
    const __m256i packed = _mm256_packus_epi32(f32_to_bf16_8(_mm256_loadu_ps(p)), f32_to_bf16_8(_mm256_loadu_ps(p + 8)));
    return _mm256_permute4x64_epi64(packed, 0xd8);
  });
}

void bf16_to_f32(const uint16_t* b, float* x, size_t n, bool stream) {
  widen(b, x, n, stream, [](__m128i v) { return bf16_to_f32_8(v); });
}

#undef QK_FP16_STEP

}  // namespace

const Fp16Kernels kernels = {f32_to_f16, f16_to_f32, f32_to_bf16, bf16_to_f32};

}  // namespace qk::fp16::avx2
