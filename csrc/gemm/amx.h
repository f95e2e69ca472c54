// AMX-INT8 GEMM: C (M x N int32) = A (M x K, int8 or uint8) * B (packed int8).
//
// One kernel source (amx_kernel.inc) is compiled twice: against the real
// intrinsics (gemm_amx.cc, AMX flags, a path only where cpuid, XCR0 and Linux
// allow the tile state), and against a scalar emulation of the same
// intrinsics (amx_emulated.cc, baseline flags: a test-only entry point every
// machine runs, so the kernel's logic is proven without AMX hardware).
#pragma once

#include <cstddef>
#include <cstdint>

#include "gemm/pack.h"

namespace qk::gemm {

// One call's operands, staged by the driver so the tiles never read past a
// buffer: A as M_pad x K_pad bytes (rows padded to 32, K to 64, zeros), B as
// panels of K_pad / 4 quads x 64 bytes (the VNNI-4 layout of qk's quad panels,
// K padded to 64) in pairs, C as M_pad x N_pad int32.
struct AmxBlocks {
  const int8_t* a;
  size_t lda;        // K_pad
  const int8_t* b;   // panel p at b + p * panel_bytes
  size_t panel_bytes;
  size_t k_steps;    // K_pad / 64
  size_t panel_pairs;
  int32_t* c;
  size_t ldc;        // N_pad (int32 elements)
  bool a_signed;     // tdpbssd (int8 A) or tdpbusd (uint8 A)
};

namespace amx {
// Runs row blocks [begin, end) of 32 rows; loads the tile configuration for
// the calling thread first and releases the tiles after.
void run_blocks(const AmxBlocks& args, size_t begin, size_t end);
}  // namespace amx

namespace amx_emulated {
void run_blocks(const AmxBlocks& args, size_t begin, size_t end);
}  // namespace amx_emulated

// The whole product on threads; `emulated` picks the scalar emulation.
void amx_matmul_int32(bool emulated, const uint8_t* a, bool a_signed, size_t m, size_t k, const PackedWeight& w,
                      int32_t* out);

// True if this CPU and OS can run the real tiles (x86-64 with the amx path).
bool amx_tiles_available();

// A small product on the real tiles compared with the emulation (the first
// use of the amx path checks it): true if they agree.
bool amx_self_test();

}  // namespace qk::gemm
