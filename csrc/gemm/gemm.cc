#include "gemm/gemm.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "parallel/parallel.h"

namespace qk::gemm {
namespace {

constexpr bool kImplemented[kNumIsas] = {true, true, true, false, true, false};

const GemmKernels& kernels_for(Isa isa) {
  switch (isa) {
    case Isa::avx512_vnni: return avx512_vnni::kernels;
    case Isa::avx_vnni: return avx_vnni::kernels;
    case Isa::avx2: return avx2::kernels;
    default: return scalar::kernels;
  }
}

// Rows of A packed per block: the block (rows x padded K) stays in L2.
constexpr size_t kABlockBytes = 192 * 1024;
// Below this many multiply-adds a GEMM stays on the calling thread.
constexpr size_t kParallelMacs = size_t(1) << 23;

// Copies rows [0, rows) of A into the micro-kernels' format, zero-padding K:
// int16 for the pairs layout; bytes for quads, signed A shifted by +128.
void pack_a(const uint8_t* a, bool a_signed, size_t rows, size_t k, size_t k_padded, Layout layout, void* dst) {
  if (layout == Layout::kPairs) {
    int16_t* d = static_cast<int16_t*>(dst);
    for (size_t r = 0; r < rows; ++r) {
      const uint8_t* src = a + r * k;
      int16_t* row = d + r * k_padded;
      if (a_signed)
        for (size_t i = 0; i < k; ++i) row[i] = static_cast<int8_t>(src[i]);
      else
        for (size_t i = 0; i < k; ++i) row[i] = src[i];
      for (size_t i = k; i < k_padded; ++i) row[i] = 0;
    }
  } else {
    uint8_t* d = static_cast<uint8_t*>(dst);
    const uint8_t flip = a_signed ? 0x80 : 0x00;  // x + 128 for int8 is x ^ 0x80 on the bits
    for (size_t r = 0; r < rows; ++r) {
      const uint8_t* src = a + r * k;
      uint8_t* row = d + r * k_padded;
      for (size_t i = 0; i < k; ++i) row[i] = src[i] ^ flip;
      // Padding must contribute nothing: B is zero there, so any A byte works.
      for (size_t i = k; i < k_padded; ++i) row[i] = 0;
    }
  }
}

// Applies the epilogue to a finished tile (mr x 16 sums, `cols` of them
// valid). The kind is a template parameter and each row is processed in
// fixed 16-wide loops, so the compiler vectorizes them without branches.
template <Epilogue::Kind kKind>
struct TileWriter {
  const Epilogue& ep;
  const int32_t* colsum;
  uint32_t correction;  // acc -= correction * colsum[n] (A's zero point, plus 128 for shifted A)
  size_t n;
  void* out;

