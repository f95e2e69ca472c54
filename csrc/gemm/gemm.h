// INT8 GEMM driver: C = A (M x K, int8 or uint8) * B (packed int8, K x N),
// exact int32 accumulation, then an epilogue applied to each finished tile.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpu/isa.h"
#include "gemm/pack.h"

namespace qk::gemm {

Isa selected_isa();
// The B layout the selected path's micro-kernels read.
Layout selected_layout();

// Cache blocking from the L2 size (gemm.cc says why).
struct Blocking {
  size_t a_block_bytes;  // packed A block kept in L2
  size_t b_run_bytes;    // run of B reused by every row tile of a block
};
// The blocking of these caches.
Blocking blocking_for(const CacheSizes& caches);
// The blocking in use: from the detected caches, or those a test set.
Blocking blocking();
// Test-only: GEMMs block as on a CPU with these caches (nullptr: the detected ones).
void set_cache_sizes_for_testing(const CacheSizes* caches);

// Test-only: run every GEMM on the emulated AMX tiles (amx_emulated), so the
// amx kernel and its integration (epilogues, threads) run on any machine.
void set_amx_emulation(bool on);
// True if this CPU and OS can run the real AMX tiles (x86-64 with the amx path).
bool amx_tiles_available();
// A small product on the real tiles compared with the emulated ones (the
// first use of the amx path checks it): true if they agree.
bool amx_self_test();

// What happens to the exact int32 sums acc[m, n]:
//  kInt32:   out = acc - a_zero_point * colsum[n] (int32, wrapping like NumPy's
//            int32 matmul; a_zero_point is 0 for a plain product)
//  kFloat:   y = float(acc - a_zero_point * colsum[n]) * scale[n] + bias[n], optional ReLU
//  kRequant: q = clip(rint(y / out_scale) + out_zero_point, qmin, qmax) as int8/uint8
struct Epilogue {
  enum Kind { kInt32, kFloat, kRequant } kind = kInt32;
  int32_t a_zero_point = 0;
  const float* scale = nullptr;  // N values (x_scale * w_scale[n])
  const float* bias = nullptr;   // N values or null
  bool relu = false;
  float out_scale = 1, out_zero_point = 0, qmin = 0, qmax = 0;
};

// `a` is M x K bytes, its rows `a_stride` bytes apart (0: K); `out` is M x N
// row-major (int32, float or bytes), its rows `out_stride` elements apart (0:
// N, a dense matrix).
void matmul(const void* a, bool a_signed, size_t m, size_t k, const PackedWeight& w, const Epilogue& epilogue,
            void* out, size_t out_stride = 0, size_t a_stride = 0);
// The same on the given micro-kernels instead of the selected ones (the AMX
// self-test and its tests).
void matmul_on(const GemmKernels& kernels, const void* a, bool a_signed, size_t m, size_t k, const PackedWeight& w,
               const Epilogue& epilogue, void* out, size_t out_stride = 0, size_t a_stride = 0);
// The row stride (bytes, >= k) at which the selected kernels read unsigned A
// of K = k where it lies, without packing it (what a caller that builds A,
// like the convolution's row gather, should write), or 0 if they always pack.
size_t in_place_stride(size_t k);

// dynamic_linear in one call: x (M x K float32, finite) quantized per tensor
// to uint8 over [lo, hi] = [min(x, 0), max(x, 0)] (the caller's reduction;
// 0 is exact), then the float epilogue with scale[n] = x_scale * w_scale[n]
// and optional bias, then ReLU if asked. The quantization parameters are
// those of qk's Python definition, bit for bit. Returns false, writing
// nothing, when a product x_scale * w_scale[n] is not finite and > 0 in float32.
bool dynamic_linear(const float* x, size_t m, size_t k, double lo, double hi, const PackedWeight& w,
                    const float* w_scale, const float* bias, bool relu, float* out);

// `batch` products of uint8 A_i (M x K, zero point a_zero_point) and int8
// B_i (K x N), stored one after the other: out_i = float(exact (A_i -
// a_zero_point) B_i) * scale, as the float epilogue computes it. The items
// are split over the threads; K must stay within the exact int32 range.
void batched_matmul(const uint8_t* a, const int8_t* b, size_t batch, size_t m, size_t k, size_t n,
                    int32_t a_zero_point, float scale, float* out);

}  // namespace qk::gemm
