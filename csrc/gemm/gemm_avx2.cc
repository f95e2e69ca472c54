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

// One row of the tile: acc_lo/acc_hi += (the row's A pair at this step) * B.
inline void row_step(const int16_t* a_pair_ptr, __m256i b_lo, __m256i b_hi, __m256i& acc_lo, __m256i& acc_hi) {
  int32_t pair;
  std::memcpy(&pair, a_pair_ptr, sizeof pair);
  const __m256i a_pair = _mm256_set1_epi32(pair);
  acc_lo = _mm256_add_epi32(acc_lo, _mm256_madd_epi16(a_pair, b_lo));
  acc_hi = _mm256_add_epi32(acc_hi, _mm256_madd_epi16(a_pair, b_hi));
}

// Accumulators are named variables, not an array, so the compiler keeps all
// eight in registers (an array made it spill one per iteration).
template <int MR>
void tile(const Tile& t) {
  const int16_t* a = static_cast<const int16_t*>(t.a);
  __m256i c0l = _mm256_setzero_si256(), c0h = c0l, c1l = c0l, c1h = c0l, c2l = c0l, c2h = c0l, c3l = c0l,
          c3h = c0l;
  if (t.accumulate) {
    auto load = [&](int r, int half) {
      return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.c + r * t.ldc + 8 * half));
    };
    c0l = load(0, 0), c0h = load(0, 1);
    if (MR > 1) c1l = load(1, 0), c1h = load(1, 1);
    if (MR > 2) c2l = load(2, 0), c2h = load(2, 1);
    if (MR > 3) c3l = load(3, 0), c3h = load(3, 1);
  }
  const int8_t* b = t.b;
  for (size_t q = 0; q < t.k_steps; ++q, a += 2 * MR, b += 2 * kNR) {
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i b_lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(raw));       // columns 0..7
    const __m256i b_hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(raw, 1));  // columns 8..15
    row_step(a, b_lo, b_hi, c0l, c0h);
    if (MR > 1) row_step(a + 2, b_lo, b_hi, c1l, c1h);
    if (MR > 2) row_step(a + 4, b_lo, b_hi, c2l, c2h);
    if (MR > 3) row_step(a + 6, b_lo, b_hi, c3l, c3h);
  }
  const __m256i rows[4][2] = {{c0l, c0h}, {c1l, c1h}, {c2l, c2h}, {c3l, c3h}};
  for (int r = 0; r < MR; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(t.c + r * t.ldc), rows[r][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(t.c + r * t.ldc + 8), rows[r][1]);
  }
}

void tile(const Tile& t, int mr, int np) {
  dispatch_tile<4, 1>(mr, np, [&](auto r, auto) { tile<r()>(t); });
}

}  // namespace

const GemmKernels kernels = {Layout::kPairs, 4, 1, tile};

}  // namespace qk::gemm::avx2
