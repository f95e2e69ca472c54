// AVX-VNNI micro-kernel on the kQuads layout: vpdpbusd multiplies 4 unsigned
// bytes of A by 4 signed bytes of B and adds the 4 products to an int32 lane
// (no intermediate saturation: the plain, non-"s" form).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "gemm/gemm_kernels.h"

namespace qk::gemm::avx_vnni {
namespace {

template <int MR>
void tile(const void* av, size_t lda, const int8_t* b, size_t k_steps, int32_t* c) {
  const uint8_t* a = static_cast<const uint8_t*>(av);
  __m256i acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  for (size_t q = 0; q < k_steps; ++q) {
    const __m256i b_lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + q * 4 * kNR));       // cols 0..7
    const __m256i b_hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + q * 4 * kNR + 32));  // cols 8..15
    for (int r = 0; r < MR; ++r) {
      int32_t quad;
      std::memcpy(&quad, a + r * lda + 4 * q, sizeof quad);
      const __m256i a_quad = _mm256_set1_epi32(quad);
      acc[r][0] = _mm256_dpbusd_avx_epi32(acc[r][0], a_quad, b_lo);
      acc[r][1] = _mm256_dpbusd_avx_epi32(acc[r][1], a_quad, b_hi);
    }
  }
  for (int r = 0; r < MR; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * kNR), acc[r][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * kNR + 8), acc[r][1]);
  }
}

}  // namespace

const GemmKernels kernels = {Layout::kQuads, {nullptr, tile<1>, tile<2>, tile<3>, tile<4>}};

}  // namespace qk::gemm::avx_vnni
