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
constexpr size_t kParallelMacs = size_t(1) << 21;

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

// Applies the epilogue to a finished tile (mr x 16 sums, `cols` of them valid).
struct TileWriter {
  const Epilogue& ep;
  const int32_t* colsum;
  uint32_t correction;  // acc -= correction * colsum[n] (A's zero point, plus 128 for shifted A)
  size_t n;
  void* out;

  void operator()(const int32_t* tile, size_t mr, size_t row0, size_t col0, size_t cols) const {
    for (size_t r = 0; r < mr; ++r) {
      const size_t base = (row0 + r) * n + col0;
      for (size_t j = 0; j < cols; ++j) {
        const uint32_t sum =
            static_cast<uint32_t>(tile[r * kNR + j]) - correction * static_cast<uint32_t>(colsum[col0 + j]);
        const int32_t acc = static_cast<int32_t>(sum);
        if (ep.kind == Epilogue::kInt32) {
          static_cast<int32_t*>(out)[base + j] = acc;
          continue;
        }
        float y = static_cast<float>(acc) * ep.scale[col0 + j];
        if (ep.bias != nullptr) y += ep.bias[col0 + j];
        if (ep.relu && !(y > 0.0f)) y = 0.0f;
        if (ep.kind == Epilogue::kFloat) {
          static_cast<float*>(out)[base + j] = y;
          continue;
        }
        float q = std::nearbyint(y / ep.out_scale) + ep.out_zero_point;
        q = q < ep.qmin ? ep.qmin : (q > ep.qmax ? ep.qmax : q);
        if (std::isnan(y)) q = ep.out_zero_point;
        static_cast<uint8_t*>(out)[base + j] = static_cast<uint8_t>(static_cast<int>(q));
      }
    }
  }
};

}  // namespace

Isa selected_isa() { return select_isa(kImplemented); }

Layout selected_layout() { return kernels_for(selected_isa()).layout; }

void matmul(const void* a_ptr, bool a_signed, size_t m, size_t k, const PackedWeight& w, const Epilogue& epilogue,
            void* out) {
  const size_t n = w.n();
  if (m == 0 || n == 0) return;
  const GemmKernels& kern = kernels_for(selected_isa());
  const PackedPanels& b = w.panels(kern.layout);
  const bool quads = kern.layout == Layout::kQuads;
  const size_t a_elem = quads ? 1 : 2;
  const size_t kp = b.k_padded;
  const size_t k_steps = quads ? kp / 4 : kp / 2;
  const uint32_t shift = quads && a_signed ? 128u : 0u;
  const TileWriter write{epilogue, w.column_sums().data(),
                         shift + static_cast<uint32_t>(epilogue.kind == Epilogue::kInt32 ? 0 : epilogue.a_zero_point),
                         n, out};
  const auto* a = static_cast<const uint8_t*>(a_ptr);

  // Work items: blocks of rows, times groups of panels when rows alone
  // cannot keep every thread busy. Each C element is computed by one tile
  // over the whole K, so results do not depend on the split.
  size_t mc = kABlockBytes / (kp * a_elem + 1) / kMaxMR * kMaxMR;
  if (mc < kMaxMR) mc = kMaxMR;
  const size_t m_blocks = (m + mc - 1) / mc;
  const bool parallel = m * n * (k ? k : 1) >= kParallelMacs;
  const size_t threads = parallel ? static_cast<size_t>(num_threads()) : 1;
  size_t panel_groups = m_blocks >= threads ? 1 : threads;
  if (panel_groups > b.panels) panel_groups = b.panels;
  const size_t tasks = m_blocks * panel_groups;

  parallel_for(tasks, parallel ? 1 : tasks, 1, [&](size_t begin, size_t end) {
    std::vector<uint8_t> a_block((mc + kMaxMR) * kp * a_elem);
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

}  // namespace qk::gemm
