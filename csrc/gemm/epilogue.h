// The epilogues every kernel family shares: exact int32 sums (a tile of
// them, 16 columns at a time) turned into the output (gemm.h's Epilogue:
// int32, float with scales / bias / ReLU, or requantized int8/uint8).
// Included only by the families' drivers, which are compiled without ISA
// flags, so these inline functions never carry an ISA's instructions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

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

// max(v, 0) with NaN and -0 giving +0, as a bit mask rather than a compare
// and branch (which the compiler left scalar and mispredicted on random signs).
inline float relu(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  bits &= v > 0.0f ? ~0u : 0u;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

// Writes one output row chunk, dst[j] = value(j) for j < cols: a full chunk
// as a fixed 16-wide loop that the compiler vectorizes straight into the
// output (a local array in between was written with scalar stores and read
// back with vector loads: a store-forwarding stall per row).
template <typename T, typename F>
inline void emit_row(T* __restrict dst, size_t cols, F value) {
  if (cols == kNR)
    for (size_t j = 0; j < kNR; ++j) dst[j] = value(j);
  else
    for (size_t j = 0; j < cols; ++j) dst[j] = value(j);
}

template <Epilogue::Kind kKind>
struct TileWriter {
  const Epilogue& ep;
  const int32_t* colsum;
  uint32_t correction;  // acc -= correction * colsum[n] (A's zero point, plus 128 for shifted A)
  size_t n;           // columns of the output
  void* out;
  size_t out_stride;  // elements from one output row to the next (n for a dense matrix)

  // Requests the output lines of rows [row0, row0 + rows), columns [col0,
  // col0 + cols), so the epilogue does not wait on them (measured 2-10% on
  // large int32 outputs). Inline asm (prefetch_line): GCC drops
  // __builtin_prefetch from loops it vectorizes, and did here.
  void prefetch(size_t rows, size_t row0, size_t col0, size_t cols) const {
    constexpr size_t kBytes = kKind == Epilogue::kRequant ? 1 : 4;
    if (col0 + cols > n) cols = n - col0;
    for (size_t r = 0; r < rows; ++r) {
      const char* p = static_cast<const char*>(out) + ((row0 + r) * out_stride + col0) * kBytes;
      for (size_t off = 0; off < cols * kBytes; off += 64) prefetch_line(p + off);
      prefetch_line(p + cols * kBytes - 1);
    }
  }

  // clip(rint(y / out_scale) + zero point) into an int8/uint8 byte, NaN to the
  // zero point, as qk.quantize, in float selects the compiler vectorizes (on
  // the SSE2 baseline nearbyint is a call per element). Adding 1.5 * 2^23
  // rounds t half to even, the same as nearbyint in every rounding mode, for
  // |t| < 2^22, which the first clamp ensures; the sum minus 1.5 * 2^23 is
  // then the integer result, exactly. The parameters are copied out of the
  // Epilogue: byte stores may alias it, and reloading them per element kept
  // the loop scalar (6x slower).
  struct Requantizer {
    float out_scale, lo, hi, zero_point, low, high, nan_value;
    explicit Requantizer(const Epilogue& e)
        : out_scale(e.out_scale),
          lo(e.qmin - e.out_zero_point - 1.0f),
          hi(e.qmax - e.out_zero_point + 1.0f),
          zero_point(e.out_zero_point),
          low(kMagic + e.qmin),
          high(kMagic + e.qmax),
          nan_value(kMagic + e.out_zero_point) {}
    uint8_t operator()(float y) const {
      float t = y / out_scale;  // NaN stays NaN through the clamps
      t = t < lo ? lo : t;
      t = t > hi ? hi : t;
      float v = (t + kMagic) + zero_point;  // exact: both are integers below 2^24
      v = v < low ? low : v;
      v = v > high ? high : v;
      v = y == y ? v : nan_value;
      return static_cast<uint8_t>(static_cast<int32_t>(v - kMagic));
    }
    static constexpr float kMagic = 12582912.0f;
  };

  void operator()(const int32_t* sums, size_t ldc, size_t rows, size_t row0, size_t col0, size_t cols) const {
    uint32_t fix[kNR];
    for (size_t j = 0; j < kNR; ++j)
      fix[j] = j < cols && colsum != nullptr ? correction * static_cast<uint32_t>(colsum[col0 + j]) : 0u;
    float scale[kNR] = {}, bias[kNR] = {};
    if (kKind != Epilogue::kInt32)
      for (size_t j = 0; j < cols; ++j) {
        scale[j] = ep.scale[col0 + j];
        bias[j] = ep.bias != nullptr ? ep.bias[col0 + j] : 0.0f;
      }
    for (size_t r = 0; r < rows; ++r) {
      const size_t base = (row0 + r) * out_stride + col0;
      const int32_t* row = sums + r * ldc;
      // Wraps modulo 2^32, like the int32 reference.
      auto acc = [&](size_t j) { return static_cast<int32_t>(static_cast<uint32_t>(row[j]) - fix[j]); };
      // Without a bias this adds 0.0f, which changes no value (y + 0 == y, -0 + 0 is +0 either way).
      auto y = [&](size_t j) { return static_cast<float>(acc(j)) * scale[j] + bias[j]; };
      if constexpr (kKind == Epilogue::kInt32) {
        emit_row(static_cast<int32_t*>(out) + base, cols, acc);
      } else if constexpr (kKind == Epilogue::kFloat) {
        float* dst = static_cast<float*>(out) + base;
        if (ep.relu)
          emit_row(dst, cols, [&](size_t j) { return relu(y(j)); });
        else
          emit_row(dst, cols, y);
      } else {
        uint8_t* q = static_cast<uint8_t*>(out) + base;
        const Requantizer requantize(ep);
        if (ep.relu)
          emit_row(q, cols, [&](size_t j) { return requantize(relu(y(j))); });
        else
          emit_row(q, cols, [&](size_t j) { return requantize(y(j)); });
      }
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
