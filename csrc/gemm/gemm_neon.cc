// NEON micro-kernel (aarch64 without dot products) on the kPairs layout. A
// step's panel row (16 columns x (k, k+1)) widens to four int16x8 vectors;
// SMLAL / SMLAL2 against the broadcast A pair (a0, a1, a0, a1, ...) add
// a0 * b(k, n) and a1 * b(k+1, n) into neighbouring int32 lanes, and one
// pairwise add per 4 columns at the end gives the sums. Exact: int32 lanes
// wrap modulo 2^32 like the reference, in any order of addition.
// 3 rows: 24 accumulators, 4 B vectors and the A broadcast in 32 registers.
#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "gemm/gemm_kernels.h"

namespace qk::gemm::neon {
namespace {

constexpr int kMR = 3, kNP = 1;

template <int MR>
void tile_rows(const Tile& t) {
  const int16_t* a = static_cast<const int16_t*>(t.a);
  int32x4_t acc[MR][8];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < 8; ++v) acc[r][v] = vdupq_n_s32(0);
  const int8_t* b = t.b;
  for (size_t q = 0; q < t.k_steps; ++q, b += 2 * kNR, a += 2 * MR) {
    const int8x16_t b01 = vld1q_s8(b), b23 = vld1q_s8(b + 16);
    const int16x8_t bv[4] = {vmovl_s8(vget_low_s8(b01)), vmovl_high_s8(b01), vmovl_s8(vget_low_s8(b23)),
                             vmovl_high_s8(b23)};
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      int32_t pair;
      std::memcpy(&pair, a + 2 * r, sizeof pair);
      const int16x8_t x = vreinterpretq_s16_s32(vdupq_n_s32(pair));
#pragma GCC unroll 8
      for (int v = 0; v < 4; ++v) {
        acc[r][2 * v] = vmlal_s16(acc[r][2 * v], vget_low_s16(x), vget_low_s16(bv[v]));
        acc[r][2 * v + 1] = vmlal_high_s16(acc[r][2 * v + 1], x, bv[v]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    int32_t* c = t.c + r * t.ldc;
#pragma GCC unroll 8
    for (int v = 0; v < 4; ++v) {
      int32x4_t sum = vpaddq_s32(acc[r][2 * v], acc[r][2 * v + 1]);
      if (t.accumulate) sum = vaddq_s32(sum, vld1q_s32(c + 4 * v));
      vst1q_s32(c + 4 * v, sum);
    }
  }
}

void tile(const Tile& t, int mr, int np) {
  dispatch_tile<kMR, kNP>(mr, np, [&](auto r, auto) { tile_rows<r()>(t); });
}

}  // namespace

const GemmKernels kernels = {Layout::kPairs, &kInt16Pairs, kMR, kNP, 1, tile, nullptr, nullptr};

}  // namespace qk::gemm::neon
