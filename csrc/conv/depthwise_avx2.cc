// Depthwise kernel compiled for the avx2 path (depthwise_kernel.inc).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "conv/depthwise_kernels.h"

namespace qk::conv::avx2 {
constexpr size_t kLanes = 8;  // int32 lanes of one vector register
#include "conv/depthwise_kernel.inc"
}  // namespace qk::conv::avx2
