// Portable micro-kernel on the kPairs layout; the reference every path matches.
#include <cstdint>

#include "gemm/gemm_kernels.h"

namespace qk::gemm::scalar {
namespace {

template <int MR>
void tile(const void* av, size_t lda, const int8_t* b, size_t k_steps, int32_t* c) {
  const int16_t* a = static_cast<const int16_t*>(av);
  for (int r = 0; r < MR; ++r) {
    const int16_t* row = a + r * lda;
    // Unsigned accumulation: wraps modulo 2^32 without undefined behaviour.
    uint32_t acc[kNR] = {};
    for (size_t q = 0; q < k_steps; ++q) {
      const int32_t a0 = row[2 * q], a1 = row[2 * q + 1];
      const int8_t* bq = b + q * 2 * kNR;
      for (int n = 0; n < kNR; ++n) acc[n] += static_cast<uint32_t>(a0 * bq[2 * n] + a1 * bq[2 * n + 1]);
    }
    for (int n = 0; n < kNR; ++n) c[r * kNR + n] = static_cast<int32_t>(acc[n]);
  }
}

}  // namespace

const GemmKernels kernels = {Layout::kPairs, {nullptr, tile<1>, tile<2>, tile<3>, tile<4>}};

}  // namespace qk::gemm::scalar
