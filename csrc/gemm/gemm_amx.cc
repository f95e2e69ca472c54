// The AMX-INT8 micro-kernel on the real tile instructions (amx_kernel.inc).
#include <immintrin.h>

#include <cstring>

#include "gemm/gemm_kernels.h"

namespace qk::gemm::amx {
#include "gemm/amx_kernel.inc"
}  // namespace qk::gemm::amx
