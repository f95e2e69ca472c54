// SDOT micro-kernel (ARMv8.2 dot product) on the kQuads layout: A's uint8
// quads become int8 by a ^ 0x80 (a - 128) and the tile adds 128 * sum(B) back
// (gemm_neon_dot_tile.h). 4 rows: 16 accumulators, 4 corrections, 4 B vectors.
#include "gemm/gemm_neon_dot_tile.h"

namespace qk::gemm::neon_dotprod {
namespace {

struct Sdot {
  static constexpr bool kSignedA = true;
  static int32x4_t dot(int32x4_t acc, uint8x16_t a, int8x16_t b) {
    return vdotq_s32(acc, vreinterpretq_s8_u8(veorq_u8(a, vdupq_n_u8(0x80))), b);
  }
};

constexpr int kMR = 4, kNP = 1;

void tile(const Tile& t, int mr, int np) {
  dispatch_tile<kMR, kNP>(mr, np, [&](auto r, auto) { neon_dot::tile<Sdot, r()>(t); });
}

}  // namespace

const GemmKernels kernels = {Layout::kQuads, &kShiftedQuads, kMR, kNP, 1, tile, nullptr, nullptr};

}  // namespace qk::gemm::neon_dotprod