  void operator()(const int32_t* tile, size_t mr, size_t row0, size_t col0, size_t cols) const {
    uint32_t fix[kNR];
    for (size_t j = 0; j < kNR; ++j)
      fix[j] = j < cols ? correction * static_cast<uint32_t>(colsum[col0 + j]) : 0u;
    float scale[kNR] = {}, bias[kNR] = {};
    if (kKind != Epilogue::kInt32)
      for (size_t j = 0; j < cols; ++j) {
        scale[j] = ep.scale[col0 + j];
        bias[j] = ep.bias != nullptr ? ep.bias[col0 + j] : 0.0f;
      }
    for (size_t r = 0; r < mr; ++r) {
      const size_t base = (row0 + r) * n + col0;
      int32_t acc[kNR];
      for (size_t j = 0; j < kNR; ++j)  // wraps modulo 2^32, like the int32 reference
        acc[j] = static_cast<int32_t>(static_cast<uint32_t>(tile[r * kNR + j]) - fix[j]);
      if (kKind == Epilogue::kInt32) {
        std::memcpy(static_cast<int32_t*>(out) + base, acc, cols * sizeof(int32_t));
        continue;
      }
      float y[kNR];
      for (size_t j = 0; j < kNR; ++j) {
        // Without a bias this adds 0.0f, which changes no value (y + 0 == y, -0 + 0 is +0 either way).
        y[j] = static_cast<float>(acc[j]) * scale[j] + bias[j];
        if (ep.relu) y[j] = y[j] > 0.0f ? y[j] : 0.0f;
      }
      if (kKind == Epilogue::kFloat) {
        std::memcpy(static_cast<float*>(out) + base, y, cols * sizeof(float));
        continue;
      }
      uint8_t* q = static_cast<uint8_t*>(out) + base;
      for (size_t j = 0; j < cols; ++j) {
        float v = std::nearbyint(y[j] / ep.out_scale) + ep.out_zero_point;
        v = v < ep.qmin ? ep.qmin : (v > ep.qmax ? ep.qmax : v);
        if (std::isnan(y[j])) v = ep.out_zero_point;  // a NaN bias: same rule as qk.quantize
        q[j] = static_cast<uint8_t>(static_cast<int>(v));
      }
    }
  }
};

template <Epilogue::Kind kKind>
void run_tiles(const uint8_t* a, bool a_signed, size_t m, size_t k, const PackedWeight& w, const Epilogue& ep,
               void* out, const GemmKernels& kern, const PackedPanels& b, uint32_t shift);

}  // namespace

Isa selected_isa() { return select_isa(kImplemented); }

Layout selected_layout() { return kernels_for(selected_isa()).layout; }

void matmul(const void* a_ptr, bool a_signed, size_t m, size_t k, const PackedWeight& w, const Epilogue& epilogue,
            void* out) {
  if (m == 0 || w.n() == 0) return;
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
  const size_t a_elem = kern.layout == Layout::kQuads ? 1 : 2;
  const size_t kp = b.k_padded;
  const size_t k_steps = kern.layout == Layout::kQuads ? kp / 4 : kp / 2;
  const uint32_t zero_point = kKind == Epilogue::kInt32 ? 0u : static_cast<uint32_t>(ep.a_zero_point);
  const TileWriter<kKind> write{ep, w.column_sums().data(), shift + zero_point, n, out};

  // Work items: blocks of rows, times groups of panels when rows alone
  // cannot keep every thread busy. Each C element is computed by one tile
  // over the whole K, so results do not depend on the split.
  size_t mc = kABlockBytes / (kp * a_elem + 1) / kMaxMR * kMaxMR;
  if (mc < kMaxMR) mc = kMaxMR;
  if (mc > m) mc = (m + kMaxMR - 1) / kMaxMR * kMaxMR;
  const size_t m_blocks = (m + mc - 1) / mc;
  const bool parallel = m * n * (k ? k : 1) >= kParallelMacs;
  const size_t threads = parallel ? static_cast<size_t>(num_threads()) : 1;
  size_t panel_groups = m_blocks >= threads ? 1 : threads;
  if (panel_groups > b.panels) panel_groups = b.panels;
  const size_t tasks = m_blocks * panel_groups;

  parallel_for(tasks, parallel ? 1 : tasks, 1, [&](size_t begin, size_t end) {
    std::vector<uint8_t> a_block(mc * kp * a_elem);
    alignas(64) int32_t tile[kMaxMR * kNR];
    size_t packed_block = SIZE_MAX;
    for (size_t t = begin; t < end; ++t) {
      const size_t mb = t / panel_groups, group = t % panel_groups;
      const size_t m0 = mb * mc, rows = (m0 + mc <= m ? mc : m - m0);
      if (packed_block != mb) {
        pack_a(a + m0 * k, a_signed, rows, k, kp, kern.layout, a_block.data());
        packed_block = mb;
      }
      const size_t p0 = b.panels * group / panel_groups, p1 = b.panels * (group + 1) / panel_groups;
      for (size_t p = p0; p < p1; ++p) {
        const size_t col0 = p * kNR, cols = (col0 + kNR <= n ? kNR : n - col0);
        for (size_t r0 = 0; r0 < rows; r0 += kMaxMR) {
          const size_t mr = rows - r0 < kMaxMR ? rows - r0 : kMaxMR;
          kern.tile[mr](a_block.data() + r0 * kp * a_elem, kp, b.panel(p), k_steps, tile);
          write(tile, mr, m0 + r0, col0, cols);
        }
      }
    }
  });
}

}  // namespace

}  // namespace qk::gemm
