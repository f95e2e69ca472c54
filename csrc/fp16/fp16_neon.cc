// NEON path (aarch64): FCVTN / FCVTL for FP16 in blocks of 8 elements,
// integer NEON for bfloat16. The conversion instructions quiet signalling
// NaNs, NumPy does not: a block holding any NaN (rare) gets its NaN lanes
// recomputed with integer ops (see fp16_scalar.cc for the rules). FCVTN takes
// its rounding mode and flush-to-zero from FPCR, so a call under anything but
// the default (round to nearest, no flushing) goes to the scalar rules, which
// use integer arithmetic only.
#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "fp16/fp16_kernels.h"

namespace qk::fp16::neon {
namespace {

#define QK_FP16_STEP inline __attribute__((always_inline))

// FPCR.RMode (bits 22-23), FZ (24), FZ16 (19): all zero by default.
bool default_fp_environment() {
  uint64_t fpcr;
  __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
  return (fpcr & ((3ull << 22) | (1ull << 24) | (1ull << 19))) == 0;
}

// ---- FP32 -> FP16 ---------------------------------------------------------

// NumPy's half bits for the NaN lanes of x, blended over h.
__attribute__((noinline, cold)) uint16x4_t f16_fix_nan(float32x4_t x, uint16x4_t h) {
  const uint32x4_t xi = vreinterpretq_u32_f32(x);
  const uint32x4_t payload = vmaxq_u32(vandq_u32(vshrq_n_u32(xi, 13), vdupq_n_u32(0x3ff)), vdupq_n_u32(1));
  const uint32x4_t sign = vandq_u32(vshrq_n_u32(xi, 16), vdupq_n_u32(0x8000));
  const uint16x4_t nan_bits = vmovn_u32(vorrq_u32(vorrq_u32(sign, payload), vdupq_n_u32(0x7c00)));
  const uint16x4_t is_nan = vmovn_u32(vmvnq_u32(vceqq_f32(x, x)));
  return vbsl_u16(is_nan, nan_bits, h);
}

QK_FP16_STEP uint16x8_t f32_to_f16_8(const float* p) {
  const float32x4_t x0 = vld1q_f32(p), x1 = vld1q_f32(p + 4);
  uint16x4_t h0 = vreinterpret_u16_f16(vcvt_f16_f32(x0)), h1 = vreinterpret_u16_f16(vcvt_f16_f32(x1));
  // A lane is clear if x0 or x1 is NaN there.
  if (__builtin_expect(vminvq_u32(vandq_u32(vceqq_f32(x0, x0), vceqq_f32(x1, x1))) == 0, 0)) {
    h0 = f16_fix_nan(x0, h0);
    h1 = f16_fix_nan(x1, h1);
  }
  return vcombine_u16(h0, h1);
}

// ---- FP16 -> FP32 ---------------------------------------------------------

struct Wide8 {
  float32x4_t lo, hi;
};

// NumPy's float bits for the NaN lanes of 4 halves (payload not quieted).
__attribute__((noinline, cold)) float32x4_t f32_fix_nan(uint16x4_t h, float32x4_t x) {
  const uint32x4_t h32 = vmovl_u16(h);
  const uint32x4_t sign = vshlq_n_u32(vandq_u32(h32, vdupq_n_u32(0x8000)), 16);
  const uint32x4_t payload = vshlq_n_u32(vandq_u32(h32, vdupq_n_u32(0x3ff)), 13);
  const uint32x4_t f = vorrq_u32(vorrq_u32(sign, payload), vdupq_n_u32(0x7f800000));
  const uint32x4_t nan = vcgtq_u32(vandq_u32(h32, vdupq_n_u32(0x7fff)), vdupq_n_u32(0x7c00));
  return vbslq_f32(nan, vreinterpretq_f32_u32(f), x);
}

QK_FP16_STEP Wide8 f16_to_f32_8(const uint16_t* p) {
  const uint16x8_t h = vld1q_u16(p);
  const uint16x4_t h0 = vget_low_u16(h), h1 = vget_high_u16(h);
  Wide8 r{vcvt_f32_f16(vreinterpret_f16_u16(h0)), vcvt_f32_f16(vreinterpret_f16_u16(h1))};
  if (__builtin_expect(vminvq_u32(vandq_u32(vceqq_f32(r.lo, r.lo), vceqq_f32(r.hi, r.hi))) == 0, 0)) {
    r.lo = f32_fix_nan(h0, r.lo);
    r.hi = f32_fix_nan(h1, r.hi);
  }
  return r;
}

QK_FP16_STEP Wide8 bf16_to_f32_8(const uint16_t* p) {
  const uint16x8_t b = vld1q_u16(p);
  return {vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(b), 16)), vreinterpretq_f32_u32(vshll_high_n_u16(b, 16))};
}

