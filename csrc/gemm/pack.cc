#include "gemm/pack.h"

#if defined(__x86_64__)
#include <emmintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace qk::gemm {

namespace {

// One full step of a full panel: `step` rows of 16 columns (row r at
// src + r * n) interleaved column by column, as byte/word unpacks of the
// architecture's baseline (SSE2, NEON) instead of 16 * step scattered byte
// stores.
void interleave_step(const int8_t* src, size_t n, size_t step, int8_t* dst) {
#if defined(__x86_64__)
  auto row = [&](size_t r) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + r * n)); };
  auto put = [&](size_t i, __m128i v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(dst) + i, v); };
  const __m128i r0 = row(0), r1 = row(1);
  const __m128i lo01 = _mm_unpacklo_epi8(r0, r1), hi01 = _mm_unpackhi_epi8(r0, r1);
  if (step == 2) {  // (k, k+1) pairs: columns 0-7, then 8-15
    put(0, lo01);
    put(1, hi01);
    return;
  }
  const __m128i r2 = row(2), r3 = row(3);
  const __m128i lo23 = _mm_unpacklo_epi8(r2, r3), hi23 = _mm_unpackhi_epi8(r2, r3);
  put(0, _mm_unpacklo_epi16(lo01, lo23));  // quads of columns 0-3
  put(1, _mm_unpackhi_epi16(lo01, lo23));  // 4-7
  put(2, _mm_unpacklo_epi16(hi01, hi23));  // 8-11
  put(3, _mm_unpackhi_epi16(hi01, hi23));  // 12-15
#elif defined(__aarch64__)
  auto row = [&](size_t r) { return vld1q_s8(src + r * n); };
  auto put = [&](size_t i, int8x16_t v) { vst1q_s8(dst + 16 * i, v); };
  const int8x16_t r0 = row(0), r1 = row(1);
  const int8x16_t lo01 = vzip1q_s8(r0, r1), hi01 = vzip2q_s8(r0, r1);
  if (step == 2) {
    put(0, lo01);
    put(1, hi01);
    return;
  }
  const int8x16_t r2 = row(2), r3 = row(3);
  const int16x8_t lo23 = vreinterpretq_s16_s8(vzip1q_s8(r2, r3)), hi23 = vreinterpretq_s16_s8(vzip2q_s8(r2, r3));
  const int16x8_t lo01w = vreinterpretq_s16_s8(lo01), hi01w = vreinterpretq_s16_s8(hi01);
  put(0, vreinterpretq_s8_s16(vzip1q_s16(lo01w, lo23)));
  put(1, vreinterpretq_s8_s16(vzip2q_s16(lo01w, lo23)));
  put(2, vreinterpretq_s8_s16(vzip1q_s16(hi01w, hi23)));
  put(3, vreinterpretq_s8_s16(vzip2q_s16(hi01w, hi23)));
#else
  for (size_t j = 0; j < kNR; ++j)
    for (size_t r = 0; r < step; ++r) dst[j * step + r] = src[r * n + j];
#endif
}

}  // namespace

PackedPanels pack_panels(const int8_t* b, size_t k, size_t n, Layout layout) {
  const size_t step = layout_step(layout), align = layout_k_align(layout);
  PackedPanels p;
  p.layout = layout;
  p.k_padded = (k + align - 1) / align * align;
  p.panels = (n + kNR - 1) / kNR;
  p.data.assign(p.panels * p.k_padded * kNR, 0);
  // Whole steps of whole panels in vector registers, row steps outermost so
  // B is read in order (panel by panel, every row is a new page for large N:
  // a TLB miss per 16 bytes). The last partial panel and the rows past the
  // last whole step go byte by byte (the rest stays zero).
  const size_t full_steps = k / step, full_panels = n / kNR;
  for (size_t g = 0; g < full_steps; ++g)
    for (size_t panel = 0; panel < full_panels; ++panel)
      interleave_step(b + g * step * n + panel * kNR, n, step, p.data.data() + (panel * p.k_padded + g * step) * kNR);
  for (size_t panel = 0; panel < p.panels; ++panel) {
    int8_t* dst = p.data.data() + panel * p.k_padded * kNR;
    const size_t col0 = panel * kNR, cols = col0 + kNR <= n ? kNR : n - col0;
    for (size_t kk = panel < full_panels ? full_steps * step : 0; kk < k; ++kk) {
      const size_t group = kk / step, lane = kk % step;
      for (size_t j = 0; j < cols; ++j) dst[group * step * kNR + j * step + lane] = b[kk * n + col0 + j];
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
