// Portable micro-kernel on the kPairs layout; the reference every path matches.
#include <cstdint>

#include "gemm/gemm_kernels.h"

namespace qk::gemm::scalar {
namespace {

void tile(const Tile& t, int mr, int np) {
  const int16_t* a = static_cast<const int16_t*>(t.a);
  for (int p = 0; p < np; ++p)
    for (int r = 0; r < mr; ++r) {
      int32_t* c = t.c + r * t.ldc + p * kNR;
      // Unsigned accumulation: wraps modulo 2^32 without undefined behaviour.
      uint32_t acc[kNR] = {};
      if (t.accumulate)
        for (int n = 0; n < kNR; ++n) acc[n] = static_cast<uint32_t>(c[n]);
      const int8_t* b = t.b + p * t.b_stride;
      for (size_t q = 0; q < t.k_steps; ++q) {
        const int32_t a0 = a[(q * mr + r) * 2], a1 = a[(q * mr + r) * 2 + 1];
        const int8_t* bq = b + q * 2 * kNR;
        for (int n = 0; n < kNR; ++n) acc[n] += static_cast<uint32_t>(a0 * bq[2 * n] + a1 * bq[2 * n + 1]);
      }
      for (int n = 0; n < kNR; ++n) c[n] = static_cast<int32_t>(acc[n]);
    }
}

}  // namespace

const GemmKernels kernels = {Layout::kPairs, &kInt16Pairs, 4, 1, 1, tile, nullptr, nullptr};

}  // namespace qk::gemm::scalar
