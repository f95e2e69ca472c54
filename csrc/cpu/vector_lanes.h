// Byte <-> int32 / float conversions of GCC vector extensions for the
// kernels written in them (.inc files compiled once per ISA). GCC 12 turns
// the direct conversions into one scalar move per lane, except narrowing
// on AVX-512 (vpmovdb); through int16 each step is a few vector instructions. Internal linkage (anonymous namespace):
// every ISA file that includes this compiles its own copy with its flags.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace qk {
namespace {

template <size_t kLanes>
struct Lanes {
  typedef float Floats __attribute__((vector_size(4 * kLanes)));
  typedef int32_t Ints __attribute__((vector_size(4 * kLanes)));
  typedef int16_t Halves __attribute__((vector_size(2 * kLanes)));
  typedef uint8_t Bytes __attribute__((vector_size(kLanes)));
};

// uint8 lanes as floats (exact).
template <size_t kLanes>
inline typename Lanes<kLanes>::Floats bytes_to_floats(typename Lanes<kLanes>::Bytes v) {
  using L = Lanes<kLanes>;
  return __builtin_convertvector(__builtin_convertvector(__builtin_convertvector(v, typename L::Halves),
                                                         typename L::Ints),
                                 typename L::Floats);
}

// The low byte of each int32 lane.
template <size_t kLanes>
inline typename Lanes<kLanes>::Bytes low_bytes(typename Lanes<kLanes>::Ints v) {
  using L = Lanes<kLanes>;
#if defined(__AVX512F__)
  return __builtin_convertvector(v, typename L::Bytes);
#else
  return __builtin_convertvector(__builtin_convertvector(v, typename L::Halves), typename L::Bytes);
#endif
}

// The first n < sizeof(V) / sizeof(T) lanes of v to dst: one masked store
// on AVX-512, else power-of-two pieces of fixed size (a byte loop or a
// variable-length memcpy cost more than the vector they finish).
template <class T, class V>
inline void store_prefix(T* dst, V v, size_t n) {
#if defined(__AVX512F__)
  const __mmask16 mask = static_cast<__mmask16>((1u << n) - 1u);
  if constexpr (sizeof(V) == 64 && sizeof(T) == 4) {
    _mm512_mask_storeu_epi32(dst, mask, (__m512i)v);
    return;
  } else if constexpr (sizeof(V) == 16 && sizeof(T) == 1) {
    _mm_mask_storeu_epi8(dst, mask, (__m128i)v);
    return;
  }
#endif
  const char* src = reinterpret_cast<const char*>(&v);
  char* out = reinterpret_cast<char*>(dst);
  const size_t bytes = n * sizeof(T);
  size_t at = 0;
#pragma GCC unroll 8
  for (size_t piece = sizeof(V) / 2; piece > 0; piece /= 2)
    if (bytes & piece) {
      std::memcpy(out + at, src + at, piece);
      at += piece;
    }
}

// rint (round half to even) of floats below 2^22 in magnitude: one
// rounding instruction where the ISA has one with the rounding mode in the
// instruction (not the MXCSR's), else (t + 1.5 * 2^23) - 1.5 * 2^23. Exact
// both ways, so every path gives the same integers.
template <size_t kLanes>
inline typename Lanes<kLanes>::Floats round_even(typename Lanes<kLanes>::Floats t) {
  using Floats = typename Lanes<kLanes>::Floats;  // casts to the intrinsics' types: same-size vectors
#if defined(__x86_64__)
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
#endif
#if defined(__AVX512F__)
  if constexpr (kLanes == 16) return (Floats)_mm512_roundscale_ps((__m512)t, kNearest);
#endif
#if defined(__AVX__)
  if constexpr (kLanes == 8) return (Floats)_mm256_round_ps((__m256)t, kNearest);
#endif
#if defined(__aarch64__)
  if constexpr (kLanes == 4) return (Floats)vrndnq_f32((float32x4_t)t);
#endif
  constexpr float kMagic = 12582912.0f;
  return (t + kMagic) - kMagic;
}

// rint(t) as int32 lanes, for floats below 2^22 in magnitude: one
// conversion with round-to-nearest-even in the instruction on AVX-512, else
// round_even and an (exact) truncating conversion.
template <size_t kLanes>
inline typename Lanes<kLanes>::Ints round_to_ints(typename Lanes<kLanes>::Floats t) {
  using Ints = typename Lanes<kLanes>::Ints;
#if defined(__AVX512F__)
  if constexpr (kLanes == 16)
    return (Ints)_mm512_cvt_roundps_epi32((__m512)t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#endif
  return __builtin_convertvector(round_even<kLanes>(t), Ints);
}

// t clamped to [lo, hi], NaN to lo, up to the sign of a zero (which no
// integer conversion after it sees): (t >= lo ? t : lo), then (t <= hi ? t :
// hi), as one max and one min where the ISA's return the bound for NaN
// (x86's maxps / minps with the bound second), else as those selects.
template <size_t kLanes>
inline typename Lanes<kLanes>::Floats clamp_lanes(typename Lanes<kLanes>::Floats t, float lo, float hi) {
  using Floats = typename Lanes<kLanes>::Floats;
  const Floats vlo = Floats{} + lo, vhi = Floats{} + hi;
#if defined(__AVX512F__)
  if constexpr (kLanes == 16) return (Floats)_mm512_min_ps(_mm512_max_ps((__m512)t, (__m512)vlo), (__m512)vhi);
#endif
#if defined(__AVX__)
  if constexpr (kLanes == 8) return (Floats)_mm256_min_ps(_mm256_max_ps((__m256)t, (__m256)vlo), (__m256)vhi);
#endif
#if defined(__SSE2__)
  if constexpr (kLanes == 4) return (Floats)_mm_min_ps(_mm_max_ps((__m128)t, (__m128)vlo), (__m128)vhi);
#endif
  t = t >= vlo ? t : vlo;
  return t <= vhi ? t : vhi;
}

}  // namespace
}  // namespace qk
