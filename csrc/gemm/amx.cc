// Driver of the AMX kernel (baseline code): stages A and B so every tile load
// stays inside a buffer, splits row blocks over the threads, and copies the
// valid part of C out.
#include <cstring>
#include <vector>

#include "cpu/isa.h"
#include "gemm/amx.h"
#include "parallel/parallel.h"

namespace qk::gemm {

void amx_matmul_int32(bool emulated, const uint8_t* a, bool a_signed, size_t m, size_t k, const PackedWeight& w,
                      int32_t* out) {
  const size_t n = w.n();
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum (and no zero-length copies from empty buffers)
    std::memset(out, 0, m * n * sizeof(int32_t));
    return;
  }
  const PackedPanels& panels = w.panels(Layout::kQuads);
  const size_t kp = (k + 63) / 64 * 64, mp = (m + 31) / 32 * 32;
  const size_t pairs = (panels.panels + 1) / 2, np = pairs * 32;
  std::vector<int8_t> a_pad(mp * kp, 0);
  for (size_t r = 0; r < m; ++r) std::memcpy(a_pad.data() + r * kp, a + r * k, k);
  // B panels with K padded from qk's 4 to 64 (zeros), in whole pairs.
  const size_t panel_bytes = kp * kNR;
  std::vector<int8_t> b_pad(2 * pairs * panel_bytes, 0);
  for (size_t p = 0; p < panels.panels; ++p)
    std::memcpy(b_pad.data() + p * panel_bytes, panels.panel(p), panels.k_padded * kNR);
  std::vector<int32_t> c(mp * np);
  const AmxBlocks args{a_pad.data(), kp, b_pad.data(), panel_bytes, kp / 64, pairs, c.data(), np, a_signed};
  const size_t blocks = mp / 32;
  const bool parallel = m * n * (k ? k : 1) >= (size_t(1) << 20);
  parallel_for(blocks, parallel ? 1 : blocks, 1, [&](size_t begin, size_t end) {
#if defined(__x86_64__)
    if (!emulated) return amx::run_blocks(args, begin, end);
#else
    (void)emulated;  // elsewhere the route never asks for real tiles
#endif
    amx_emulated::run_blocks(args, begin, end);
  });
  for (size_t r = 0; r < m; ++r) std::memcpy(out + r * n, c.data() + r * np, n * sizeof(int32_t));
}

bool amx_tiles_available() {
#if defined(__x86_64__)
  return isa_supported(Isa::amx);
#else
  return false;
#endif
}

bool amx_self_test() {
  // 40 x 70 x 35: two row blocks, a K tail, an odd panel count; signed and unsigned A.
  const size_t m = 40, k = 70, n = 35;
  std::vector<int8_t> b(k * n);
  std::vector<uint8_t> a(m * k);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<int8_t>((i * 37 + 11) % 256 - 128);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>((i * 91 + 7) % 256);
  const PackedWeight w(b.data(), k, n, Layout::kQuads);
  for (bool a_signed : {false, true}) {
    std::vector<int32_t> real(m * n), emulated(m * n);
    amx_matmul_int32(false, a.data(), a_signed, m, k, w, real.data());
    amx_matmul_int32(true, a.data(), a_signed, m, k, w, emulated.data());
    if (real != emulated) return false;
  }
  return true;
}

}  // namespace qk::gemm
