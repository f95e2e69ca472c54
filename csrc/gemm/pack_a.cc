// The A packers of the micro-kernels' formats (gemm_kernels.h), baseline code.
#include <cstring>

#include "gemm/gemm_kernels.h"

namespace qk::gemm {
namespace {

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

void pack_pairs(const uint8_t* a, bool a_signed, size_t rows, size_t k, size_t kp, size_t mr, void* dst) {
  pack_a<2>(a, a_signed, rows, k, kp, mr, static_cast<int16_t*>(dst));
}

void pack_quads(const uint8_t* a, bool a_signed, size_t rows, size_t k, size_t kp, size_t mr, void* dst) {
  pack_a<4>(a, a_signed, rows, k, kp, mr, static_cast<uint8_t*>(dst));
}

// Row after row (stride kp), signed A shifted by +128, K zero-padded; the last
// tile filled up to mr rows with zero rows, as AMX loads whole 16-row tiles.
void pack_rows(const uint8_t* a, bool a_signed, size_t rows, size_t k, size_t kp, size_t mr, void* dst) {
  auto* out = static_cast<uint8_t*>(dst);
  const size_t padded_rows = (rows + mr - 1) / mr * mr;
  for (size_t r = 0; r < rows; ++r, out += kp) {
    const uint8_t* src = a + r * k;
    size_t e = 0;
    for (; e + 4 <= k; e += 4) convert_step<4>(src + e, a_signed, out + e);
    for (; e < k; ++e) out[e] = static_cast<uint8_t>(src[e] ^ (a_signed ? 0x80 : 0));
    std::memset(out + k, 0, kp - k);
  }
  std::memset(out, 0, (padded_rows - rows) * kp);
}

}  // namespace

const AFormat kInt16Pairs = {2, 0, false, pack_pairs};
const AFormat kShiftedQuads = {1, 128, false, pack_quads};
const AFormat kShiftedRows = {1, 128, true, pack_rows};

}  // namespace qk::gemm
