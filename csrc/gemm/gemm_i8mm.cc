// USDOT micro-kernel (FEAT_I8MM) on the kQuads layout: uint8 A times int8 B
// directly, as vpdpbusd on x86 (gemm_neon_dot_tile.h). SMMLA's 2 x 8 blocks
// would need a B layout of their own; USDOT keeps the quad panels.
#include "gemm/gemm_neon_dot_tile.h"

namespace qk::gemm::i8mm {
namespace {

struct Usdot {
  static constexpr bool kSignedA = false;
  static int32x4_t dot(int32x4_t acc, uint8x16_t a, int8x16_t b) { return vusdotq_s32(acc, a, b); }
};

constexpr int kMR = 4, kNP = 1;

void tile(const Tile& t, int mr, int np) {
  dispatch_tile<kMR, kNP>(mr, np, [&](auto r, auto) { neon_dot::tile<Usdot, r()>(t); });
}

}  // namespace

const GemmKernels kernels = {Layout::kQuads, &kShiftedQuads, kMR, kNP, 1, tile, nullptr, nullptr};

}  // namespace qk::gemm::i8mm
