#include "gemm/gemm.h"

#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "cpu/kernel_table.h"
#include "gemm/epilogue.h"

#include "parallel/parallel.h"
#include "parallel/scratch.h"

namespace qk::gemm {
namespace {

constexpr KernelTable<GemmKernels> kTable = {
    {Isa::scalar, &scalar::kernels},
    QK_ON_x86_64({Isa::avx2, &avx2::kernels}, {Isa::avx_vnni, &avx_vnni::kernels},
                 {Isa::avx512_vnni, &avx512_vnni::kernels}, {Isa::amx, &amx::kernels}, )
    QK_ON_aarch64({Isa::neon, &neon::kernels}, {Isa::neon_dotprod, &neon_dotprod::kernels},
                  {Isa::i8mm, &i8mm::kernels}, )
};

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

// Tests set caches of other machines (set_cache_sizes_for_testing); a GEMM
// reads the blocking once, at its start.
std::atomic<bool> blocking_overridden{false};
Blocking blocking_override{0, 0};
std::mutex blocking_mutex;

// Below this many multiply-adds a GEMM stays on the calling thread. Low,
// because the pool costs little when a worker is late (the caller runs its
// chunk): a 1 x 1024 x 1024 GEMV, bound by reading the weight, gains from
// two cores streaming half of it each.
constexpr size_t kParallelMacs = size_t(1) << 20;

std::atomic<bool> amx_emulation{false};

// The amx tiles serve when the cap selects them and their self-test passed on
// first use (else the avx512_vnni tiles do, with a note on stderr); the
// emulated tiles serve every call while the tests ask for them.
const GemmKernels& active_kernels() {
  if (amx_emulation.load(std::memory_order_relaxed)) return amx_emulated::kernels;
  const Isa isa = selected_isa();
#if defined(__x86_64__)
  if (isa == Isa::amx) {
    static const bool ok = [] {
      const bool passed = amx_self_test();
      if (!passed) std::fprintf(stderr, "qk: the AMX tiles disagree with their emulation; using avx512_vnni\n");
      return passed;
    }();
    if (!ok) return kTable.at(Isa::avx512_vnni);
  }
#endif
  return kTable.at(isa);
}

template <Epilogue::Kind kKind>
void run_tiles(const uint8_t* a, size_t lda, bool a_signed, size_t m, size_t k, const PackedWeight& w,
               const Epilogue& ep, void* out, size_t out_stride, const GemmKernels& kern, const PackedPanels& b,
               uint32_t shift);

}  // namespace

Isa selected_isa() { return kTable.select(); }

Blocking blocking_for(const CacheSizes& caches) {
  const long l2 = caches.l2 > 0 ? caches.l2 : 1L << 20;
  return {clamp_bytes(l2 / 8 * 3, 96 * 1024, 3 * 1024 * 1024), clamp_bytes(l2 / 16, 16 * 1024, 256 * 1024)};
}

Blocking blocking() {
  if (blocking_overridden.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> lock(blocking_mutex);
    return blocking_override;
  }
  static const Blocking detected = blocking_for(cache_sizes());
  return detected;
}

void set_cache_sizes_for_testing(const CacheSizes* caches) {
  std::lock_guard<std::mutex> lock(blocking_mutex);
  if (caches != nullptr) blocking_override = blocking_for(*caches);
  blocking_overridden.store(caches != nullptr, std::memory_order_release);
}

Layout selected_layout() { return active_kernels().layout; }

void set_amx_emulation(bool on) { amx_emulation.store(on, std::memory_order_relaxed); }

void matmul_on(const GemmKernels& kern, const void* a_ptr, bool a_signed, size_t m, size_t k, const PackedWeight& w,
               const Epilogue& epilogue, void* out, size_t out_stride, size_t a_stride) {
  if (m == 0 || w.n() == 0) return;
  if (out_stride == 0) out_stride = w.n();
  if (a_stride == 0) a_stride = k;
  const PackedPanels& b = w.panels(kern.layout);
  const uint32_t shift = a_signed ? kern.a->signed_shift : 0u;
  const auto* a = static_cast<const uint8_t*>(a_ptr);
  with_kind(epilogue.kind, [&](auto kind) {
    run_tiles<decltype(kind)::value>(a, a_stride, a_signed, m, k, w, epilogue, out, out_stride, kern, b, shift);
  });
}

void matmul(const void* a, bool a_signed, size_t m, size_t k, const PackedWeight& w, const Epilogue& epilogue,
            void* out, size_t out_stride, size_t a_stride) {
  matmul_on(active_kernels(), a, a_signed, m, k, w, epilogue, out, out_stride, a_stride);
}

size_t in_place_stride(size_t k) {
  const GemmKernels& kern = active_kernels();
  if (!kern.a->in_place) return 0;
  const size_t align = layout_k_align(kern.layout);
  return (k + align - 1) / align * align;
}

bool amx_tiles_available() {
#if defined(__x86_64__)
  return isa_supported(Isa::amx);
#else
  return false;
#endif
}

bool amx_self_test() {
#if defined(__x86_64__)
  // 40 x 70 x 35: two row tiles, a K tail, an odd panel count; signed and unsigned A.
  const size_t m = 40, k = 70, n = 35;
  std::vector<int8_t> b(k * n);
  std::vector<uint8_t> a(m * k);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<int8_t>((i * 37 + 11) % 256 - 128);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>((i * 91 + 7) % 256);
  const PackedWeight w(b.data(), k, n, Layout::kQuadTiles);
  for (bool a_signed : {false, true}) {
    std::vector<int32_t> real(m * n), emulated(m * n);
    matmul_on(amx::kernels, a.data(), a_signed, m, k, w, Epilogue{}, real.data());
    matmul_on(amx_emulated::kernels, a.data(), a_signed, m, k, w, Epilogue{}, emulated.data());
    if (real != emulated) return false;
  }
  return true;
#else
  return false;
#endif
}

namespace {

template <Epilogue::Kind kKind>
void run_tiles(const uint8_t* a, size_t lda, bool a_signed, size_t m, size_t k, const PackedWeight& w,
               const Epilogue& ep, void* out, size_t out_stride, const GemmKernels& kern, const PackedPanels& b,
               uint32_t shift) {
  const size_t n = w.n();
  const size_t a_elem = kern.a->element_bytes, step = layout_step(kern.layout);
  const size_t kp = b.k_padded, k_steps = kp / step;
  const size_t mr = static_cast<size_t>(kern.mr), np = static_cast<size_t>(kern.np);
  const uint32_t zero_point = static_cast<uint32_t>(ep.a_zero_point);
  const TileWriter<kKind> write{ep, w.column_sums().data(), shift + zero_point, n, out, out_stride};

  // Work items: blocks of rows (as many as fit the L2 budget, rounded up to a
  // multiple of the thread count so no thread idles at the end), times
  // ranges of column groups when rows alone cannot keep every thread busy.
  // Each output element is computed by one thread, in the same order whatever
  // the split, so results do not depend on it (exact int32 anyway).
  const bool parallel = m * n * (k ? k : 1) >= kParallelMacs;
  const size_t threads = parallel ? static_cast<size_t>(num_threads()) : 1;
  const Blocking blk = blocking();
  size_t mc_max = blk.a_block_bytes / (kp * a_elem + 1) / mr * mr;
  if (mc_max < mr) mc_max = mr;
  size_t m_blocks = (m + mc_max - 1) / mc_max;
  const size_t groups = (b.panels + np - 1) / np;  // column groups of np panels
  // Too few column groups to share (a thin layer): the rows are shared instead.
  if (m_blocks >= threads || groups < threads) m_blocks = (m_blocks + threads - 1) / threads * threads;
  // Row tiles spread evenly over the blocks (sizes differ by one tile at most).
  const size_t m_tiles = (m + mr - 1) / mr;
  if (m_blocks > m_tiles) m_blocks = m_tiles;
  auto block_row = [&](size_t mb) { return mb == m_blocks ? m : m_tiles * mb / m_blocks * mr; };
  const size_t mc = m_blocks == 1 ? m : (m_tiles + m_blocks - 1) / m_blocks * mr;  // the largest block
  const size_t mc_tiles = (mc + mr - 1) / mr * mr;  // room for whole tiles (AMX loads and stores 16-row tiles)
  size_t col_parts = m_blocks >= threads ? 1 : threads;
  if (col_parts > groups) col_parts = groups;
  const size_t tasks = m_blocks * col_parts;

  // Steps per run of B: the whole K when a block has a single row tile (B is
  // streamed once, nothing to reuse), else what fits kBRunBytes, split evenly
  // in whole k-blocks of the kernel (K is padded to them: layout_k_align).
  size_t kc = k_steps;
  if (mc > mr) {
    const size_t kb = kern.k_block;
    const size_t kc_max = blk.b_run_bytes / (np * kNR * step) / kb * kb;
    const size_t runs = (k_steps + kc_max - 1) / kc_max;
    if (runs > 1) kc = ((k_steps + runs - 1) / runs + kb - 1) / kb * kb;
  }
  const size_t ldc = np * kNR;
  // Rows read where they lie skip the A block. Tiles that load whole tiles
  // of rows (AMX) still take a block's last, partial tile from a packed copy:
  // the rows past it may not be readable.
  const bool in_place = kern.a->in_place && !a_signed && lda >= kp;
  const bool pack_tail = in_place && kern.a->whole_tiles;

  parallel_for(tasks, parallel ? 1 : tasks, 1, [&](size_t begin, size_t end) {
    if (kern.begin_thread) kern.begin_thread();
    const Scratch a_buffer(ScratchSlot::kGemmA, (in_place ? (pack_tail ? mr : 0) : mc_tiles) * kp * a_elem);
    const Scratch sums_buffer(ScratchSlot::kGemmSums, mc_tiles * ldc * sizeof(int32_t));
    uint8_t* const a_block = a_buffer.as<uint8_t>();
    int32_t* const sums = sums_buffer.as<int32_t>();
    size_t packed_block = SIZE_MAX;
    for (size_t t = begin; t < end; ++t) {
      const size_t mb = t / col_parts, part = t % col_parts;
      const size_t m0 = block_row(mb), rows = block_row(mb + 1) - m0;
      const size_t tail_r0 = pack_tail && rows % mr != 0 ? rows / mr * mr : rows;  // the packed tail tile
      if (packed_block != mb) {
        const size_t first = in_place ? tail_r0 : 0;  // rows packed: all, the tail tile's or none
        if (first < rows) kern.a->pack(a + (m0 + first) * lda, lda, a_signed, rows - first, k, kp, mr, a_block);
        packed_block = mb;
      }
      // Row r0's tile: where it lies, or in the packed block.
      auto a_tile = [&](size_t r0) -> std::pair<const uint8_t*, size_t> {
        if (in_place && r0 != tail_r0) return {a + (m0 + r0) * lda, lda};
        return {a_block + (in_place ? 0 : r0 * kp * a_elem), kp * a_elem};
      };
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
            const size_t col0 = p0 * kNR, cols = (col0 + gp * kNR <= n ? gp * kNR : n - col0);
            write(sums + r0 * ldc, ldc, tr, m0 + r0, col0, cols);
          };
          for (size_t r0 = 0; r0 < rows; r0 += mr) {
            const size_t tr = rows - r0 < mr ? rows - r0 : mr;
            // A tile of tr rows starts at row r0; its run at q0 * tr * step
            // elements (interleaved rows) or q0 * step (contiguous rows).
            const size_t run = q0 * step * (kern.a->rows_contiguous ? 1 : tr);
            const auto [a_ptr, a_stride] = a_tile(r0);
            const Tile tile{a_ptr + run * a_elem,
                            a_stride,
                            b.panel(p0) + q0 * step * kNR,
                            kp * kNR,
                            steps,
                            sums + r0 * ldc,
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
    if (kern.end_thread) kern.end_thread();
  });
}

}  // namespace

}  // namespace qk::gemm
