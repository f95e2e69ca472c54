// AVX-VNNI micro-kernel on the kQuads layout: vpdpbusd (VEX form) on ymm, two
// per panel row. Only 16 ymm registers exist without AVX-512, so the tile is
// 4 rows x 1 panel: 8 accumulators, 2 B vectors and a broadcast A quad.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "gemm/gemm_vnni_tile.h"

namespace qk::gemm::avx_vnni {
namespace {

struct Ymm {
  using Reg = __m256i;
  static constexpr int kLanes = 8;
  static Reg zero() { return _mm256_setzero_si256(); }
  static Reg load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
  static void store(void* p, Reg v) { _mm256_storeu_si256(static_cast<__m256i*>(p), v); }
  static Reg broadcast(const uint8_t* p) {
    int32_t quad;
    std::memcpy(&quad, p, sizeof quad);
    return _mm256_set1_epi32(quad);
  }
  static Reg dpbusd(Reg acc, Reg a, Reg b) { return _mm256_dpbusd_avx_epi32(acc, a, b); }
};

constexpr int kMR = 4, kNP = 1;

void tile(const Tile& t, int mr, int np) {
  dispatch_tile<kMR, kNP>(mr, np, [&](auto r, auto p) { vnni::tile<Ymm, r(), p()>(t); });
}

}  // namespace

const GemmKernels kernels = {Layout::kQuads, &kShiftedRows, kMR, kNP, 1, tile, nullptr, nullptr};

}  // namespace qk::gemm::avx_vnni
