// The A packers of the micro-kernels' formats (gemm_kernels.h), baseline code.
#include <cstring>

#include "gemm/gemm_kernels.h"

#if defined(__x86_64__)
#include <emmintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

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

#if defined(__x86_64__) || defined(__aarch64__)
// Four rows x four quads (16 bytes of each row, row stride k) into the
// interleaved layout: quad q's four rows at out + q * quad_stride, 16 bytes,
// as a 4 x 4 transpose of 32-bit lanes (the scalar loop moves 4 bytes at a time).
inline void transpose_quads(const uint8_t* src, size_t k, bool a_signed, uint8_t* out, size_t quad_stride) {
#if defined(__x86_64__)
  const __m128i flip = _mm_set1_epi8(a_signed ? char(0x80) : 0);
  auto row = [&](size_t r) {
    return _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + r * k)), flip);
  };
  const __m128i r0 = row(0), r1 = row(1), r2 = row(2), r3 = row(3);
  const __m128i lo01 = _mm_unpacklo_epi32(r0, r1), hi01 = _mm_unpackhi_epi32(r0, r1);
  const __m128i lo23 = _mm_unpacklo_epi32(r2, r3), hi23 = _mm_unpackhi_epi32(r2, r3);
  auto put = [&](size_t q, __m128i v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(out + q * quad_stride), v); };
  put(0, _mm_unpacklo_epi64(lo01, lo23));
  put(1, _mm_unpackhi_epi64(lo01, lo23));
  put(2, _mm_unpacklo_epi64(hi01, hi23));
  put(3, _mm_unpackhi_epi64(hi01, hi23));
#else
  const uint8x16_t flip = vdupq_n_u8(a_signed ? 0x80 : 0);
  auto row = [&](size_t r) { return vreinterpretq_u32_u8(veorq_u8(vld1q_u8(src + r * k), flip)); };
  const uint32x4_t r0 = row(0), r1 = row(1), r2 = row(2), r3 = row(3);
  const uint64x2_t lo01 = vreinterpretq_u64_u32(vzip1q_u32(r0, r1)), hi01 = vreinterpretq_u64_u32(vzip2q_u32(r0, r1));
  const uint64x2_t lo23 = vreinterpretq_u64_u32(vzip1q_u32(r2, r3)), hi23 = vreinterpretq_u64_u32(vzip2q_u32(r2, r3));
  auto put = [&](size_t q, uint64x2_t v) { vst1q_u8(out + q * quad_stride, vreinterpretq_u8_u64(v)); };
  put(0, vzip1q_u64(lo01, lo23));
  put(1, vzip2q_u64(lo01, lo23));
  put(2, vzip1q_u64(hi01, hi23));
  put(3, vzip2q_u64(hi01, hi23));
#endif
}
#endif

// Whole steps [0, full) of one tile's tr rows (row stride k): row r of step q
// at out + (q * tr + r) * kStep. Quads go 4 rows x 4 quads at a time in vector
// registers where the architecture's baseline has them (the scalar loop moves
// 4 bytes at a time; a convolution's gathered A made it a fifth of its time).
template <size_t kStep, typename T>
void pack_steps(const uint8_t* src, size_t k, size_t tr, size_t full, bool a_signed, T* out) {
  size_t r0 = 0;
#if defined(__x86_64__) || defined(__aarch64__)
  if constexpr (kStep == 4) {
    for (; r0 + 4 <= tr; r0 += 4) {
      size_t q = 0;
      for (; q + 4 <= full; q += 4) transpose_quads(src + r0 * k + q * 4, k, a_signed, out + (q * tr + r0) * 4, tr * 4);
      for (; q < full; ++q)
        for (size_t r = r0; r < r0 + 4; ++r) convert_step<4>(src + r * k + q * 4, a_signed, out + (q * tr + r) * 4);
    }
  }
#endif
  for (size_t q = 0; q < full; ++q)
    for (size_t r = r0; r < tr; ++r) convert_step<kStep>(src + r * k + q * kStep, a_signed, out + (q * tr + r) * kStep);
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
    pack_steps<kStep>(src, k, tr, full, a_signed, dst + t0 * kp);
    T* out = dst + t0 * kp + full * tr * kStep;
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
