// NEON path (aarch64): 8 floats per step, as two float32x4. The tail goes
// through the same step on a padded copy, so the last elements are computed
// exactly like the rest. Rounding is FRINTN (to nearest, ties to even), as
// the AVX paths' explicit mode and the scalar path's default mode.
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cpu/vector_lanes.h"
#include "quant/add.h"
#include "quant/quant_kernels.h"

namespace qk::quant::neon {
namespace {

constexpr size_t kLanes = 8;

struct F8 {
  float32x4_t lo, hi;
};

F8 load_f8(const float* p) { return {vld1q_f32(p), vld1q_f32(p + 4)}; }
void store_f8(float* p, F8 v) {
  vst1q_f32(p, v.lo);
  vst1q_f32(p + 4, v.hi);
}

// Scale and zero point for 8 consecutive elements.
template <bool kPerElement>
struct Params {
  F8 scale, zp;
  Params(const float* s, const float* z, size_t i)
      : scale(kPerElement ? load_f8(s + i) : F8{vdupq_n_f32(*s), vdupq_n_f32(*s)}),
        zp(kPerElement ? load_f8(z + i) : F8{vdupq_n_f32(*z), vdupq_n_f32(*z)}) {}
};

// The clamped grid value as float (integer-valued); NaN gives the zero point.
float32x4_t quantize4(float32x4_t x, float32x4_t scale, float32x4_t zp, float32x4_t qmin, float32x4_t qmax) {
  float32x4_t v = vaddq_f32(vrndnq_f32(vdivq_f32(x, scale)), zp);
  v = vminq_f32(vmaxq_f32(v, qmin), qmax);
  return vbslq_f32(vceqq_f32(x, x), v, zp);
}

F8 quantize8(F8 x, const F8& scale, const F8& zp, float32x4_t qmin, float32x4_t qmax) {
  return {quantize4(x.lo, scale.lo, zp.lo, qmin, qmax), quantize4(x.hi, scale.hi, zp.hi, qmin, qmax)};
}

// Writes 8 in-range integers as bytes.
template <typename Q>
void store_bytes8(Q* q, F8 v) {
  const int16x8_t i16 = vcombine_s16(vqmovn_s32(vcvtq_s32_f32(v.lo)), vqmovn_s32(vcvtq_s32_f32(v.hi)));
  if constexpr (std::is_same<Q, uint8_t>::value)
    vst1_u8(q, vqmovun_s16(i16));
  else
    vst1_s8(q, vqmovn_s16(i16));
}

template <typename Q>
F8 load8(const Q* q) {
  int16x8_t i16;
  if constexpr (std::is_same<Q, uint8_t>::value)
    i16 = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(q)));
  else
    i16 = vmovl_s8(vld1_s8(q));
  return {vcvtq_f32_s32(vmovl_s16(vget_low_s16(i16))), vcvtq_f32_s32(vmovl_high_s16(i16))};
}

F8 dequantize8(F8 v, const F8& scale, const F8& zp) {
  return {vmulq_f32(vsubq_f32(v.lo, zp.lo), scale.lo), vmulq_f32(vsubq_f32(v.hi, zp.hi), scale.hi)};
}

// Runs step(in, out, params) over [0, n) in blocks of 8; the tail runs the
// same step on padded copies.
template <bool kPerElement, typename In, typename Out, typename Step>
void for_each_block(const In* in, Out* out, size_t n, const float* scale, const float* zp, Step step) {
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) step(in + i, out + i, Params<kPerElement>(scale, zp, i));
  if (i == n) return;
  const size_t count = n - i;
  In in_pad[kLanes] = {};
  Out out_pad[kLanes];
  float scale_pad[kLanes], zp_pad[kLanes];
  std::memcpy(in_pad, in + i, count * sizeof(In));
  for (size_t j = 0; j < kLanes; ++j) {
    scale_pad[j] = kPerElement ? (j < count ? scale[i + j] : 1.0f) : scale[0];
    zp_pad[j] = kPerElement ? (j < count ? zp[i + j] : 0.0f) : zp[0];
  }
  step(in_pad, out_pad, Params<kPerElement>(scale_pad, zp_pad, 0));
  std::memcpy(out + i, out_pad, count * sizeof(Out));
}

template <typename Q, bool kPerElement>
void quantize(const float* x, void* qv, size_t n, const float* scale, const float* zp, float qmin, float qmax) {
  const float32x4_t lo = vdupq_n_f32(qmin), hi = vdupq_n_f32(qmax);
  for_each_block<kPerElement>(x, static_cast<Q*>(qv), n, scale, zp,
                              [&](const float* xi, Q* qi, const Params<kPerElement>& p) {
                                store_bytes8(qi, quantize8(load_f8(xi), p.scale, p.zp, lo, hi));
                              });
}

template <typename Q, bool kPerElement>
void dequantize(const void* qv, float* x, size_t n, const float* scale, const float* zp, bool /*stream*/) {
  for_each_block<kPerElement>(static_cast<const Q*>(qv), x, n, scale, zp,
                              [&](const Q* qi, float* xi, const Params<kPerElement>& p) {
                                store_f8(xi, dequantize8(load8(qi), p.scale, p.zp));
                              });
}

template <bool kPerElement>
void fake_quantize(const float* x, float* y, size_t n, const float* scale, const float* zp, float qmin,
                   float qmax, bool /*stream*/) {
  const float32x4_t lo = vdupq_n_f32(qmin), hi = vdupq_n_f32(qmax);
  for_each_block<kPerElement>(x, y, n, scale, zp, [&](const float* xi, float* yi, const Params<kPerElement>& p) {
    store_f8(yi, dequantize8(quantize8(load_f8(xi), p.scale, p.zp, lo, hi), p.scale, p.zp));
  });
}

constexpr size_t kAddLanes = 4;  // floats per vector register
#include "quant/add_kernel.inc"

}  // namespace

const QuantKernels kernels = {
    {{quantize<int8_t, false>, quantize<int8_t, true>},
     {quantize<uint8_t, false>, quantize<uint8_t, true>}},
    {{dequantize<int8_t, false>, dequantize<int8_t, true>},
     {dequantize<uint8_t, false>, dequantize<uint8_t, true>}},
    {fake_quantize<false>, fake_quantize<true>},
    add,
};

}  // namespace qk::quant::neon
