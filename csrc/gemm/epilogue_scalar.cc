// The float and requantizing epilogues compiled for the scalar path (epilogue_kernel.inc).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "cpu/vector_lanes.h"
#include "gemm/epilogue_kernels.h"

namespace qk::gemm::scalar {
constexpr size_t kLanes = 4;  // floats per vector register
#include "gemm/epilogue_kernel.inc"
}  // namespace qk::gemm::scalar
