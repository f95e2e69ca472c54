// AVX-512 VNNI micro-kernel on the kQuads layout: one zmm holds a tile row's
// 16 columns; vpdpbusd as in the AVX-VNNI path, 512 bits wide.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "gemm/gemm_kernels.h"

namespace qk::gemm::avx512_vnni {
namespace {

template <int MR>
void tile(const void* av, size_t lda, const int8_t* b, size_t k_steps, int32_t* c) {
  const uint8_t* a = static_cast<const uint8_t*>(av);
  __m512i acc[MR];
  for (int r = 0; r < MR; ++r) acc[r] = _mm512_setzero_si512();
  for (size_t q = 0; q < k_steps; ++q) {
    const __m512i bq = _mm512_loadu_si512(b + q * 4 * kNR);
    for (int r = 0; r < MR; ++r) {
      int32_t quad;
      std::memcpy(&quad, a + r * lda + 4 * q, sizeof quad);
      acc[r] = _mm512_dpbusd_epi32(acc[r], _mm512_set1_epi32(quad), bq);
    }
  }
  for (int r = 0; r < MR; ++r) _mm512_storeu_si512(c + r * kNR, acc[r]);
}

}  // namespace

const GemmKernels kernels = {Layout::kQuads, {nullptr, tile<1>, tile<2>, tile<3>, tile<4>}};

}  // namespace qk::gemm::avx512_vnni
