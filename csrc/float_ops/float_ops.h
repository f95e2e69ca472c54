// The transformer ops of the graph executor in float32 (GELU; softmax and
// LayerNorm over rows), on the best ISA path, split across threads.
// Results do not depend on the path or the thread count.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpu/isa.h"

namespace qk::float_ops {

void gelu(const float* x, float* y, size_t n);
// mask (may be null): row r adds the cols values at mask + mask_rows[r].
void softmax(const float* x, const float* mask, const int64_t* mask_rows, bool nan_to_zero, float* y, size_t rows,
             size_t cols);
void layer_norm(const float* x, const float* gamma, const float* beta, float eps, size_t rows, size_t cols, float* y,
                float* mean, float* inv);
Isa selected_isa();  // the path these calls take now

}  // namespace qk::float_ops
