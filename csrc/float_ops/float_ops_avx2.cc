// Float op kernels compiled for the avx2 path (float_ops_kernel.inc).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "float_ops/float_ops_kernels.h"

namespace qk::float_ops::avx2 {
constexpr size_t kLanes = 8;  // floats per vector register
#include "float_ops/float_ops_kernel.inc"
}  // namespace qk::float_ops::avx2
