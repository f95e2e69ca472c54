// Float32 kernels of the graph executor's transformer ops (GELU, softmax, LayerNorm), one table per ISA
// (float_ops_<isa>.cc, each compiling float_ops_kernel.inc with its flags).
// Every path computes on the same 16-float logical vectors, in the same
// order, with the same polynomials (and the build passes -ffp-contract=off),
// so all paths agree bit for bit; only the instructions differ.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qk::float_ops {

struct FloatOpsKernels {
  // y = x * Phi(x), the exact (erf) GELU, elementwise over n values.
  void (*gelu)(const float* x, float* y, size_t n);
  // Each of `rows` rows of `cols` values: y = exp(z - max) * (1 / sum), z = x, or
  // x + the `cols` values at mask + mask_rows[row] when mask is not null;
  // NaN results become 0 when nan_to_zero.
  void (*softmax)(const float* x, const float* mask, const int64_t* mask_rows, bool nan_to_zero, float* y,
                  size_t rows, size_t cols);
  // Each row: mean, inv = 1 / sqrt(mean((x - mean)^2) + eps) (one value per
  // row each), y = (x - mean) * inv * gamma + beta (beta may be null).
  void (*layer_norm)(const float* x, const float* gamma, const float* beta, float eps, size_t rows, size_t cols,
                     float* y, float* mean, float* inv);
};

// Defined only on their architecture (cpu/isa_list.h).
namespace scalar { extern const FloatOpsKernels kernels; }
namespace avx2 { extern const FloatOpsKernels kernels; }
namespace avx512 { extern const FloatOpsKernels kernels; }
namespace neon { extern const FloatOpsKernels kernels; }

}  // namespace qk::float_ops
