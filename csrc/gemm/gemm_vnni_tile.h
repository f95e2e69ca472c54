// The register-blocked vpdpbusd tile shared by the AVX-VNNI (ymm) and AVX-512
// VNNI (zmm) files. `V` wraps one vector width's intrinsics; each ISA file
// defines its own V in an anonymous namespace, so every instantiation has
// internal linkage and is compiled only with that file's ISA flags (no
// cross-ISA merging by the linker).
#pragma once

#include <cstddef>
#include <cstdint>

#include "gemm/gemm_kernels.h"

namespace qk::gemm::vnni {

// C[MR x NP*16] (+)= A * B on the kQuads layout, A in rows `lda` bytes apart
// (kShiftedRows: each broadcast quad is a plain load from its row, so rows
// gathered by a convolution or unsigned A with K a multiple of 4 need no
// packing). All MR * NP * (16 / lanes) accumulators are fixed-index array
// elements of fully unrolled loops, which the compiler keeps in registers
// (checked with objdump: no spills).
template <class V, int MR, int NP>
void tile(const Tile& t) {
  constexpr int kPerPanel = kNR / V::kLanes;  // vectors per panel row: 1 zmm or 2 ymm
  constexpr int NV = NP * kPerPanel;
  const uint8_t* a = static_cast<const uint8_t*>(t.a);
  int32_t* const c = t.c;  // locals: stores through c cannot change them
  const size_t ldc = t.ldc, b_stride = t.b_stride, lda = t.lda;
  typename V::Reg acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v)
      acc[r][v] = t.accumulate ? V::load(c + r * ldc + v * V::kLanes) : V::zero();
  const int8_t* b = t.b;
  for (size_t q = 0; q < t.k_steps; ++q, b += 4 * kNR, a += 4) {
    typename V::Reg bv[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) bv[v] = V::load(b + (v / kPerPanel) * b_stride + (v % kPerPanel) * 4 * V::kLanes);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const typename V::Reg x = V::broadcast(a + r * lda);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[r][v] = V::dpbusd(acc[r][v], x, bv[v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) V::store(c + r * ldc + v * V::kLanes, acc[r][v]);
}

}  // namespace qk::gemm::vnni
