// AVX-512 VNNI micro-kernel on the kQuads layout: one zmm holds a panel row's
// 16 columns; vpdpbusd multiplies 4 unsigned bytes of A by 4 signed bytes of
// B and adds them to an int32 lane (the non-saturating form). The tile is
// 8 rows x 2 panels: 16 accumulators, 2 B vectors and a broadcast A quad,
// so each B load feeds 8 vpdpbusd and each A quad 2.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "gemm/gemm_vnni_tile.h"

namespace qk::gemm::avx512_vnni {
namespace {

struct Zmm {
  using Reg = __m512i;
  static constexpr int kLanes = 16;
  static Reg zero() { return _mm512_setzero_si512(); }
  static Reg load(const void* p) { return _mm512_loadu_si512(p); }
  static void store(void* p, Reg v) { _mm512_storeu_si512(p, v); }
  static Reg broadcast(const uint8_t* p) {
    int32_t quad;
    std::memcpy(&quad, p, sizeof quad);
    return _mm512_set1_epi32(quad);
  }
  static Reg dpbusd(Reg acc, Reg a, Reg b) { return _mm512_dpbusd_epi32(acc, a, b); }
};

constexpr int kMR = 8, kNP = 2;

void tile(const Tile& t, int mr, int np) {
  dispatch_tile<kMR, kNP>(mr, np, [&](auto r, auto p) { vnni::tile<Zmm, r(), p()>(t); });
}

}  // namespace

const GemmKernels kernels = {Layout::kQuads, &kShiftedRows, kMR, kNP, 1, tile, nullptr, nullptr};

}  // namespace qk::gemm::avx512_vnni
