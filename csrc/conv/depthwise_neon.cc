// Depthwise kernel compiled for the neon path (depthwise_kernel.inc).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "conv/depthwise_kernels.h"

namespace qk::conv::neon {
constexpr size_t kLanes = 4;  // int32 lanes of one vector register
#include "conv/depthwise_kernel.inc"
const DepthwiseKernels kernels = {row<VectorBlock>};
}  // namespace qk::conv::neon
