// The float and requantizing epilogues compiled for the avx512 path (epilogue_kernel.inc).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "cpu/vector_lanes.h"
#include "gemm/epilogue_kernels.h"

namespace qk::gemm::avx512 {
constexpr size_t kLanes = 16;  // floats per vector register
#include "gemm/epilogue_kernel.inc"
}  // namespace qk::gemm::avx512
