// Depthwise kernel compiled for the avx512 path (depthwise_kernel.inc).
#include <cstddef>
#include <cstdint>

#include "conv/depthwise_kernels.h"

namespace qk::conv::avx512 {
#include "conv/depthwise_kernel.inc"
}  // namespace qk::conv::avx512