// ---- FP32 -> BF16 ---------------------------------------------------------

// 4 bf16 values rounded to nearest even; NaN lanes: top bits with the quiet bit set.
QK_FP16_STEP uint16x4_t bf16_4(float32x4_t x) {
  const uint32x4_t xi = vreinterpretq_u32_f32(x);
  const uint32x4_t lsb = vandq_u32(vshrq_n_u32(xi, 16), vdupq_n_u32(1));
  const uint16x4_t rounded = vshrn_n_u32(vaddq_u32(xi, vaddq_u32(lsb, vdupq_n_u32(0x7fff))), 16);
  const uint16x4_t quiet = vorr_u16(vshrn_n_u32(xi, 16), vdup_n_u16(0x40));
  return vbsl_u16(vmovn_u32(vceqq_f32(x, x)), rounded, quiet);
}

QK_FP16_STEP uint16x8_t f32_to_bf16_8(const float* p) {
  return vcombine_u16(bf16_4(vld1q_f32(p)), bf16_4(vld1q_f32(p + 4)));
}

// ---- loops ----------------------------------------------------------------

template <typename Step8>
void narrow(const float* x, uint16_t* h, size_t n, Step8 step) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) vst1q_u16(h + i, step(x + i));
  if (i == n) return;
  float in[8] = {};
  uint16_t out[8];
  std::memcpy(in, x + i, (n - i) * sizeof(float));
  vst1q_u16(out, step(in));
  std::memcpy(h + i, out, (n - i) * sizeof(uint16_t));
}

template <typename Step8>
void widen(const uint16_t* h, float* x, size_t n, Step8 step) {
  auto store = [](float* p, const Wide8& r) {
    vst1q_f32(p, r.lo);
    vst1q_f32(p + 4, r.hi);
  };
  size_t i = 0;
  for (; i + 8 <= n; i += 8) store(x + i, step(h + i));
  if (i == n) return;
  uint16_t in[8] = {};
  float out[8];
  std::memcpy(in, h + i, (n - i) * sizeof(uint16_t));
  store(out, step(in));
  std::memcpy(x + i, out, (n - i) * sizeof(float));
}

void f32_to_f16(const float* x, uint16_t* h, size_t n, bool stream) {
  if (!default_fp_environment()) return scalar::kernels.f32_to_f16(x, h, n, stream);
  narrow(x, h, n, [](const float* p) { return f32_to_f16_8(p); });
}

void f16_to_f32(const uint16_t* h, float* x, size_t n, bool stream) {
  if (!default_fp_environment()) return scalar::kernels.f16_to_f32(h, x, n, stream);
  widen(h, x, n, [](const uint16_t* p) { return f16_to_f32_8(p); });
}

void f32_to_bf16(const float* x, uint16_t* b, size_t n, bool) {
  narrow(x, b, n, [](const float* p) { return f32_to_bf16_8(p); });
}

void bf16_to_f32(const uint16_t* b, float* x, size_t n, bool) {
  widen(b, x, n, [](const uint16_t* p) { return bf16_to_f32_8(p); });
}

}  // namespace

const Fp16Kernels kernels = {f32_to_f16, f16_to_f32, f32_to_bf16, bf16_to_f32};

}  // namespace qk::fp16::neon
