// Float op kernels compiled for the scalar path (float_ops_kernel.inc).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "float_ops/float_ops_kernels.h"

namespace qk::float_ops::scalar {
constexpr size_t kLanes = 4;  // floats per vector register
#include "float_ops/float_ops_kernel.inc"
}  // namespace qk::float_ops::scalar
