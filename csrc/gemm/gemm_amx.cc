// The AMX-INT8 kernel on the real tile instructions (see amx.h).
#include <immintrin.h>

#include <cstring>

#include "gemm/amx.h"

namespace qk::gemm::amx {
#include "gemm/amx_kernel.inc"
}  // namespace qk::gemm::amx
