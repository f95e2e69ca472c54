// Depthwise kernel compiled for the avx512 path (depthwise_kernel.inc, 16-channel blocks of depthwise_madd.inc).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "conv/depthwise_kernels.h"

namespace qk::conv::avx512 {
constexpr size_t kLanes = 16;  // int32 lanes of one vector register
#include "conv/depthwise_kernel.inc"
#include "conv/depthwise_madd.inc"
const DepthwiseKernels kernels = {row<MaddBlock>};
}  // namespace qk::conv::avx512
