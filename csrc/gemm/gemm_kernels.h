// INT8 GEMM micro-kernels, one table per ISA (each in gemm_<isa>.cc).
//
// A micro-kernel computes one tile C[MR x 16] = A[MR x K] * B[K x 16] over a
// whole (padded) K, exactly, in int32 with wrap-around, and writes the tile
// to `c` (row stride 16). Operands come packed (see pack.h):
//  - kPairs layout (scalar, AVX2): A as int16 rows, B panels of 16 columns
//    with each column's pair (k, k+1) adjacent; products summed pairwise
//    with vpmaddwd, which cannot overflow (|a*b| <= 255*128).
//  - kQuads layout (AVX-VNNI, AVX-512 VNNI): A as uint8 rows (signed A
//    shifted by +128; the driver subtracts 128 * column sums), B panels with
//    each column's quad (k..k+3) adjacent, for vpdpbusd.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qk::gemm {

constexpr int kNR = 16;    // columns per B panel and per tile
constexpr int kMaxMR = 4;  // rows per tile

enum class Layout : int { kPairs = 0, kQuads = 1 };

// k_steps: K / 2 (pairs) or K / 4 (quads) of the padded K; lda: A row stride in elements.
using TileFn = void (*)(const void* a, size_t lda, const int8_t* b_panel, size_t k_steps, int32_t* c);

struct GemmKernels {
  Layout layout;
  TileFn tile[kMaxMR + 1];  // tile[mr] for mr = 1..kMaxMR rows
};

namespace scalar { extern const GemmKernels kernels; }
namespace avx2 { extern const GemmKernels kernels; }
namespace avx_vnni { extern const GemmKernels kernels; }
namespace avx512_vnni { extern const GemmKernels kernels; }

}  // namespace qk::gemm
