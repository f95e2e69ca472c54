// Float op kernels compiled for the avx512 path (float_ops_kernel.inc).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "float_ops/float_ops_kernels.h"

namespace qk::float_ops::avx512 {
constexpr size_t kLanes = 16;  // floats per vector register
#include "float_ops/float_ops_kernel.inc"
}  // namespace qk::float_ops::avx512
