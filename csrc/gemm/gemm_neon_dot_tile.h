// The dot-product tile shared by the neon_dotprod (SDOT) and i8mm (USDOT)
// files, on the kQuads layout (A as uint8 quads, B as int8 column quads).
// `D` wraps one instruction; each ISA file defines its own D in an anonymous
// namespace, so every instantiation has internal linkage and is compiled
// only with that file's flags.
#pragma once

#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "gemm/gemm_kernels.h"

namespace qk::gemm::neon_dot {

// C[MR x 16] (+)= A * B. Per step, the panel row is four int8x16 vectors of
// 4 columns x 4 k; each row's A quad is broadcast to all four lanes.
// D::dot(acc, a_quads, b) adds sum_k a[k] * b[k, n] per lane, with A taken
// as uint8 (USDOT) or, where D::kSignedA, as int8 a - 128 (SDOT on a ^ 0x80):
// then sum_k 128 * b[k, n] is added back once per tile, as -SDOT(-128, b).
template <class D, int MR>
void tile(const Tile& t) {
  const uint8_t* a = static_cast<const uint8_t*>(t.a);
  int32x4_t acc[MR][4], fix[4];
#pragma GCC unroll 8
  for (int v = 0; v < 4; ++v) {
    fix[v] = vdupq_n_s32(0);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) acc[r][v] = vdupq_n_s32(0);
  }
  const int8x16_t minus128 = vdupq_n_s8(-128);
  const int8_t* b = t.b;
  for (size_t q = 0; q < t.k_steps; ++q, b += 4 * kNR, a += 4 * MR) {
    const int8x16_t bv[4] = {vld1q_s8(b), vld1q_s8(b + 16), vld1q_s8(b + 32), vld1q_s8(b + 48)};
    if constexpr (D::kSignedA)
#pragma GCC unroll 8
      for (int v = 0; v < 4; ++v) fix[v] = vdotq_s32(fix[v], minus128, bv[v]);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      uint32_t quad;
      std::memcpy(&quad, a + 4 * r, sizeof quad);
      const uint8x16_t x = vreinterpretq_u8_u32(vdupq_n_u32(quad));
#pragma GCC unroll 8
      for (int v = 0; v < 4; ++v) acc[r][v] = D::dot(acc[r][v], x, bv[v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    int32_t* c = t.c + r * t.ldc;
#pragma GCC unroll 8
    for (int v = 0; v < 4; ++v) {
      int32x4_t sum = D::kSignedA ? vsubq_s32(acc[r][v], fix[v]) : acc[r][v];
      if (t.accumulate) sum = vaddq_s32(sum, vld1q_s32(c + 4 * v));
      vst1q_s32(c + 4 * v, sum);
    }
  }
}

}  // namespace qk::gemm::neon_dot
