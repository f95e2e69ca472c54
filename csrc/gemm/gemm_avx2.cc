// AVX2 micro-kernel on the kPairs layout: B bytes widened to int16 with
// vpmovsxbw, multiplied by a broadcast int16 pair of A with vpmaddwd. Exact:
// a pair sum is at most 2 * 255 * 128, far from int32 overflow, unlike
// vpmaddubsw's saturating int16 sums.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "gemm/gemm_kernels.h"

namespace qk::gemm::avx2 {
namespace {

template <int MR>
void tile(const void* av, size_t lda, const int8_t* b, size_t k_steps, int32_t* c) {
  const int16_t* a = static_cast<const int16_t*>(av);
  __m256i acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  for (size_t q = 0; q < k_steps; ++q) {
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + q * 2 * kNR));
    const __m256i b_lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(raw));       // columns 0..7
    const __m256i b_hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(raw, 1));  // columns 8..15
    for (int r = 0; r < MR; ++r) {
      int32_t pair;
      std::memcpy(&pair, a + r * lda + 2 * q, sizeof pair);
      const __m256i a_pair = _mm256_set1_epi32(pair);
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(a_pair, b_lo));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(a_pair, b_hi));
    }
  }
  for (int r = 0; r < MR; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * kNR), acc[r][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * kNR + 8), acc[r][1]);
  }
}

}  // namespace

const GemmKernels kernels = {Layout::kPairs, {nullptr, tile<1>, tile<2>, tile<3>, tile<4>}};

}  // namespace qk::gemm::avx2
