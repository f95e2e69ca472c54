#pragma once
// SIMDe's AVX-512 emulation (see simde_shim.h) plus what the quant and GEMM
// kernels use that SIMDe 0.7.4 lacks: the AVX-VNNI spelling of vpdpbusd,
// vcvtps2dq on zmm, and the masked truncating store vpmovdb.
#include <cmath>

#include "simde_shim.h"

#undef _mm256_dpbusd_avx_epi32
#define _mm256_dpbusd_avx_epi32(src, a, b) simde_mm256_dpbusd_epi32(src, a, b)

static inline simde__m512i sim_cvtps_epi32(simde__m512 v) {
  float in[16];
  int32_t out[16];
  simde_mm512_storeu_ps(in, v);
  for (int i = 0; i < 16; ++i) out[i] = (int32_t)std::nearbyint(in[i]);  // MXCSR rounding: nearest even
  return simde_mm512_loadu_si512(out);
}
static inline void sim_mask_cvtepi32_storeu_epi8(void* p, simde__mmask16 m, simde__m512i v) {
  int32_t in[16];
  simde_mm512_storeu_si512(in, v);
  for (int i = 0; i < 16; ++i)
    if ((m >> i) & 1) ((uint8_t*)p)[i] = (uint8_t)in[i];
}
#undef _mm512_cvtps_epi32
#undef _mm512_mask_cvtepi32_storeu_epi8
#define _mm512_cvtps_epi32(v) sim_cvtps_epi32(v)
#define _mm512_mask_cvtepi32_storeu_epi8(p, m, v) sim_mask_cvtepi32_storeu_epi8(p, m, v)
static inline simde__m512 sim_cvtepi32_ps(simde__m512i v) {
  int32_t in[16];
  float out[16];
  simde_mm512_storeu_si512(in, v);
  for (int i = 0; i < 16; ++i) out[i] = (float)in[i];
  return simde_mm512_loadu_ps(out);
}
static inline simde__m512i sim_cvtepi8_epi32(simde__m128i v) {
  int8_t in[16];
  int32_t out[16];
  simde_mm_storeu_si128(in, v);
  for (int i = 0; i < 16; ++i) out[i] = in[i];
  return simde_mm512_loadu_si512(out);
}
static inline simde__m512i sim_cvtepu8_epi32(simde__m128i v) {
  uint8_t in[16];
  int32_t out[16];
  simde_mm_storeu_si128(in, v);
  for (int i = 0; i < 16; ++i) out[i] = in[i];
  return simde_mm512_loadu_si512(out);
}
static inline simde__m128i sim_maskz_loadu_epi8(simde__mmask16 m, const void* p) {
  uint8_t v[16];
  for (int i = 0; i < 16; ++i) v[i] = ((m >> i) & 1) ? ((const uint8_t*)p)[i] : 0;
  return simde_mm_loadu_si128(v);
}
#undef _mm512_cvtepi32_ps
#undef _mm512_cvtepi8_epi32
#undef _mm512_cvtepu8_epi32
#undef _mm_maskz_loadu_epi8
#define _mm512_cvtepi32_ps(v) sim_cvtepi32_ps(v)
#define _mm512_cvtepi8_epi32(v) sim_cvtepi8_epi32(v)
#define _mm512_cvtepu8_epi32(v) sim_cvtepu8_epi32(v)
#define _mm_maskz_loadu_epi8(m, p) sim_maskz_loadu_epi8(m, p)
static inline simde__m512 sim_mask_loadu_ps(simde__m512 src, simde__mmask16 m, const void* p) {
  float v[16];
  simde_mm512_storeu_ps(v, src);
  for (int i = 0; i < 16; ++i)
    if ((m >> i) & 1) v[i] = ((const float*)p)[i];
  return simde_mm512_loadu_ps(v);
}
#undef _mm512_mask_loadu_ps
#define _mm512_mask_loadu_ps(src, m, p) sim_mask_loadu_ps(src, m, p)
