#include "gemm/pack.h"

namespace qk::gemm {

PackedPanels pack_panels(const int8_t* b, size_t k, size_t n, Layout layout) {
  const size_t step = layout == Layout::kPairs ? 2 : 4;
  PackedPanels p;
  p.layout = layout;
  p.k_padded = (k + step - 1) / step * step;
  p.panels = (n + kNR - 1) / kNR;
  p.data.assign(p.panels * p.k_padded * kNR, 0);
  for (size_t panel = 0; panel < p.panels; ++panel) {
    int8_t* dst = p.data.data() + panel * p.k_padded * kNR;
    for (size_t kk = 0; kk < k; ++kk) {
      const size_t group = kk / step, lane = kk % step;
      for (size_t j = 0; j < kNR && panel * kNR + j < n; ++j)
        dst[group * step * kNR + j * step + lane] = b[kk * n + panel * kNR + j];
    }
  }
  return p;
}

PackedWeight::PackedWeight(const int8_t* b, size_t k, size_t n, Layout layout)
    : k_(k), n_(n), original_(b, b + k * n), column_sums_(n, 0) {
  // Sums wrap modulo 2^32 like every int32 result here (only for K > 16M).
  std::vector<uint32_t> sums(n, 0);
  for (size_t kk = 0; kk < k; ++kk)
    for (size_t j = 0; j < n; ++j) sums[j] += static_cast<uint32_t>(static_cast<int32_t>(b[kk * n + j]));
  for (size_t j = 0; j < n; ++j) column_sums_[j] = static_cast<int32_t>(sums[j]);
  panels(layout);
}

const PackedPanels& PackedWeight::panels(Layout layout) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& slot = by_layout_[static_cast<int>(layout)];
  if (!slot) slot = std::make_unique<PackedPanels>(pack_panels(original_.data(), k_, n_, layout));
  return *slot;
}

}  // namespace qk::gemm
