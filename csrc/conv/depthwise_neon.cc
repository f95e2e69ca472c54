// Depthwise kernel compiled for the neon path (depthwise_kernel.inc).
#include <cstddef>
#include <cstdint>

#include "conv/depthwise_kernels.h"

namespace qk::conv::neon {
#include "conv/depthwise_kernel.inc"
}  // namespace qk::conv::neon
