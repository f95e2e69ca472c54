#include "gemm/gemm.h"

#include <atomic>
#include <cstdio>
#include <cstring>
#include <vector>

#include "cpu/kernel_table.h"
#include "gemm/amx.h"

#include "parallel/parallel.h"

namespace qk::gemm {
namespace {

// The amx entry is the tile kernel that serves when the AMX driver (amx.cc)
// cannot run; the driver itself is routed in matmul().
constexpr KernelTable<GemmKernels> kTable = {
    {Isa::scalar, &scalar::kernels},
    QK_ON_x86_64({Isa::avx2, &avx2::kernels}, {Isa::avx_vnni, &avx_vnni::kernels},
                 {Isa::avx512_vnni, &avx512_vnni::kernels}, {Isa::amx, &avx512_vnni::kernels}, )
    QK_ON_aarch64({Isa::neon, &neon::kernels}, {Isa::neon_dotprod, &neon_dotprod::kernels},
                  {Isa::i8mm, &i8mm::kernels}, )
};

const GemmKernels& kernels_for(Isa isa) { return kTable.at(isa); }

// Cache blocking, from the L2 size the CPU reports. The packed A block (rows
// x padded K) stays in L2 and is reused for every column group; a run of B
// (kc steps of np panels) is reused by every row tile of the block; the
// int32 sums of a block x column group live in a small buffer until the last
// run, then the epilogue turns them into the output. Measured on Zen 4
// (32 KiB L1d, 1 MiB L2): an A block of 3/8 of L2 and B runs of L2/16
// (64 KiB, re-read from L2 by each row tile, well within L2 bandwidth) beat
// L1-sized runs, whose extra round trips of the sums cost more than they
// save. Without a reported L2, 1 MiB is assumed.
size_t clamp_bytes(long v, size_t lo, size_t hi) {
  const size_t x = v > 0 ? size_t(v) : lo;
  return x < lo ? lo : (x > hi ? hi : x);
}

Blocking compute_blocking() {
  const long l2 = cache_sizes().l2 > 0 ? cache_sizes().l2 : 1L << 20;
  return {clamp_bytes(l2 / 8 * 3, 96 * 1024, 3 * 1024 * 1024), clamp_bytes(l2 / 16, 16 * 1024, 256 * 1024)};
}
// Below this many multiply-adds a GEMM stays on the calling thread. Low,
// because the pool costs little when a worker is late (the caller runs its
// chunk): a 1 x 1024 x 1024 GEMV, bound by reading the weight, gains from
// two cores streaming half of it each.
constexpr size_t kParallelMacs = size_t(1) << 20;

// One step of one row of A in the kernels' format: int16 pairs (exact
// values) or bytes with signed A shifted by +128 (x + 128 is x ^ 0x80 on the bits).
template <size_t kStep, typename T>
inline void convert_step(const uint8_t* src, bool a_signed, T* dst) {
  if constexpr (sizeof(T) == 2) {
    for (size_t e = 0; e < kStep; ++e) dst[e] = a_signed ? T(int8_t(src[e])) : T(src[e]);
  } else {
    uint32_t quad;
    std::memcpy(&quad, src, sizeof quad);
    quad ^= a_signed ? 0x80808080u : 0u;
    std::memcpy(dst, &quad, sizeof quad);
  }
}

// Packs rows [0, rows) of A (row stride k) into tiles of `mr` rows (the last
// may be shorter), each tile's rows interleaved step by step as the
// micro-kernels read them (gemm_kernels.h), zero-padding K to kp. Padding
// contributes nothing whatever its value: B is zero there.
template <size_t kStep, typename T>
void pack_a(const uint8_t* a, bool a_signed, size_t rows, size_t k, size_t kp, size_t mr, T* dst) {
  const size_t full = k / kStep;
  for (size_t t0 = 0; t0 < rows; t0 += mr) {
    const size_t tr = rows - t0 < mr ? rows - t0 : mr;
    const uint8_t* src = a + t0 * k;
    T* out = dst + t0 * kp;
    // Step-major, so the writes are sequential; the tile's rows are read side by side.
    for (size_t q = 0; q < full; ++q)
      for (size_t r = 0; r < tr; ++r, out += kStep) convert_step<kStep>(src + r * k + q * kStep, a_signed, out);
    if (full * kStep < kp)
      for (size_t r = 0; r < tr; ++r, out += kStep) {
        uint8_t last[kStep] = {};
        std::memcpy(last, src + r * k + full * kStep, k - full * kStep);
        convert_step<kStep>(last, a_signed, out);
        for (size_t e = k - full * kStep; e < kStep; ++e) out[e] = 0;
      }
  }
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
inline void emit_row(T* dst, size_t cols, F value) {
  if (cols == kNR)
    for (size_t j = 0; j < kNR; ++j) dst[j] = value(j);
  else
    for (size_t j = 0; j < cols; ++j) dst[j] = value(j);
}

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

template <Epilogue::Kind kKind>
struct TileWriter {
  const Epilogue& ep;
  const int32_t* colsum;
  uint32_t correction;  // acc -= correction * colsum[n] (A's zero point, plus 128 for shifted A)
  size_t n;
  void* out;

  // Requests the output lines of rows [row0, row0 + rows), columns [col0,
  // col0 + cols), so the epilogue does not wait on them (measured 2-10% on
  // large int32 outputs). Inline asm (prefetch_line): GCC drops
  // __builtin_prefetch from loops it vectorizes, and did here.
  void prefetch(size_t rows, size_t row0, size_t col0, size_t cols) const {
    constexpr size_t kBytes = kKind == Epilogue::kRequant ? 1 : 4;
    if (col0 + cols > n) cols = n - col0;
    for (size_t r = 0; r < rows; ++r) {
      const char* p = static_cast<const char*>(out) + ((row0 + r) * n + col0) * kBytes;
      for (size_t off = 0; off < cols * kBytes; off += 64) prefetch_line(p + off);
      prefetch_line(p + cols * kBytes - 1);
    }
  }

  // clip(rint(y / out_scale) + zero point) into an int8/uint8 byte, NaN to the
  // zero point, as qk.quantize, in float selects the compiler vectorizes (on
  // the SSE2 baseline nearbyint is a call per element). Adding 1.5 * 2^23
  // rounds t half to even, the same as nearbyint in every rounding mode, for
  // |t| < 2^22, which the first clamp ensures; the sum then holds the integer
  // in its low mantissa bits, so its low byte is the int8/uint8 result.
  uint8_t requantize(float y) const {
    constexpr float kMagic = 12582912.0f;
    const float lo = ep.qmin - ep.out_zero_point - 1.0f, hi = ep.qmax - ep.out_zero_point + 1.0f;
    float t = y / ep.out_scale;  // NaN stays NaN through the clamps
    t = t < lo ? lo : t;
    t = t > hi ? hi : t;
    float v = (t + kMagic) + ep.out_zero_point;  // exact: both are integers below 2^24
    v = v < kMagic + ep.qmin ? kMagic + ep.qmin : v;
    v = v > kMagic + ep.qmax ? kMagic + ep.qmax : v;
    v = y == y ? v : kMagic + ep.out_zero_point;
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    return static_cast<uint8_t>(bits);
  }

  void operator()(const int32_t* sums, size_t ldc, size_t rows, size_t row0, size_t col0, size_t cols) const {
    uint32_t fix[kNR];
    for (size_t j = 0; j < kNR; ++j)
      fix[j] = j < cols ? correction * static_cast<uint32_t>(colsum[col0 + j]) : 0u;
    float scale[kNR] = {}, bias[kNR] = {};
    if (kKind != Epilogue::kInt32)
      for (size_t j = 0; j < cols; ++j) {
        scale[j] = ep.scale[col0 + j];
        bias[j] = ep.bias != nullptr ? ep.bias[col0 + j] : 0.0f;
      }
    for (size_t r = 0; r < rows; ++r) {
      const size_t base = (row0 + r) * n + col0;
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
        if (ep.relu)
          emit_row(q, cols, [&](size_t j) { return requantize(relu(y(j))); });
        else
          emit_row(q, cols, [&](size_t j) { return requantize(y(j)); });
      }
    }
  }
};

// The shared epilogue over a whole M x N matrix of int32 sums (the AMX
// driver's output), 16 columns at a time as the tile writers see them.
template <Epilogue::Kind kKind>
void finish_sums(const int32_t* acc, size_t m, const PackedWeight& w, const Epilogue& ep, void* out) {
  const size_t n = w.n();
  const uint32_t zero_point = kKind == Epilogue::kInt32 ? 0u : static_cast<uint32_t>(ep.a_zero_point);
  const TileWriter<kKind> write{ep, w.column_sums().data(), zero_point, n, out};
  for (size_t col0 = 0; col0 < n; col0 += kNR)
    write(acc + col0, n, m, 0, col0, col0 + kNR <= n ? kNR : n - col0);
}

std::atomic<bool> amx_emulation{false};

// The AMX driver serves a call when the cap selects amx and its self-test
// passed on first use (else the avx512_vnni tiles do, with a note on stderr),
// or when the tests ask for the emulated kernel.
bool amx_route(bool* emulated) {
  *emulated = amx_emulation.load(std::memory_order_relaxed);
  if (*emulated) return true;
#if defined(__x86_64__)
  if (selected_isa() != Isa::amx) return false;
  static const bool ok = [] {
    const bool passed = amx_self_test();
    if (!passed) std::fprintf(stderr, "qk: the AMX tiles disagree with their emulation; using avx512_vnni\n");
    return passed;
  }();
  return ok;
#else
  return false;  // AMX is an x86-64 path; only its emulation runs elsewhere
#endif
}

template <Epilogue::Kind kKind>
void run_tiles(const uint8_t* a, bool a_signed, size_t m, size_t k, const PackedWeight& w, const Epilogue& ep,
               void* out, const GemmKernels& kern, const PackedPanels& b, uint32_t shift);

}  // namespace

Isa selected_isa() { return kTable.select(); }

const Blocking& blocking() {
  static const Blocking b = compute_blocking();
  return b;
}

Layout selected_layout() { return kernels_for(selected_isa()).layout; }

void set_amx_emulation(bool on) { amx_emulation.store(on, std::memory_order_relaxed); }

void matmul(const void* a_ptr, bool a_signed, size_t m, size_t k, const PackedWeight& w, const Epilogue& epilogue,
            void* out) {
  if (m == 0 || w.n() == 0) return;
  bool emulated = false;
  if (amx_route(&emulated)) {
    const auto* a8 = static_cast<const uint8_t*>(a_ptr);
    if (epilogue.kind == Epilogue::kInt32) return amx_matmul_int32(emulated, a8, a_signed, m, k, w, static_cast<int32_t*>(out));
    std::vector<int32_t> acc(m * w.n());
    amx_matmul_int32(emulated, a8, a_signed, m, k, w, acc.data());
    if (epilogue.kind == Epilogue::kFloat) return finish_sums<Epilogue::kFloat>(acc.data(), m, w, epilogue, out);
    return finish_sums<Epilogue::kRequant>(acc.data(), m, w, epilogue, out);
  }
  const GemmKernels& kern = kernels_for(selected_isa());
  const PackedPanels& b = w.panels(kern.layout);
  const uint32_t shift = kern.layout == Layout::kQuads && a_signed ? 128u : 0u;
  const auto* a = static_cast<const uint8_t*>(a_ptr);
  switch (epilogue.kind) {
    case Epilogue::kInt32: return run_tiles<Epilogue::kInt32>(a, a_signed, m, k, w, epilogue, out, kern, b, shift);
    case Epilogue::kFloat: return run_tiles<Epilogue::kFloat>(a, a_signed, m, k, w, epilogue, out, kern, b, shift);
    case Epilogue::kRequant:
      return run_tiles<Epilogue::kRequant>(a, a_signed, m, k, w, epilogue, out, kern, b, shift);
  }
}

namespace {

template <Epilogue::Kind kKind>
void run_tiles(const uint8_t* a, bool a_signed, size_t m, size_t k, const PackedWeight& w, const Epilogue& ep,
               void* out, const GemmKernels& kern, const PackedPanels& b, uint32_t shift) {
  const size_t n = w.n();
  const bool quads = kern.layout == Layout::kQuads;
  const size_t a_elem = quads ? 1 : 2, step = layout_step(kern.layout);
  const size_t kp = b.k_padded, k_steps = kp / step;
  const size_t mr = static_cast<size_t>(kern.mr), np = static_cast<size_t>(kern.np);
  const uint32_t zero_point = kKind == Epilogue::kInt32 ? 0u : static_cast<uint32_t>(ep.a_zero_point);
  const TileWriter<kKind> write{ep, w.column_sums().data(), shift + zero_point, n, out};

  // Work items: blocks of rows (as many as fit the L2 budget, rounded up to a
  // multiple of the thread count so no thread idles at the end), times
  // ranges of column groups when rows alone cannot keep every thread busy.
  // Each output element is computed by one thread, in the same order whatever
  // the split, so results do not depend on it (exact int32 anyway).
  const bool parallel = m * n * (k ? k : 1) >= kParallelMacs;
  const size_t threads = parallel ? static_cast<size_t>(num_threads()) : 1;
  const Blocking& blk = blocking();
  size_t mc_max = blk.a_block_bytes / (kp * a_elem + 1) / mr * mr;
  if (mc_max < mr) mc_max = mr;
  size_t m_blocks = (m + mc_max - 1) / mc_max;
  if (m_blocks >= threads) m_blocks = (m_blocks + threads - 1) / threads * threads;
  // Row tiles spread evenly over the blocks (sizes differ by one tile at most).
  const size_t m_tiles = (m + mr - 1) / mr;
  if (m_blocks > m_tiles) m_blocks = m_tiles;
  auto block_row = [&](size_t mb) { return mb == m_blocks ? m : m_tiles * mb / m_blocks * mr; };
  const size_t mc = m_blocks == 1 ? m : (m_tiles + m_blocks - 1) / m_blocks * mr;  // the largest block
  const size_t groups = (b.panels + np - 1) / np;  // column groups of np panels
  size_t col_parts = m_blocks >= threads ? 1 : threads;
  if (col_parts > groups) col_parts = groups;
  const size_t tasks = m_blocks * col_parts;

  // Steps per run of B: the whole K when a block has a single row tile (B is
  // streamed once, nothing to reuse), else what fits kBRunBytes, split evenly.
  size_t kc = k_steps;
  if (mc > mr) {
    const size_t kc_max = blk.b_run_bytes / (np * kNR * step);
    const size_t runs = (k_steps + kc_max - 1) / kc_max;
    if (runs > 1) kc = (k_steps + runs - 1) / runs;
  }
  const size_t ldc = np * kNR;

  parallel_for(tasks, parallel ? 1 : tasks, 1, [&](size_t begin, size_t end) {
    std::vector<uint8_t> a_block(mc * kp * a_elem);
    std::vector<int32_t> sums(mc * ldc);
    size_t packed_block = SIZE_MAX;
    for (size_t t = begin; t < end; ++t) {
      const size_t mb = t / col_parts, part = t % col_parts;
      const size_t m0 = block_row(mb), rows = block_row(mb + 1) - m0;
      if (packed_block != mb) {
        if (quads)
          pack_a<4>(a + m0 * k, a_signed, rows, k, kp, mr, a_block.data());
        else
          pack_a<2>(a + m0 * k, a_signed, rows, k, kp, mr, reinterpret_cast<int16_t*>(a_block.data()));
        packed_block = mb;
      }
      const size_t g0 = groups * part / col_parts, g1 = groups * (part + 1) / col_parts;
      for (size_t g = g0; g < g1; ++g) {
        const size_t p0 = g * np, gp = (p0 + np <= b.panels ? np : b.panels - p0);
        for (size_t q0 = 0; q0 < k_steps || q0 == 0; q0 += kc) {
          const size_t steps = k_steps - q0 < kc ? k_steps - q0 : kc;
          const bool last = q0 + steps >= k_steps;
          // In the last run, each tile's sums go through the epilogue one
          // tile later: reading them right after the kernel's 64-byte
          // stores (with the driver's narrower loads) stalls on store
          // forwarding.
          auto finish = [&](size_t r0) {
            const size_t tr = rows - r0 < mr ? rows - r0 : mr;
            for (size_t j = 0; j < gp; ++j) {
              const size_t col0 = (p0 + j) * kNR, cols = (col0 + kNR <= n ? kNR : n - col0);
              write(sums.data() + r0 * ldc + j * kNR, ldc, tr, m0 + r0, col0, cols);
            }
          };
          for (size_t r0 = 0; r0 < rows; r0 += mr) {
            const size_t tr = rows - r0 < mr ? rows - r0 : mr;
            // A tile of tr rows starts at r0 * kp elements; its run at q0 * tr * step.
            const Tile tile{a_block.data() + (r0 * kp + q0 * tr * step) * a_elem,
                            b.panel(p0) + q0 * step * kNR,
                            kp * kNR,
                            steps,
                            sums.data() + r0 * ldc,
                            ldc,
                            q0 != 0};
            if (last) write.prefetch(tr, m0 + r0, p0 * kNR, gp * kNR);  // written after the next tile
            kern.tile(tile, static_cast<int>(tr), static_cast<int>(gp));
            if (last && r0 > 0) finish(r0 - mr);
          }
          if (last) finish((rows - 1) / mr * mr);
          if (steps == 0) break;
        }
      }
    }
  });
}

}  // namespace

}  // namespace qk::gemm
