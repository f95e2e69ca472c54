// Pre-packed int8 weights (B, K x N) in the layout a micro-kernel wants.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "gemm/gemm_kernels.h"

namespace qk::gemm {

struct PackedPanels {
  Layout layout;
  size_t k_padded;  // K rounded up to the layout's alignment (2, 4 or 64)
  size_t panels;    // ceil(N / 16)
  std::vector<int8_t> data;  // panel p at p * k_padded * 16, zero-padded past K and N

  const int8_t* panel(size_t p) const { return data.data() + p * k_padded * kNR; }
};

PackedPanels pack_panels(const int8_t* b, size_t k, size_t n, Layout layout);

// A weight packed once, used by many GEMMs. Keeps the original B so it can be
// unpacked, and repacked when the ISA cap moves to a path with another layout.
class PackedWeight {
 public:
  PackedWeight(const int8_t* b, size_t k, size_t n, Layout layout);

  size_t k() const { return k_; }
  size_t n() const { return n_; }
  const std::vector<int8_t>& original() const { return original_; }
  const std::vector<int32_t>& column_sums() const { return column_sums_; }
  // Panels in `layout`, packing them on first use (thread-safe).
  const PackedPanels& panels(Layout layout) const;

 private:
  size_t k_, n_;
  std::vector<int8_t> original_;      // K x N, row-major
  std::vector<int32_t> column_sums_;  // sum over k of B[k, n], exact
  mutable std::mutex mutex_;
  mutable std::unique_ptr<PackedPanels> by_layout_[kNumLayouts];
};

}  // namespace qk::gemm
