// INT8 GEMM micro-kernels, one table per ISA (each in gemm_<isa>.cc).
//
// A micro-kernel computes one tile C[mr x (np * 16)] += A[mr x k] * B[k x np * 16]
// over a run of k steps, exactly, in int32 with wrap-around. Operands come packed:
//  - B (pack.h): panels of 16 columns; the tile reads np adjacent panels,
//    `b_stride` bytes apart, starting at the run's first step.
//  - A (the driver packs it per block, in the descriptor's AFormat): the
//    tile's mr rows interleaved step by step, row r of step q at
//    a + (q * mr + r) * step elements, so the kernel reads one contiguous
//    stream whatever mr is; or, for tiles that read rows with a stride (the
//    x86 tiles), each row contiguous, `lda` bytes apart.
// Layouts:
//  - kPairs (scalar, AVX2): A as int16, B with each column's pair (k, k+1)
//    adjacent; products summed pairwise with vpmaddwd, which cannot
//    overflow (|a*b| <= 255*128).
//  - kQuads (AVX-VNNI, AVX-512 VNNI): A as uint8 (signed A shifted by +128;
//    the epilogue subtracts 128 * column sums), B with each column's quad
//    (k..k+3) adjacent, for vpdpbusd.
//  - kQuadTiles (AMX): kQuads with K padded to 64, so a panel is whole B
//    tiles of 16 quads x 64 bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace qk::gemm {

constexpr int kNR = 16;  // columns per B panel

enum class Layout : int { kPairs = 0, kQuads = 1, kQuadTiles = 2 };
constexpr int kNumLayouts = 3;

// Elements of K per step (the tile's k-step) and what K is padded to.
constexpr size_t layout_step(Layout layout) { return layout == Layout::kPairs ? 2 : 4; }
constexpr size_t layout_k_align(Layout layout) { return layout == Layout::kQuadTiles ? 64 : layout_step(layout); }

struct Tile {
  const void* a;       // packed A run (see above)
  size_t lda;          // bytes from one A row to the next (row-contiguous formats)
  const int8_t* b;     // first panel at the run's first step
  size_t b_stride;     // bytes from one panel to the next
  size_t k_steps;      // steps of 2 (pairs) or 4 (quads) elements, a multiple of k_block
  int32_t* c;          // mr x (np * 16) int32, row stride ldc
  size_t ldc;
  bool accumulate;     // c += A * B (else c = A * B)
};

// The A operand a micro-kernel reads, and the packer that writes it. Packers
// are baseline code (pack_a.cc) shared by the kernels that read their format.
struct AFormat {
  size_t element_bytes;   // per packed element: 2 (int16) or 1 (byte)
  uint32_t signed_shift;  // added to int8 A by the packer; the epilogue takes shift * colsum back
  bool rows_contiguous;   // each row's kp elements in a row (else interleaved step by step)
  // Unsigned A whose rows hold kp readable bytes (lda >= kp) is read where it
  // lies, unpacked: its bytes past K meet B's zero padding.
  bool in_place;
  // The tiles load mr rows whatever the tile's row count (AMX): the packer
  // pads with zero rows, and a partial tile is never read in place.
  bool whole_tiles;
  // Rows [0, rows) of A (rows lda bytes apart, int8 if a_signed else uint8) into
  // tiles of `mr` rows (the last may be shorter; row-contiguous formats pad it
  // with zero rows to mr), each tile's rows interleaved step by step as the
  // tiles read them, or row after row, K zero-padded to kp.
  void (*pack)(const uint8_t* a, size_t lda, bool a_signed, size_t rows, size_t k, size_t kp, size_t mr, void* dst);
};
extern const AFormat kInt16Pairs;       // kPairs kernels: exact int16 values, pairs (k, k+1) adjacent
extern const AFormat kInt16Rows;        // AVX2: exact int16 values, row after row (widening, no transpose)
extern const AFormat kShiftedQuads;     // aarch64 kQuads kernels: uint8 quads, int8 A shifted by +128 (x ^ 0x80)
extern const AFormat kShiftedRows;      // x86 VNNI: uint8 rows, int8 A shifted by +128; in place when unsigned
extern const AFormat kShiftedRowTiles;  // AMX: kShiftedRows, packed with whole tiles of zero rows

// A micro-kernel's descriptor: the operand formats it reads (B's layout, which
// PackedWeight packs and caches once per layout in use; A's format and its
// packer), its largest tile and k-step, the tile function and the per-thread
// hooks. The driver (gemm.cc) owns the threads, the cache blocking and the
// delayed epilogue.
struct GemmKernels {
  Layout layout;       // of B
  const AFormat* a;    // of A
  int mr, np;          // the largest tile: mr rows x np panels
  size_t k_block;      // layout steps the tile consumes at a time: runs of B are multiples
  // Any 1 <= mr <= kernels.mr, 1 <= np <= kernels.np.
  void (*tile)(const Tile& t, int mr, int np);
  // Called by each thread before its first tile and after its last (AMX
  // loads its tile configuration and releases the tiles); may be null.
  void (*begin_thread)();
  void (*end_thread)();
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
namespace amx { extern const GemmKernels kernels; }
// The AMX tiles on a scalar emulation of the intrinsics (amx_emulated.cc,
// baseline code, every architecture): test-only, proves the amx kernel anywhere.
namespace amx_emulated { extern const GemmKernels kernels; }

}  // namespace qk::gemm
