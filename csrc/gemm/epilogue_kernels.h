// The float and requantizing epilogues (gemm.h's Epilogue kinds kFloat and
// kRequant) as a kernel family, one table per ISA (epilogue_<isa>.cc, each
// compiling epilogue_kernel.inc with its flags): the GEMM and convolution
// drivers are baseline code, and on SSE2 these per-element selects and
// conversions cost more than the int8 tiles whose sums they finish. Every
// path runs the same IEEE operations per element (-ffp-contract=off), so
// all agree bit for bit with the scalar expression documented in gemm.h.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qk::gemm {

// A block of `rows` x `cols` int32 sums (row stride ldc) and where its
// outputs go. The sums of each row and the per-column arrays are readable
// up to the next multiple of 16 columns (epilogue.h's padded_columns): a
// row's last, partial vector is read whole, its extra lanes discarded.
struct EpilogueBlock {
  const int32_t* sums;
  size_t ldc;
  size_t rows, cols;
  const int32_t* offsets;  // per column, from the block's first: acc = sums - offsets (mod 2^32); or null
  const float* scale;     // per column, from the block's first column
  const float* bias;      // per column, or null (adds 0.0f: the same values)
  bool relu;
  void* out;              // the block's first output element (float, or int8/uint8 bytes)
  size_t out_stride;      // elements from one output row to the next
};

// clip(rint(y / out_scale) + zero point, qmin, qmax), NaN to the zero
// point, as rint(clip(y / out_scale, qmin - zp, qmax - zp)) + zp: rounding
// is monotone and the bounds are integers, so clamping first is the same.
// rint is round_even (cpu/vector_lanes.h), exact for the clamped |t| < 2^22
// (the int8/uint8 bounds). Precomputed per GEMM.
struct Requantization {
  float out_scale, lo, hi;
  int32_t zero_point;  // NaN gives the zero point
  Requantization(float scale, int32_t zp, int32_t qmin, int32_t qmax)
      : out_scale(scale), lo(float(qmin - zp)), hi(float(qmax - zp)), zero_point(zp) {}
};

struct EpilogueKernels {
  void (*to_float)(const EpilogueBlock& b);                              // y = acc * scale + bias (ReLU)
  void (*requantize)(const EpilogueBlock& b, const Requantization& rq);  // bytes of requantized y
};

// The table of the best path at or below the ISA cap (epilogue.cc).
const EpilogueKernels& epilogue_kernels();

// Defined only on their architecture (cpu/isa_list.h).
namespace scalar { extern const EpilogueKernels epilogue; }
namespace avx2 { extern const EpilogueKernels epilogue; }
namespace avx512 { extern const EpilogueKernels epilogue; }
namespace neon { extern const EpilogueKernels epilogue; }

}  // namespace qk::gemm
