// The AMX-INT8 kernel compiled against the scalar emulation of its intrinsics
// (amx_emulation.h): the test-only entry point that proves the kernel on
// machines without AMX. Not a user path.
#include <cstring>

#include "gemm/amx.h"
#include "gemm/amx_emulation.h"

namespace qk::gemm::amx_emulated {
#include "gemm/amx_kernel.inc"
}  // namespace qk::gemm::amx_emulated
