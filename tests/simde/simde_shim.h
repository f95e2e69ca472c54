#pragma once
// Lets csrc/fp16/fp16_avx512.cc compile and run on a machine without AVX-512:
// SIMDe (https://github.com/simd-everywhere/simde, e.g. apt install libsimde-dev)
// emulates the AVX-512 intrinsics; the few SIMDe 0.7.4 lacks are built here
// from 256-bit ones (F16C conversions run on the real hardware). Masked
// loads/stores touch only their lanes; streaming stores trap if misaligned.
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <simde/x86/f16c.h>
// Intrinsics SIMDe 0.7.4 lacks, built from its 256-bit ones.
static inline simde__m256i sim_cvtps_ph512(simde__m512 x, int) {
  simde__m256 lo = simde_mm512_castps512_ps256(x);
  simde__m256 hi = simde_mm256_castpd_ps(simde_mm512_extractf64x4_pd(simde_mm512_castps_pd(x), 1));
  return simde_mm256_set_m128i(simde_mm256_cvtps_ph(hi, 0), simde_mm256_cvtps_ph(lo, 0));
}
static inline simde__m512 sim_cvtph_ps512(simde__m256i h) {
  simde__m256 lo = simde_mm256_cvtph_ps(simde_mm256_castsi256_si128(h));
  simde__m256 hi = simde_mm256_cvtph_ps(simde_mm256_extracti128_si256(h, 1));
  return simde_mm512_insertf32x8(simde_mm512_castps256_ps512(lo), hi, 1);
}
static inline simde__m256i sim_cvtepi32_epi16(simde__m512i v) {
  int32_t in[16]; int16_t out[16];
  simde_mm512_storeu_si512(in, v);
  for (int i = 0; i < 16; ++i) out[i] = (int16_t)in[i];
  return simde_mm256_loadu_si256(out);
}
#undef _mm512_cvtps_ph
#undef _mm512_cvtph_ps
#undef _mm512_cvtepi32_epi16
#define _mm512_cvtps_ph(x, imm) sim_cvtps_ph512(x, imm)
#define _mm512_cvtph_ps(h) sim_cvtph_ps512(h)
#define _mm512_cvtepi32_epi16(v) sim_cvtepi32_epi16(v)
static inline simde__m512i sim_cvtepu16_epi32(simde__m256i h) {
  return simde_mm512_inserti64x4(simde_mm512_castsi256_si512(simde_mm256_cvtepu16_epi32(simde_mm256_castsi256_si128(h))),
                                 simde_mm256_cvtepu16_epi32(simde_mm256_extracti128_si256(h, 1)), 1);
}
static inline simde__mmask16 sim_cmpgt_epi16_mask(simde__m256i a, simde__m256i b) {
  int16_t x[16], y[16]; simde_mm256_storeu_si256(x, a); simde_mm256_storeu_si256(y, b);
  unsigned m = 0; for (int i = 0; i < 16; ++i) m |= (unsigned)(x[i] > y[i]) << i; return (simde__mmask16)m;
}
#undef _mm512_cvtepu16_epi32
#undef _mm256_cmpgt_epi16_mask
#define _mm512_cvtepu16_epi32(h) sim_cvtepu16_epi32(h)
#define _mm256_cmpgt_epi16_mask(a, b) sim_cmpgt_epi16_mask(a, b)
static inline simde__m512 sim_maskz_loadu_ps(simde__mmask16 m, const void* p) {
  float v[16]; for (int i = 0; i < 16; ++i) v[i] = ((m >> i) & 1) ? ((const float*)p)[i] : 0.0f; return simde_mm512_loadu_ps(v);
}
static inline void sim_mask_storeu_epi16(void* p, simde__mmask16 m, simde__m256i a) {
  uint16_t v[16]; simde_mm256_storeu_si256(v, a); for (int i = 0; i < 16; ++i) if ((m >> i) & 1) ((uint16_t*)p)[i] = v[i];
}
static inline simde__m256i sim_maskz_loadu_epi16(simde__mmask16 m, const void* p) {
  uint16_t v[16]; for (int i = 0; i < 16; ++i) v[i] = ((m >> i) & 1) ? ((const uint16_t*)p)[i] : 0; return simde_mm256_loadu_si256(v);
}
static inline void sim_mask_storeu_ps(void* p, simde__mmask16 m, simde__m512 a) {
  float v[16]; simde_mm512_storeu_ps(v, a); for (int i = 0; i < 16; ++i) if ((m >> i) & 1) ((float*)p)[i] = v[i];
}
static inline void sim_stream_si512(void* p, simde__m512i a) {
  if ((uintptr_t)p % 64) __builtin_trap(); simde_mm512_storeu_si512(p, a);
}
static inline void sim_stream_ps(void* p, simde__m512 a) {
  if ((uintptr_t)p % 64) __builtin_trap(); simde_mm512_storeu_ps(p, a);
}
#undef _mm512_maskz_loadu_ps
#undef _mm256_mask_storeu_epi16
#undef _mm256_maskz_loadu_epi16
#undef _mm512_mask_storeu_ps
#undef _mm512_stream_si512
#undef _mm512_stream_ps
#define _mm512_maskz_loadu_ps(m, p) sim_maskz_loadu_ps(m, p)
#define _mm256_mask_storeu_epi16(p, m, a) sim_mask_storeu_epi16(p, m, a)
#define _mm256_maskz_loadu_epi16(m, p) sim_maskz_loadu_epi16(m, p)
#define _mm512_mask_storeu_ps(p, m, a) sim_mask_storeu_ps(p, m, a)
#define _mm512_stream_si512(p, a) sim_stream_si512(p, a)
#define _mm512_stream_ps(p, a) sim_stream_ps(p, a)
