// The AMX-INT8 micro-kernel compiled against the scalar emulation of its
// intrinsics (amx_emulation.h): the test-only descriptor that proves the
// kernel on machines without AMX. Not a user path.
#include <cstring>

#include "gemm/amx_emulation.h"
#include "gemm/gemm_kernels.h"

namespace qk::gemm::amx_emulated {
#include "gemm/amx_kernel.inc"
}  // namespace qk::gemm::amx_emulated
