// AVX2 micro-kernel on the kPairs layout: a 6 x 16 tile, B bytes widened to
// int16 with the memory-source form of vpmovsxbw (the register form plus
// vextracti128 costs a multiply port on AMD Zen), multiplied by a broadcast
// int16 pair of A with vpmaddwd. Exact: a pair sum is at most 2 * 255 * 128,
// far from int32 overflow, unlike vpmaddubsw's saturating int16 sums.
// Registers: 12 accumulators, 2 B vectors, 1 A broadcast, 1 product = 16 ymm.
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

// 16 bytes of B (8 columns' pairs) widened from memory: vpmovsxbw ymm, m128.
inline __m256i widen(const int8_t* p) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// Accumulators are named variables, not an array, so the compiler keeps all
// twelve in registers (an array made it spill one per iteration).
// A is kInt16Rows: row r's pair of step q at a + r * lda + 2 * q.
template <int MR>
void tile(const Tile& t) {
  const int16_t* a = static_cast<const int16_t*>(t.a);
  const size_t lda = t.lda / sizeof(int16_t);
  __m256i c0l = _mm256_setzero_si256(), c0h = c0l, c1l = c0l, c1h = c0l, c2l = c0l, c2h = c0l, c3l = c0l,
          c3h = c0l, c4l = c0l, c4h = c0l, c5l = c0l, c5h = c0l;
  if (t.accumulate) {
    auto load = [&](int r, int half) {
      return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.c + r * t.ldc + 8 * half));
    };
    c0l = load(0, 0), c0h = load(0, 1);
    if (MR > 1) c1l = load(1, 0), c1h = load(1, 1);
    if (MR > 2) c2l = load(2, 0), c2h = load(2, 1);
    if (MR > 3) c3l = load(3, 0), c3h = load(3, 1);
    if (MR > 4) c4l = load(4, 0), c4h = load(4, 1);
    if (MR > 5) c5l = load(5, 0), c5h = load(5, 1);
  }
  const int8_t* b = t.b;
  for (size_t q = 0; q < t.k_steps; ++q, a += 2, b += 2 * kNR) {
    const __m256i b_lo = widen(b);       // columns 0..7
    const __m256i b_hi = widen(b + 16);  // columns 8..15
    row_step(a, b_lo, b_hi, c0l, c0h);
    if (MR > 1) row_step(a + lda, b_lo, b_hi, c1l, c1h);
    if (MR > 2) row_step(a + 2 * lda, b_lo, b_hi, c2l, c2h);
    if (MR > 3) row_step(a + 3 * lda, b_lo, b_hi, c3l, c3h);
    if (MR > 4) row_step(a + 4 * lda, b_lo, b_hi, c4l, c4h);
    if (MR > 5) row_step(a + 5 * lda, b_lo, b_hi, c5l, c5h);
  }
  const __m256i rows[6][2] = {{c0l, c0h}, {c1l, c1h}, {c2l, c2h}, {c3l, c3h}, {c4l, c4h}, {c5l, c5h}};
  for (int r = 0; r < MR; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(t.c + r * t.ldc), rows[r][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(t.c + r * t.ldc + 8), rows[r][1]);
  }
}

void tile(const Tile& t, int mr, int np) {
  dispatch_tile<6, 1>(mr, np, [&](auto r, auto) { tile<r()>(t); });
}

}  // namespace

const GemmKernels kernels = {Layout::kPairs, &kInt16Rows, 6, 1, 1, tile, nullptr, nullptr};

}  // namespace qk::gemm::avx2
