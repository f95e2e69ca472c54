// Depthwise kernel for the scalar path (depthwise_kernel.inc at the baseline
// flags): the reference the other paths match.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "conv/depthwise_kernels.h"

namespace qk::conv::scalar {
constexpr size_t kLanes = 4;  // int32 lanes of one vector register
#include "conv/depthwise_kernel.inc"
const DepthwiseKernels kernels = {row<VectorBlock>};
}  // namespace qk::conv::scalar
