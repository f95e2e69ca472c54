// The epilogues every kernel family shares: exact int32 sums (a tile of
// them) turned into the output (gemm.h's Epilogue:
// int32, float with scales / bias / ReLU, or requantized int8/uint8).
// Included only by the families' drivers, which are compiled without ISA
// flags, so these inline functions never carry an ISA's instructions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "gemm/epilogue_kernels.h"
#include "gemm/gemm.h"

namespace qk::gemm {

// Asks for the cache line holding p, for writing soon.
inline void prefetch_line(const char* p) {
#if defined(__x86_64__)
  __asm__ volatile("prefetcht0 %0" ::"m"(*p));
#elif defined(__aarch64__)
  __asm__ volatile("prfm pstl1keep, %0" ::"Q"(*p));
#else
  __builtin_prefetch(p, 1);
#endif
}

// Columns a block's per-column arrays (and each row of its sums) must hold
// readable: the epilogue kernels read a row's last, partial vector whole.
constexpr size_t kEpilogueColumnAlign = 16;

inline size_t padded_columns(size_t n) {
  return (n + kEpilogueColumnAlign - 1) / kEpilogueColumnAlign * kEpilogueColumnAlign;
}

inline std::vector<int32_t> column_offsets(const int32_t* colsum, uint32_t correction, size_t n) {
  std::vector<int32_t> offsets(colsum != nullptr ? padded_columns(n) : 0);
  for (size_t j = 0; j < (colsum != nullptr ? n : 0); ++j)
    offsets[j] = static_cast<int32_t>(correction * static_cast<uint32_t>(colsum[j]));
  return offsets;
}

// The n values of `values` zero-padded to padded_columns(n), or nothing
// when they need no padding (or are null): see TileWriter::column_array.
inline std::vector<float> padded_copy(const float* values, size_t n) {
  if (values == nullptr || n % kEpilogueColumnAlign == 0) return {};
  std::vector<float> copy(padded_columns(n), 0.0f);
  std::memcpy(copy.data(), values, n * sizeof(float));
  return copy;
}

template <Epilogue::Kind kKind>
struct TileWriter {
  const Epilogue& ep;
  const int32_t* colsum;
  uint32_t correction;  // acc -= correction * colsum[n] (A's zero point, plus 128 for shifted A)
  size_t n;           // columns of the output
  void* out;
  size_t out_stride;  // elements from one output row to the next (n for a dense matrix)
  static constexpr size_t kBytes = kKind == Epilogue::kRequant ? 1 : 4;  // per output element
  // correction * colsum[j] (mod 2^32) per column, once per GEMM; empty without column sums.
  const std::vector<int32_t> offsets = column_offsets(colsum, correction, n);
  const std::vector<float> scale_copy = padded_copy(ep.scale, n), bias_copy = padded_copy(ep.bias, n);
  const EpilogueKernels& kernels = epilogue_kernels();
  const Requantization requantization{ep.out_scale, static_cast<int32_t>(ep.out_zero_point),
                                      static_cast<int32_t>(ep.qmin), static_cast<int32_t>(ep.qmax)};

  // Requests the output lines of rows [row0, row0 + rows), columns [col0,
  // col0 + cols), so the epilogue does not wait on them (measured 2-10% on
  // large int32 outputs). Inline asm (prefetch_line): GCC drops
  // __builtin_prefetch from loops it vectorizes, and did here.
  void prefetch(size_t rows, size_t row0, size_t col0, size_t cols) const {
    if (col0 + cols > n) cols = n - col0;
    for (size_t r = 0; r < rows; ++r) {
      const char* p = static_cast<const char*>(out) + ((row0 + r) * out_stride + col0) * kBytes;
      for (size_t off = 0; off < cols * kBytes; off += 64) prefetch_line(p + off);
      prefetch_line(p + cols * kBytes - 1);
    }
  }

  // A per-column array as the epilogue kernels read it: its padded copy
  // when it has one (n not a multiple of kEpilogueColumnAlign).
  static const float* column_array(const float* values, const std::vector<float>& copy) {
    return copy.empty() ? values : copy.data();
  }

  // Rows [row0, row0 + rows), columns [col0, col0 + cols) of the output from
  // their int32 sums (row stride ldc; each row readable up to
  // padded_columns(cols) values, which the kernels read and discard): int32 here, float and requantized
  // bytes on the epilogue kernels of the selected path.
  void operator()(const int32_t* sums, size_t ldc, size_t rows, size_t row0, size_t col0, size_t cols) const {
    if constexpr (kKind == Epilogue::kInt32) {
      for (size_t r = 0; r < rows; ++r) {
        const int32_t* row = sums + r * ldc;
        int32_t* dst = static_cast<int32_t*>(out) + (row0 + r) * out_stride + col0;
        for (size_t j = 0; j < cols; ++j)  // wraps modulo 2^32, like the int32 reference
          dst[j] = static_cast<int32_t>(static_cast<uint32_t>(row[j]) -
                                        (colsum != nullptr ? static_cast<uint32_t>(offsets[col0 + j]) : 0u));
      }
    } else {
      const EpilogueBlock block{sums, ldc, rows, cols, colsum != nullptr ? offsets.data() + col0 : nullptr,
                                column_array(ep.scale, scale_copy) + col0,
                                ep.bias != nullptr ? column_array(ep.bias, bias_copy) + col0 : nullptr, ep.relu,
                                static_cast<char*>(out) + (row0 * out_stride + col0) * kBytes, out_stride};
      if constexpr (kKind == Epilogue::kFloat)
        kernels.to_float(block);
      else
        kernels.requantize(block, requantization);
    }
  }
};

// Calls f(std::integral_constant<Epilogue::Kind, K>{}) for the epilogue's
// kind, so each kind's loops are their own instantiation.
template <class F>
inline void with_kind(Epilogue::Kind kind, F&& f) {
  switch (kind) {
    case Epilogue::kInt32: return f(std::integral_constant<Epilogue::Kind, Epilogue::kInt32>{});
    case Epilogue::kFloat: return f(std::integral_constant<Epilogue::Kind, Epilogue::kFloat>{});
    case Epilogue::kRequant: return f(std::integral_constant<Epilogue::Kind, Epilogue::kRequant>{});
  }
}

}  // namespace qk::gemm
