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

// The A operand a micro-kernel reads, and the packer that writes it. Packers
// are baseline code (pack_a.cc) shared by the kernels that read their format.
struct AFormat {
  size_t element_bytes;   // per packed element: 2 (int16) or 1 (byte)
  uint32_t signed_shift;  // added to int8 A by the packer; the epilogue takes shift * colsum back
  // Rows [0, rows) of A (row stride k bytes, int8 if a_signed else uint8) into
  // tiles of `mr` rows (the last may be shorter), each tile's rows
  // interleaved step by step as the tiles read them, K zero-padded to kp.
  void (*pack)(const uint8_t* a, bool a_signed, size_t rows, size_t k, size_t kp, size_t mr, void* dst);
};
extern const AFormat kInt16Pairs;   // kPairs kernels: exact int16 values, pairs (k, k+1) adjacent
extern const AFormat kShiftedQuads;  // kQuads kernels: uint8 quads, int8 A shifted by +128 (x ^ 0x80)

// A micro-kernel's descriptor: the operand formats it reads (B's layout, which
// PackedWeight packs and caches once per layout in use; A's format and its
// packer), its largest tile, and the tile function. The driver (gemm.cc)
// owns the threads, the cache blocking and the delayed epilogue.
struct GemmKernels {
  Layout layout;       // of B
  const AFormat* a;    // of A
  int mr, np;          // the largest tile: mr rows x np panels
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
