// Portable path: the exact bit rules, in integer arithmetic only, so the
// results cannot depend on the floating-point environment (rounding mode,
// DAZ, FTZ). This file is also the specification the SIMD paths follow.
//
// FP32 -> FP16 (NumPy's npy_floatbits_to_halfbits, bit for bit):
//   - |x| rounds to nearest even on 10 fraction bits; subnormal halves are
//     kept; results >= 65520 (the midpoint above 65504) become inf;
//   - NaN keeps its sign and the top 10 fraction bits, NOT quieted (a
//     signalling NaN stays signalling); a payload that truncates to 0 becomes
//     1 so the result is still a NaN (float 0x7f800001 -> half 0x7c01).
// FP16 -> FP32: exact; NaN keeps sign and payload, NOT quieted
//   (half 0x7c01 -> float 0x7f802000).
// FP32 -> BF16: the top 16 bits rounded to nearest even (overflow gives
//   inf); NaN keeps sign and top payload bits with the quiet bit set.
// BF16 -> FP32: the 16 bits shifted up, exact.
#include <cstring>

#include "fp16/fp16_kernels.h"

namespace qk::fp16::scalar {
namespace {

uint16_t f32_to_f16_bits(uint32_t f) {
  const uint32_t sign = (f >> 16) & 0x8000u;
  const uint32_t a = f & 0x7fffffffu;
  if (a >= 0x477ff000u) {  // rounds to inf, or is inf / NaN
    if (a > 0x7f800000u) {
      const uint32_t payload = (a >> 13) & 0x3ffu;
      return static_cast<uint16_t>(sign | 0x7c00u | (payload != 0 ? payload : 1u));
    }
    return static_cast<uint16_t>(sign | 0x7c00u);
  }
  if (a >= 0x38800000u)  // normal half: rebias, round on the 13 dropped bits
    return static_cast<uint16_t>(sign | ((a - 0x38000000u + 0xfffu + ((a >> 13) & 1u)) >> 13));
  if (a <= 0x33000000u) return static_cast<uint16_t>(sign);  // <= 2^-25: ties to even (0)
  // Subnormal half: |x| / 2^-24 = m * 2^(e - 126), rounded to an integer.
  // The carry out of a round-up (1024) is the smallest normal, as it should be.
  const uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u, s = 126u - e;  // s in [14, 24]
  const uint32_t q = m >> s, rem = m & ((1u << s) - 1u), half = 1u << (s - 1u);
  return static_cast<uint16_t>(sign | (q + ((rem > half) | ((rem == half) & (q & 1u)))));
}

uint32_t f16_to_f32_bits(uint16_t h) {
  const uint32_t sign = (uint32_t(h) & 0x8000u) << 16;
  uint32_t a = h & 0x7fffu;
  if (a >= 0x7c00u) return sign | 0x7f800000u | ((a & 0x3ffu) << 13);  // inf / NaN
  if (a >= 0x0400u) return sign | ((a << 13) + 0x38000000u);           // normal
  if (a == 0) return sign;
  // Subnormal a * 2^-24: shift the leading 1 up to bit 10.
  uint32_t shift = 0;
  while ((a & 0x400u) == 0) {
    a <<= 1;
    ++shift;
  }
  return sign | ((113u - shift) << 23) | ((a & 0x3ffu) << 13);
}

uint16_t f32_to_bf16_bits(uint32_t f) {
  if ((f & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((f >> 16) | 0x40u);
  return static_cast<uint16_t>((f + 0x7fffu + ((f >> 16) & 1u)) >> 16);
}

void f32_to_f16(const float* x, uint16_t* h, size_t n, bool) {
  for (size_t i = 0; i < n; ++i) {
    uint32_t f;
    std::memcpy(&f, x + i, 4);
    h[i] = f32_to_f16_bits(f);
  }
}

void f16_to_f32(const uint16_t* h, float* x, size_t n, bool) {
  for (size_t i = 0; i < n; ++i) {
    const uint32_t f = f16_to_f32_bits(h[i]);
    std::memcpy(x + i, &f, 4);
  }
}

void f32_to_bf16(const float* x, uint16_t* b, size_t n, bool) {
  for (size_t i = 0; i < n; ++i) {
    uint32_t f;
    std::memcpy(&f, x + i, 4);
    b[i] = f32_to_bf16_bits(f);
  }
}

void bf16_to_f32(const uint16_t* b, float* x, size_t n, bool) {
  for (size_t i = 0; i < n; ++i) {
    const uint32_t f = uint32_t(b[i]) << 16;
    std::memcpy(x + i, &f, 4);
  }
}

}  // namespace

const Fp16Kernels kernels = {f32_to_f16, f16_to_f32, f32_to_bf16, bf16_to_f32};

}  // namespace qk::fp16::scalar
