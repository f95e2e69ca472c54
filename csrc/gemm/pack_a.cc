// The A packers of the micro-kernels' formats (gemm_kernels.h), baseline code.
#include <cstring>
#include <type_traits>

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
// The micro-kernels' A is a transpose of 32-bit lanes (a quad of bytes or a
// pair of int16): four rows' lanes 0..3 become the four rows of lane 0, of
// lane 1, ..., stored at out + lane * lane_stride, 16 bytes each.
#if defined(__x86_64__)
using Vec = __m128i;
inline void store_transposed(Vec r0, Vec r1, Vec r2, Vec r3, uint8_t* out, size_t lane_stride) {
  const Vec lo01 = _mm_unpacklo_epi32(r0, r1), hi01 = _mm_unpackhi_epi32(r0, r1);
  const Vec lo23 = _mm_unpacklo_epi32(r2, r3), hi23 = _mm_unpackhi_epi32(r2, r3);
  auto put = [&](size_t q, Vec v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(out + q * lane_stride), v); };
  put(0, _mm_unpacklo_epi64(lo01, lo23));
  put(1, _mm_unpackhi_epi64(lo01, lo23));
  put(2, _mm_unpacklo_epi64(hi01, hi23));
  put(3, _mm_unpackhi_epi64(hi01, hi23));
}
// The same for two rows: lane q's two rows (8 bytes) at out + q * lane_stride.
inline void store_transposed(Vec r0, Vec r1, uint8_t* out, size_t lane_stride) {
  const Vec lo = _mm_unpacklo_epi32(r0, r1), hi = _mm_unpackhi_epi32(r0, r1);
  auto put = [&](size_t q, Vec v) { _mm_storel_epi64(reinterpret_cast<__m128i*>(out + q * lane_stride), v); };
  put(0, lo);
  put(1, _mm_unpackhi_epi64(lo, lo));
  put(2, hi);
  put(3, _mm_unpackhi_epi64(hi, hi));
}
inline Vec load16(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
inline Vec flip_sign(Vec v, bool a_signed) { return _mm_xor_si128(v, _mm_set1_epi8(a_signed ? char(0x80) : 0)); }
// 16 bytes as int16: (low 8, high 8), sign- or zero-extended.
inline void widen(Vec v, bool a_signed, Vec& lo, Vec& hi) {
  const Vec ext = a_signed ? _mm_cmpgt_epi8(_mm_setzero_si128(), v) : _mm_setzero_si128();
  lo = _mm_unpacklo_epi8(v, ext);
  hi = _mm_unpackhi_epi8(v, ext);
}
#else
using Vec = uint32x4_t;
inline void store_transposed(Vec r0, Vec r1, Vec r2, Vec r3, uint8_t* out, size_t lane_stride) {
  const uint64x2_t lo01 = vreinterpretq_u64_u32(vzip1q_u32(r0, r1)), hi01 = vreinterpretq_u64_u32(vzip2q_u32(r0, r1));
  const uint64x2_t lo23 = vreinterpretq_u64_u32(vzip1q_u32(r2, r3)), hi23 = vreinterpretq_u64_u32(vzip2q_u32(r2, r3));
  auto put = [&](size_t q, uint64x2_t v) { vst1q_u8(out + q * lane_stride, vreinterpretq_u8_u64(v)); };
  put(0, vzip1q_u64(lo01, lo23));
  put(1, vzip2q_u64(lo01, lo23));
  put(2, vzip1q_u64(hi01, hi23));
  put(3, vzip2q_u64(hi01, hi23));
}
inline void store_transposed(Vec r0, Vec r1, uint8_t* out, size_t lane_stride) {
  const uint32x4_t lo = vzip1q_u32(r0, r1), hi = vzip2q_u32(r0, r1);
  auto put = [&](size_t q, uint32x2_t v) { vst1_u8(out + q * lane_stride, vreinterpret_u8_u32(v)); };
  put(0, vget_low_u32(lo));
  put(1, vget_high_u32(lo));
  put(2, vget_low_u32(hi));
  put(3, vget_high_u32(hi));
}
inline Vec load16(const uint8_t* p) { return vreinterpretq_u32_u8(vld1q_u8(p)); }
inline Vec flip_sign(Vec v, bool a_signed) {
  return vreinterpretq_u32_u8(veorq_u8(vreinterpretq_u8_u32(v), vdupq_n_u8(a_signed ? 0x80 : 0)));
}
inline void widen(Vec v, bool a_signed, Vec& lo, Vec& hi) {
  const uint8x16_t b = vreinterpretq_u8_u32(v);
  if (a_signed) {
    const int8x16_t s = vreinterpretq_s8_u8(b);
    lo = vreinterpretq_u32_s16(vmovl_s8(vget_low_s8(s)));
    hi = vreinterpretq_u32_s16(vmovl_s8(vget_high_s8(s)));
  } else {
    lo = vreinterpretq_u32_u16(vmovl_u8(vget_low_u8(b)));
    hi = vreinterpretq_u32_u16(vmovl_u8(vget_high_u8(b)));
  }
}
#endif

// kRows (4 or 2) rows x 16 bytes (row stride k) into the interleaved layout,
// lane (step) q's rows at out + q * lane_stride: four quads of bytes, signed
// A shifted, or eight pairs widened to int16.
template <size_t kStep, size_t kRows>
inline void transpose_rows(const uint8_t* src, size_t k, bool a_signed, uint8_t* out, size_t lane_stride) {
  Vec lo[kRows], hi[kRows];
  for (size_t r = 0; r < kRows; ++r) {
    const Vec v = load16(src + r * k);
    if constexpr (kStep == 4) lo[r] = flip_sign(v, a_signed);
    else widen(v, a_signed, lo[r], hi[r]);
  }
  auto store = [&](const Vec* v, uint8_t* dst) {
    if constexpr (kRows == 4) store_transposed(v[0], v[1], v[2], v[3], dst, lane_stride);
    else store_transposed(v[0], v[1], dst, lane_stride);
  };
  store(lo, out);
  if constexpr (kStep == 2) store(hi, out + 4 * lane_stride);
}
#endif

// Whole steps [0, full) of one tile's tr rows (rows lda bytes apart): row r of step q
// at out + (q * tr + r) * kStep. Four rows x 16 bytes at a time in vector
// registers where the architecture's baseline has them (element by element,
// packing cost the AVX2 GEMM of a 7 x 7 stem convolution twice its tiles).
template <size_t kStep, typename T>
void pack_steps(const uint8_t* src, size_t lda, size_t tr, size_t full, bool a_signed, T* out) {
  size_t r0 = 0;
#if defined(__x86_64__) || defined(__aarch64__)
  constexpr size_t kVecSteps = 16 / kStep;
  auto rows = [&](auto group) {
    constexpr size_t kRows = decltype(group)::value;
    for (; r0 + kRows <= tr; r0 += kRows) {
      size_t q = 0;
      for (; q + kVecSteps <= full; q += kVecSteps)
        transpose_rows<kStep, kRows>(src + r0 * lda + q * kStep, lda, a_signed,
                                     reinterpret_cast<uint8_t*>(out + (q * tr + r0) * kStep), tr * kStep * sizeof(T));
      for (; q < full; ++q)
        for (size_t r = r0; r < r0 + kRows; ++r)
          convert_step<kStep>(src + r * lda + q * kStep, a_signed, out + (q * tr + r) * kStep);
    }
  };
  rows(std::integral_constant<size_t, 4>{});
  rows(std::integral_constant<size_t, 2>{});
#endif
  for (size_t q = 0; q < full; ++q)
    for (size_t r = r0; r < tr; ++r)
      convert_step<kStep>(src + r * lda + q * kStep, a_signed, out + (q * tr + r) * kStep);
}

// Packs rows [0, rows) of A (rows lda bytes apart) into tiles of `mr` rows (the last
// may be shorter), each tile's rows interleaved step by step as the
// micro-kernels read them (gemm_kernels.h), zero-padding K to kp. Padding
// contributes nothing whatever its value: B is zero there.
template <size_t kStep, typename T>
void pack_a(const uint8_t* a, size_t lda, bool a_signed, size_t rows, size_t k, size_t kp, size_t mr, T* dst) {
  const size_t full = k / kStep;
  for (size_t t0 = 0; t0 < rows; t0 += mr) {
    const size_t tr = rows - t0 < mr ? rows - t0 : mr;
    const uint8_t* src = a + t0 * lda;
    pack_steps<kStep>(src, lda, tr, full, a_signed, dst + t0 * kp);
    T* out = dst + t0 * kp + full * tr * kStep;
    if (full * kStep < kp)
      for (size_t r = 0; r < tr; ++r, out += kStep) {
        uint8_t last[kStep] = {};
        std::memcpy(last, src + r * lda + full * kStep, k - full * kStep);
        convert_step<kStep>(last, a_signed, out);
        for (size_t e = k - full * kStep; e < kStep; ++e) out[e] = 0;
      }
  }
}

void pack_pairs(const uint8_t* a, size_t lda, bool a_signed, size_t rows, size_t k, size_t kp, size_t mr, void* dst) {
  pack_a<2>(a, lda, a_signed, rows, k, kp, mr, static_cast<int16_t*>(dst));
}

void pack_quads(const uint8_t* a, size_t lda, bool a_signed, size_t rows, size_t k, size_t kp, size_t mr, void* dst) {
  pack_a<4>(a, lda, a_signed, rows, k, kp, mr, static_cast<uint8_t*>(dst));
}

// Row after row (stride kp), signed A shifted by +128, K zero-padded.
void pack_rows(const uint8_t* a, size_t lda, bool a_signed, size_t rows, size_t k, size_t kp, size_t, void* dst) {
  auto* out = static_cast<uint8_t*>(dst);
  const uint8_t flip = a_signed ? 0x80 : 0;
  for (size_t r = 0; r < rows; ++r, out += kp) {
    const uint8_t* src = a + r * lda;
    size_t e = 0;
#if defined(__x86_64__) || defined(__aarch64__)
    for (; e + 16 <= k; e += 16) {
      const Vec v = flip_sign(load16(src + e), a_signed);
      std::memcpy(out + e, &v, 16);
    }
#endif
    for (; e < k; ++e) out[e] = static_cast<uint8_t>(src[e] ^ flip);
    std::memset(out + k, 0, kp - k);
  }
}

// Row after row (kp int16 apart), each byte widened to int16 (the exact
// value), K zero-padded.
void pack_int16_rows(const uint8_t* a, size_t lda, bool a_signed, size_t rows, size_t k, size_t kp, size_t,
                     void* dst) {
  auto* out = static_cast<int16_t*>(dst);
  for (size_t r = 0; r < rows; ++r, out += kp) {
    const uint8_t* src = a + r * lda;
    size_t e = 0;
#if defined(__x86_64__) || defined(__aarch64__)
    for (; e + 16 <= k; e += 16) {
      Vec lo, hi;
      widen(load16(src + e), a_signed, lo, hi);
      std::memcpy(out + e, &lo, 16);
      std::memcpy(out + e + 8, &hi, 16);
    }
#endif
    for (; e < k; ++e) out[e] = a_signed ? int16_t(int8_t(src[e])) : int16_t(src[e]);
    for (; e < kp; ++e) out[e] = 0;
  }
}

// pack_rows, then zero rows up to a whole tile of mr rows: AMX loads 16-row tiles.
void pack_row_tiles(const uint8_t* a, size_t lda, bool a_signed, size_t rows, size_t k, size_t kp, size_t mr,
                    void* dst) {
  pack_rows(a, lda, a_signed, rows, k, kp, mr, dst);
  const size_t padded_rows = (rows + mr - 1) / mr * mr;
  std::memset(static_cast<uint8_t*>(dst) + rows * kp, 0, (padded_rows - rows) * kp);
}

}  // namespace

const AFormat kInt16Pairs = {2, 0, false, false, false, pack_pairs};
const AFormat kInt16Rows = {2, 0, true, false, false, pack_int16_rows};
const AFormat kShiftedQuads = {1, 128, false, false, false, pack_quads};
const AFormat kShiftedRows = {1, 128, true, true, false, pack_rows};
const AFormat kShiftedRowTiles = {1, 128, true, true, true, pack_row_tiles};

}  // namespace qk::gemm
