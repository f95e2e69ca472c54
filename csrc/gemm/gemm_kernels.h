// INT8 GEMM micro-kernels, one table per ISA (each in gemm_<isa>.cc).
//
// A micro-kernel computes one tile C[mr x (np * 16)] += A[mr x k] * B[k x np * 16]
// over a run of k steps, exactly, in int32 with wrap-around. Operands come packed:
//  - B (pack.h): panels of 16 columns; the tile reads np adjacent panels,
//    `b_stride` bytes apart, starting at the run's first step.
//  - A (the driver packs it per block): the tile's mr rows interleaved step
//    by step, row r of step q at a + (q * mr + r) * step elements, so the
//    kernel reads one contiguous stream whatever mr is.
// Layouts:
//  - kPairs (scalar, AVX2): A as int16, B with each column's pair (k, k+1)
//    adjacent; products summed pairwise with vpmaddwd, which cannot
//    overflow (|a*b| <= 255*128).
//  - kQuads (AVX-VNNI, AVX-512 VNNI): A as uint8 (signed A shifted by +128;
//    the epilogue subtracts 128 * column sums), B with each column's quad
//    (k..k+3) adjacent, for vpdpbusd.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace qk::gemm {

constexpr int kNR = 16;  // columns per B panel

enum class Layout : int { kPairs = 0, kQuads = 1 };

constexpr size_t layout_step(Layout layout) { return layout == Layout::kPairs ? 2 : 4; }

struct Tile {
  const void* a;       // packed A run (see above)
  const int8_t* b;     // first panel at the run's first step
  size_t b_stride;     // bytes from one panel to the next
  size_t k_steps;      // steps of 2 (pairs) or 4 (quads) elements
  int32_t* c;          // mr x (np * 16) int32, row stride ldc
  size_t ldc;
  bool accumulate;     // c += A * B (else c = A * B)
};

struct GemmKernels {
  Layout layout;
  int mr, np;  // the largest tile: mr rows x np panels
  // Any 1 <= mr <= kernels.mr, 1 <= np <= kernels.np.
  void (*tile)(const Tile& t, int mr, int np);
};

// Calls f(integral_constant<MR'>, integral_constant<NP'>) for the runtime
// (mr, np), 1 <= mr <= MR, 1 <= np <= NP, so each tile shape is a separate
// fully unrolled instantiation. F is a lambda local to one ISA file, so every
// instantiation belongs to that file alone.
template <int MR, int NP, class F>
inline void dispatch_tile(int mr, int np, F&& f) {
  if constexpr (MR > 1)
    if (mr < MR) return dispatch_tile<MR - 1, NP>(mr, np, f);
  if constexpr (NP > 1)
    if (np < NP) return dispatch_tile<MR, NP - 1>(mr, np, f);
  f(std::integral_constant<int, MR>{}, std::integral_constant<int, NP>{});
}

// Defined only on their architecture (cpu/isa_list.h).
namespace scalar { extern const GemmKernels kernels; }
namespace avx2 { extern const GemmKernels kernels; }
namespace avx_vnni { extern const GemmKernels kernels; }
namespace avx512_vnni { extern const GemmKernels kernels; }
namespace neon { extern const GemmKernels kernels; }
namespace neon_dotprod { extern const GemmKernels kernels; }
namespace i8mm { extern const GemmKernels kernels; }

}  // namespace qk::gemm
