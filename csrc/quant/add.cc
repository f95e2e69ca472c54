#include "quant/add.h"

#include "parallel/parallel.h"

namespace qk::quant {
namespace {

// Round half to even for |v| <= 2^22 under the default rounding mode, in two
// adds the compiler vectorizes (std::nearbyint is a library call on x86-64's
// baseline SSE2; without -ffast-math the adds are not folded away). v is
// clamped to that range first: the output clamp that follows makes the
// result the same.
inline float round_even(float v) {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  constexpr float kLimit = 4194304.0f;   // 2^22
  v = v < -kLimit ? -kLimit : v;
  v = v > kLimit ? kLimit : v;
  return (v + kMagic) - kMagic;
}

// Locals and restrict pointers so the loop vectorizes (SSE2 at least).
void add_range(const uint8_t* __restrict a, const uint8_t* __restrict b, size_t n, const AddParams p,
               uint8_t* __restrict out) {
  const float sa = p.a_scale, sb = p.b_scale, so = p.out_scale;
  const float za = float(p.a_zero_point), zb = float(p.b_zero_point), zo = float(p.out_zero_point);
  const float lo = float(p.qmin), hi = float(p.qmax);
  for (size_t i = 0; i < n; ++i) {
    const float y = sa * (float(a[i]) - za) + sb * (float(b[i]) - zb);
    float q = round_even(y / so) + zo;
    q = q < lo ? lo : q;
    q = q > hi ? hi : q;
    out[i] = static_cast<uint8_t>(static_cast<int32_t>(q));
  }
}

}  // namespace

void add_quantized(const uint8_t* a, const uint8_t* b, size_t n, const AddParams& p, uint8_t* out) {
  parallel_for(n, size_t(1) << 16, 64,
               [&](size_t begin, size_t end) { add_range(a + begin, b + begin, end - begin, p, out + begin); });
}

}  // namespace qk::quant
