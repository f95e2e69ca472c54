#include "float_ops/float_ops.h"

#include "cpu/kernel_table.h"
#include "float_ops/float_ops_kernels.h"
#include "parallel/parallel.h"

namespace qk::float_ops {
namespace {

constexpr KernelTable<FloatOpsKernels> kTable = {
    {Isa::scalar, &scalar::kernels},
    QK_ON_x86_64({Isa::avx2, &avx2::kernels}, {Isa::avx512, &avx512::kernels}, )
    QK_ON_aarch64({Isa::neon, &neon::kernels}, )
};

// Values per thread chunk: below this, threads cost more than they save.
constexpr size_t kGrain = size_t(1) << 15;

size_t rows_per_chunk(size_t cols) { return cols >= kGrain ? 1 : kGrain / (cols ? cols : 1); }

}  // namespace

Isa selected_isa() { return kTable.select(); }

void gelu(const float* x, float* y, size_t n) {
  const FloatOpsKernels& k = kTable.at(kTable.select());
  parallel_for(n, kGrain, 16, [&](size_t b, size_t e) { k.gelu(x + b, y + b, e - b); });
}

void softmax(const float* x, const float* mask, const int64_t* mask_rows, bool nan_to_zero, float* y, size_t rows,
             size_t cols) {
  const FloatOpsKernels& k = kTable.at(kTable.select());
  parallel_for(rows, rows_per_chunk(cols), 1, [&](size_t b, size_t e) {
    k.softmax(x + b * cols, mask, mask ? mask_rows + b : nullptr, nan_to_zero, y + b * cols, e - b, cols);
  });
}

void layer_norm(const float* x, const float* gamma, const float* beta, float eps, size_t rows, size_t cols, float* y,
                float* mean, float* inv) {
  const FloatOpsKernels& k = kTable.at(kTable.select());
  parallel_for(rows, rows_per_chunk(cols), 1, [&](size_t b, size_t e) {
    k.layer_norm(x + b * cols, gamma, beta, eps, e - b, cols, y + b * cols, mean + b, inv + b);
  });
}

}  // namespace qk::float_ops
