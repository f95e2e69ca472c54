// The C++ kernel layer on its own, without Python: every ISA path this CPU
// runs checked against plain references (the int32 product, the epilogue
// expression) and against the scalar path, bit for bit, over grids that cross
// every tile, panel, step and block edge. Built natively, or cross-compiled
// and run under qemu-user for the architectures the machine lacks
// (.ci/arm64). Prints one line per failing case and pytest's style of
// summary; exits 1 if anything failed.
#include <algorithm>
#include <array>
#include <chrono>
#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "conv/conv.h"
#include "cpu/isa.h"
#include "float_ops/float_ops.h"
#include "fp16/fp16.h"
#include "gemm/gemm.h"
#include "parallel/parallel.h"
#include "quant/quant.h"

namespace {

using qk::Isa;

int passed = 0, failed = 0;

void check(bool ok, const std::string& what) {
  if (ok) {
    ++passed;
  } else {
    ++failed;
    std::printf("FAILED %s\n", what.c_str());
  }
}

template <typename T>
bool same_bits(const std::vector<T>& x, const std::vector<T>& y) {
  return x.size() == y.size() && (x.empty() || std::memcmp(x.data(), y.data(), x.size() * sizeof(T)) == 0);
}

float from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

// Runs fn under the scalar path and under `isa`; the results must agree bit for bit.
template <typename F>
auto against_scalar(Isa isa, F fn) {
  qk::set_isa_cap(Isa::scalar);
  auto want = fn();
  qk::set_isa_cap(isa);
  auto got = fn();
  return std::make_pair(want, got);
}

// Floats that stress rounding and clamping: NaN, +-inf, +-0, subnormals,
// exact halves of the grid, huge values, then random ones.
std::vector<float> edge_floats(size_t n, std::mt19937& rng) {
  const float specials[] = {NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e-45f, -1e-45f, 1.17e-38f,
                            0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 127.5f, -128.5f, 254.5f, 255.5f,
                            3e38f, -3e38f, 65504.0f, 65520.0f, 65519.99f, 6e-8f, 3e-8f, 1e8f};
  std::normal_distribution<float> normal(0.0f, 60.0f);
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i)
    x[i] = i < sizeof specials / sizeof specials[0] ? specials[i] : normal(rng);
  std::shuffle(x.begin(), x.end(), rng);
  return x;
}

void check_quant(Isa isa, std::mt19937& rng) {
  const std::string path = qk::isa_name(isa);
  const size_t shapes[][3] = {{1, 1, 1}, {1, 1, 7}, {1, 1, 8}, {1, 1, 9}, {1, 1, 31}, {3, 5, 1}, {2, 3, 17},
                              {1, 4, 64}, {2, 2, 130}, {1, 1, 100003}, {7, 130, 3}};
  for (const auto& s : shapes) {
    const qk::quant::Layout layout{s[0], s[1], s[2]};
    const size_t n = layout.size();
    const std::vector<float> x = edge_floats(n, rng);
    std::vector<float> scale(layout.channels), zp(layout.channels);
    for (size_t c = 0; c < layout.channels; ++c) {
      scale[c] = c % 3 == 0 ? 1.0f : 0.37f * float(c + 1);
      zp[c] = float(int(c * 7) % 20);
    }
    const std::string shape = std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" + std::to_string(s[2]);
    for (bool u8 : {false, true}) {
      const float qmin = u8 ? 0.0f : -128.0f, qmax = u8 ? 255.0f : 127.0f;
      auto q = against_scalar(isa, [&] {
        std::vector<uint8_t> out(n);
        qk::quant::quantize(x.data(), out.data(), u8, layout, scale.data(), zp.data(), qmin, qmax);
        return out;
      });
      check(same_bits(q.first, q.second), "quantize " + path + " " + shape + (u8 ? " uint8" : " int8"));
      auto d = against_scalar(isa, [&] {
        std::vector<float> out(n);
        qk::quant::dequantize(q.first.data(), u8, out.data(), layout, scale.data(), zp.data());
        return out;
      });
      check(same_bits(d.first, d.second), "dequantize " + path + " " + shape + (u8 ? " uint8" : " int8"));
      auto f = against_scalar(isa, [&] {
        std::vector<float> out(n);
        qk::quant::fake_quantize(x.data(), out.data(), layout, scale.data(), zp.data(), qmin, qmax);
        return out;
      });
      check(same_bits(f.first, f.second), "fake_quantize " + path + " " + shape + (u8 ? " uint8" : " int8"));
    }
  }
}

void check_fp16(Isa isa, std::mt19937& rng) {
  const std::string path = qk::isa_name(isa);
  // Every half and bfloat16 pattern, widened.
  std::vector<uint16_t> halves(65536);
  for (size_t i = 0; i < halves.size(); ++i) halves[i] = static_cast<uint16_t>(i);
  auto wide = against_scalar(isa, [&] {
    std::vector<float> out(halves.size());
    qk::fp16::fp16_to_fp32(halves.data(), out.data(), halves.size());
    return out;
  });
  check(same_bits(wide.first, wide.second), "fp16_to_fp32 " + path + " all 65536 halves");
  auto bwide = against_scalar(isa, [&] {
    std::vector<float> out(halves.size());
    qk::fp16::bf16_to_fp32(halves.data(), out.data(), halves.size());
    return out;
  });
  check(same_bits(bwide.first, bwide.second), "bf16_to_fp32 " + path + " all 65536 patterns");
  // Floats: random bit patterns (every class, NaN payloads included), the
  // rounding boundaries around every half, and lengths around the block size.
  std::vector<float> x;
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 200000; ++i) x.push_back(from_bits(bits(rng)));
  for (uint32_t h = 0; h < 0x7c00; h += 7) {
    float f = wide.first[h];
    uint32_t b;
    std::memcpy(&b, &f, sizeof b);
    for (uint32_t d : {0x0fffu, 0x1000u, 0x1001u}) x.push_back(from_bits(b + d));
  }
  for (size_t n : {size_t(0), size_t(1), size_t(7), size_t(8), size_t(9), size_t(15), size_t(16), size_t(17), x.size()}) {
    const std::vector<float> part(x.begin(), x.begin() + n);
    auto h = against_scalar(isa, [&] {
      std::vector<uint16_t> out(n);
      qk::fp16::fp32_to_fp16(part.data(), out.data(), n);
      return out;
    });
    check(same_bits(h.first, h.second), "fp32_to_fp16 " + path + " n=" + std::to_string(n));
    auto b = against_scalar(isa, [&] {
      std::vector<uint16_t> out(n);
      qk::fp16::fp32_to_bf16(part.data(), out.data(), n);
      return out;
    });
    check(same_bits(b.first, b.second), "fp32_to_bf16 " + path + " n=" + std::to_string(n));
  }
  // The FP16 bits do not depend on the thread's rounding mode (the scalar
  // rules are integer-only; a path whose instructions follow the mode must
  // not let it through).
  std::fesetround(FE_TOWARDZERO);
  auto h = against_scalar(isa, [&] {
    std::vector<uint16_t> out(x.size());
    qk::fp16::fp32_to_fp16(x.data(), out.data(), x.size());
    return out;
  });
  std::fesetround(FE_TONEAREST);
  check(same_bits(h.first, h.second), "fp32_to_fp16 " + path + " rounding toward zero");
}

// C = A * B in int32 with wrap-around, then the epilogues by their formulas.
struct GemmCase {
  size_t m, k, n;
  bool a_signed;
  std::vector<uint8_t> a;
  std::vector<int8_t> b;
  std::vector<int32_t> reference() const {
    std::vector<int32_t> c(m * n);
    for (size_t i = 0; i < m; ++i)
      for (size_t j = 0; j < n; ++j) {
        uint32_t acc = 0;
        for (size_t kk = 0; kk < k; ++kk) {
          const int32_t av = a_signed ? int32_t(int8_t(a[i * k + kk])) : int32_t(a[i * k + kk]);
          acc += static_cast<uint32_t>(av * int32_t(b[kk * n + j]));
        }
        c[i * n + j] = static_cast<int32_t>(acc);
      }
    return c;
  }
};

GemmCase make_case(size_t m, size_t k, size_t n, bool a_signed, bool extremes, std::mt19937& rng) {
  GemmCase g{m, k, n, a_signed, std::vector<uint8_t>(m * k), std::vector<int8_t>(k * n)};
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& v : g.a) v = extremes ? (a_signed ? 0x80 : 0xff) : static_cast<uint8_t>(byte(rng));
  for (auto& v : g.b) v = extremes ? int8_t(-128) : static_cast<int8_t>(byte(rng) - 128);
  return g;
}

void check_gemm(Isa isa, std::mt19937& rng, const char* label = nullptr) {
  const std::string path = label ? label : qk::isa_name(isa);
  const size_t ms[] = {1, 2, 3, 4, 5, 6, 7, 9, 13, 33};
  const size_t ks[] = {0, 1, 2, 3, 4, 5, 7, 8, 17, 64, 129};
  const size_t ns[] = {1, 15, 16, 17, 33, 64};
  std::vector<std::array<size_t, 3>> shapes;
  for (size_t m : ms)
    for (size_t k : ks)
      for (size_t n : ns) shapes.push_back({m, k, n});
  // Past the cache blocks: several A blocks, B runs and column groups.
  shapes.push_back({300, 1500, 70});
  shapes.push_back({97, 4099, 33});
  shapes.push_back({1, 4096, 300});
  for (const auto& s : shapes)
    for (bool a_signed : {false, true})
      for (bool extremes : {false, true}) {
        if (extremes && s[0] > 13) continue;
        const GemmCase g = make_case(s[0], s[1], s[2], a_signed, extremes, rng);
        const std::string name = path + " " + std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" +
                                 std::to_string(s[2]) + (a_signed ? " s8" : " u8") + (extremes ? " extremes" : "");
        qk::set_isa_cap(isa);
        const qk::gemm::PackedWeight w(g.b.data(), g.k, g.n, qk::gemm::selected_layout());
        std::vector<int32_t> c(g.m * g.n);
        qk::gemm::matmul(g.a.data(), g.a_signed, g.m, g.k, w, qk::gemm::Epilogue{}, c.data());
        const std::vector<int32_t> want = g.reference();
        check(c == want, "int8 matmul " + name);

        // A with its rows further apart than K (past K padded for AMX tiles)
        // and junk between them, read in place by the row-reading kernels:
        // the same sums.
        const size_t lda = (g.k + 63) / 64 * 64 + 7;
        std::vector<uint8_t> strided(g.m * lda, 0xa5);
        for (size_t i = 0; i < g.m; ++i) std::copy_n(g.a.data() + i * g.k, g.k, strided.data() + i * lda);
        std::fill(c.begin(), c.end(), 0);
        qk::gemm::matmul(strided.data(), g.a_signed, g.m, g.k, w, qk::gemm::Epilogue{}, c.data(), 0, lda);
        check(c == want, "int8 matmul, rows " + std::to_string(lda) + " bytes apart, " + name);

        // Float and requantizing epilogues against the formula on the exact sums.
        std::vector<float> scale(g.n), bias(g.n);
        for (size_t j = 0; j < g.n; ++j) {
          scale[j] = 1e-3f * float(j % 7 + 1);
          bias[j] = 0.25f * float(int(j % 5) - 2);
        }
        const int32_t zp = g.a_signed ? 0 : 3;
        qk::gemm::Epilogue ef;
        ef.kind = qk::gemm::Epilogue::kFloat;
        ef.a_zero_point = zp;
        ef.scale = scale.data();
        ef.bias = bias.data();
        ef.relu = g.m % 2 == 1;
        std::vector<float> y(g.m * g.n), y_want(g.m * g.n);
        qk::gemm::matmul(g.a.data(), g.a_signed, g.m, g.k, w, ef, y.data());
        for (size_t i = 0; i < g.m; ++i)
          for (size_t j = 0; j < g.n; ++j) {
            uint32_t colsum = 0;
            for (size_t kk = 0; kk < g.k; ++kk) colsum += static_cast<uint32_t>(int32_t(g.b[kk * g.n + j]));
            const int32_t acc = static_cast<int32_t>(static_cast<uint32_t>(want[i * g.n + j]) - uint32_t(zp) * colsum);
            float v = static_cast<float>(acc) * scale[j] + bias[j];
            if (ef.relu) v = v > 0.0f ? v : 0.0f;
            y_want[i * g.n + j] = v;
          }
        check(same_bits(y, y_want), "float epilogue " + name);

        qk::gemm::Epilogue eq = ef;
        eq.kind = qk::gemm::Epilogue::kRequant;
        eq.out_scale = 0.05f;
        eq.out_zero_point = 7;
        eq.qmin = 0;
        eq.qmax = 255;
        std::vector<uint8_t> q(g.m * g.n), q_want(g.m * g.n);
        qk::gemm::matmul(g.a.data(), g.a_signed, g.m, g.k, w, eq, q.data());
        for (size_t i = 0; i < y_want.size(); ++i) {
          float v = std::nearbyint(y_want[i] / eq.out_scale) + eq.out_zero_point;
          v = v < eq.qmin ? eq.qmin : (v > eq.qmax ? eq.qmax : v);
          q_want[i] = static_cast<uint8_t>(static_cast<int>(v));
        }
        check(same_bits(q, q_want), "requantize epilogue " + name);
      }
}


// Convolutions (NHWC) against the direct sum of (x - zp) * w over the taps,
// padding skipped: the GEMM path (groups 1 and 2) and the depthwise kernel.
void check_conv(Isa isa, std::mt19937& rng, const char* label = nullptr) {
  const std::string path = label ? label : qk::isa_name(isa);
  struct Case {
    size_t batch, h, w, c, groups, out, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
  };
  const Case cases[] = {{1, 5, 7, 3, 1, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},   {2, 9, 6, 8, 2, 6, 3, 3, 2, 2, 1, 1, 0, 1, 2, 3},
                        {1, 4, 4, 64, 1, 33, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}, {1, 11, 13, 17, 17, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
                        {2, 12, 9, 64, 64, 64, 5, 5, 2, 1, 2, 1, 3, 0, 1, 2}, {1, 3, 10, 40, 40, 40, 1, 3, 1, 2, 1, 2, 0, 2, 0, 2},
                        {3, 16, 16, 1, 1, 8, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3}};
  std::uniform_int_distribution<int> byte(0, 255);
  for (const Case& k : cases) {
    const qk::conv::Shape s{k.batch, k.h, k.w, k.c, k.kh, k.kw, k.sh, k.sw, k.dh, k.dw, k.pt, k.pl, k.pb, k.pr,
                            k.groups, k.out};
    const size_t cg = k.c / k.groups, og = k.out / k.groups, oh = s.out_h(), ow = s.out_w();
    std::vector<uint8_t> x(k.batch * k.h * k.w * k.c);
    std::vector<int8_t> w(k.out * cg * k.kh * k.kw);  // (O, cg, kh, kw)
    for (auto& v : x) v = static_cast<uint8_t>(byte(rng));
    for (auto& v : w) v = static_cast<int8_t>(byte(rng) - 128);
    const int32_t zp = 11;
    std::vector<int32_t> want(k.batch * oh * ow * k.out);
    for (size_t b = 0; b < k.batch; ++b)
      for (size_t oy = 0; oy < oh; ++oy)
        for (size_t ox = 0; ox < ow; ++ox)
          for (size_t o = 0; o < k.out; ++o) {
            uint32_t acc = 0;
            const size_t g = o / og;
            for (size_t i = 0; i < k.kh; ++i)
              for (size_t j = 0; j < k.kw; ++j)
                for (size_t ci = 0; ci < cg; ++ci) {
                  const long y = long(oy * k.sh + i * k.dh) - long(k.pt), xx = long(ox * k.sw + j * k.dw) - long(k.pl);
                  if (y < 0 || xx < 0 || y >= long(k.h) || xx >= long(k.w)) continue;
                  const int32_t xv = x[((b * k.h + size_t(y)) * k.w + size_t(xx)) * k.c + g * cg + ci];
                  acc += static_cast<uint32_t>((xv - zp) * w[((o * cg + ci) * k.kh + i) * k.kw + j]);
                }
            want[((b * oh + oy) * ow + ox) * k.out + o] = static_cast<int32_t>(acc);
          }
    qk::set_isa_cap(isa);
    qk::gemm::Epilogue ep;
    ep.a_zero_point = zp;
    std::vector<int32_t> got(want.size());
    const std::string name = path + " conv " + std::to_string(k.c) + "ch groups " + std::to_string(k.groups) + " " +
                             std::to_string(k.kh) + "x" + std::to_string(k.kw);
    if (k.groups == k.c && k.out == k.c) {
      std::vector<int16_t> taps(k.kh * k.kw * k.c);  // (kh * kw, C)
      for (size_t c = 0; c < k.c; ++c)
        for (size_t t = 0; t < k.kh * k.kw; ++t) taps[t * k.c + c] = w[c * k.kh * k.kw + t];
      qk::conv::depthwise_conv2d(x.data(), s, taps.data(), ep, got.data());
      check(got == want, "depthwise " + name);
    }
    std::vector<std::unique_ptr<qk::gemm::PackedWeight>> packed;
    for (size_t g = 0; g < k.groups; ++g) {
      std::vector<int8_t> b(k.kh * k.kw * cg * og);  // rows (kh, kw, c), columns o
      for (size_t o = 0; o < og; ++o)
        for (size_t i = 0; i < k.kh; ++i)
          for (size_t j = 0; j < k.kw; ++j)
            for (size_t ci = 0; ci < cg; ++ci)
              b[((i * k.kw + j) * cg + ci) * og + o] = w[(((g * og + o) * cg + ci) * k.kh + i) * k.kw + j];
      packed.push_back(std::make_unique<qk::gemm::PackedWeight>(b.data(), k.kh * k.kw * cg, og,
                                                                qk::gemm::selected_layout()));
    }
    std::vector<const qk::gemm::PackedWeight*> ptrs;
    for (const auto& p : packed) ptrs.push_back(p.get());
    std::fill(got.begin(), got.end(), 0);
    qk::conv::conv2d(x.data(), s, ptrs.data(), ep, got.data());
    check(got == want, "gemm " + name);
  }
}

}  // namespace

// GELU, softmax and LayerNorm: bit for bit the scalar path, and near a double
// reference (NaN where the reference is NaN).
void check_float_ops(Isa isa, std::mt19937& rng) {
  const std::string path = qk::isa_name(isa);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  auto near = [](const std::vector<float>& got, const std::vector<double>& want, double rtol, double atol) {
    for (size_t i = 0; i < got.size(); ++i) {
      if (std::isnan(want[i]) != std::isnan(got[i])) return false;
      if (!std::isnan(want[i]) && std::fabs(got[i] - want[i]) > atol + rtol * std::fabs(want[i])) return false;
    }
    return true;
  };
  for (size_t cols : {1, 3, 15, 16, 17, 33, 128, 384, 1000}) {
    const size_t rows = 37, n = rows * cols;
    std::vector<float> x(n), gamma(cols), beta(cols);
    for (float& v : x) v = normal(rng);
    for (size_t c = 0; c < cols; ++c) gamma[c] = normal(rng), beta[c] = normal(rng);
    for (size_t c = 0; c < cols; ++c) x[c] = -INFINITY;  // row 0 fully masked: NaN
    x[cols] = NAN;
    const std::string shape = " " + std::to_string(rows) + "x" + std::to_string(cols);
    auto g = against_scalar(isa, [&] {
      std::vector<float> y(n);
      qk::float_ops::gelu(x.data(), y.data(), n);
      return y;
    });
    std::vector<double> want(n);
    for (size_t i = 0; i < n; ++i) want[i] = x[i] * 0.5 * std::erfc(-double(x[i]) / std::sqrt(2.0));
    check(same_bits(g.first, g.second) && near(g.second, want, 2e-5, 1e-30), "gelu " + path + shape);
    auto sm = against_scalar(isa, [&] {
      std::vector<float> y(n);
      qk::float_ops::softmax(x.data(), nullptr, nullptr, false, y.data(), rows, cols);
      return y;
    });
    for (size_t r = 0; r < rows; ++r) {
      double m = -INFINITY, sum = 0;
      bool nan = false;
      for (size_t c = 0; c < cols; ++c) nan |= std::isnan(x[r * cols + c]), m = std::max(m, double(x[r * cols + c]));
      for (size_t c = 0; c < cols; ++c) sum += std::exp(double(x[r * cols + c]) - m);
      for (size_t c = 0; c < cols; ++c)
        want[r * cols + c] = nan || std::isinf(m) ? NAN : std::exp(double(x[r * cols + c]) - m) / sum;
    }
    check(same_bits(sm.first, sm.second) && near(sm.second, want, 3e-6, 1e-7), "softmax " + path + shape);
    // The masked form: a mask row per row (two rows, alternating) added first, NaN -> 0; equal to
    // the plain softmax of x + mask with NaN replaced.
    std::vector<float> mask(2 * cols);
    for (size_t c = 0; c < 2 * cols; ++c) mask[c] = c % 3 == 0 ? -INFINITY : normal(rng);
    std::vector<int64_t> mask_rows(rows);
    for (size_t r = 0; r < rows; ++r) mask_rows[r] = int64_t(r % 2 * cols);
    auto msm = against_scalar(isa, [&] {
      std::vector<float> y(n);
      qk::float_ops::softmax(x.data(), mask.data(), mask_rows.data(), true, y.data(), rows, cols);
      return y;
    });
    std::vector<float> z(n), plain(n);
    for (size_t i = 0; i < n; ++i) z[i] = x[i] + mask[i / cols % 2 * cols + i % cols];
    qk::float_ops::softmax(z.data(), nullptr, nullptr, false, plain.data(), rows, cols);
    for (float& v : plain) v = std::isnan(v) ? 0.0f : v;
    check(same_bits(msm.first, msm.second) && same_bits(msm.second, plain), "masked softmax " + path + shape);
    std::vector<float> finite(x);
    for (size_t c = 0; c <= cols; ++c) finite[c] = 1.0f;
    auto ln = against_scalar(isa, [&] {
      std::vector<float> y(n + 2 * rows);
      qk::float_ops::layer_norm(finite.data(), gamma.data(), beta.data(), 1e-5f, rows, cols, y.data(),
                                y.data() + n, y.data() + n + rows);
      return y;
    });
    for (size_t r = 0; r < rows; ++r) {
      double mean = 0, var = 0;
      for (size_t c = 0; c < cols; ++c) mean += finite[r * cols + c];
      mean /= double(cols);
      for (size_t c = 0; c < cols; ++c) var += (finite[r * cols + c] - mean) * (finite[r * cols + c] - mean);
      const double inv = 1 / std::sqrt(var / double(cols) + 1e-5);
      for (size_t c = 0; c < cols; ++c) want[r * cols + c] = (finite[r * cols + c] - mean) * inv * gamma[c] + beta[c];
    }
    const std::vector<float> y(ln.second.begin(), ln.second.begin() + n);
    check(same_bits(ln.first, ln.second) && near(y, want, 1e-5, 1e-4), "layer_norm " + path + shape);
  }
}

int main() {
  const auto start = std::chrono::steady_clock::now();
  std::printf("kernel check: paths");
  std::vector<Isa> paths;
  for (int i = 0; i < qk::kNumIsas; ++i)
    if (qk::isa_supported(static_cast<Isa>(i))) {
      paths.push_back(static_cast<Isa>(i));
      std::printf(" %s", qk::isa_name(static_cast<Isa>(i)));
    }
  std::printf(" (cpu features:");
  const qk::CpuFeatures& f = qk::cpu_features();
  for (int i = 0; i < f.count; ++i)
    if (f.items[i].present) std::printf(" %s", f.items[i].name);
  std::printf(")\n");
  std::mt19937 rng(20261201);
  for (int threads : {1, 2}) {
    qk::set_num_threads(threads);
    for (Isa isa : paths) {
      check_quant(isa, rng);
      check_fp16(isa, rng);
      check_gemm(isa, rng);
      check_conv(isa, rng);
      check_float_ops(isa, rng);
      // Each family runs the best path it has at or below the cap.
      qk::set_isa_cap(isa);
      std::printf("  %d thread(s), cap %-12s quant %-12s fp16 %-12s gemm %-12s depthwise %-12s float ops %s\n",
                  threads, qk::isa_name(isa), qk::isa_name(qk::quant::selected_isa()),
                  qk::isa_name(qk::fp16::selected_isa()), qk::isa_name(qk::gemm::selected_isa()),
                  qk::isa_name(qk::conv::depthwise_isa()), qk::isa_name(qk::float_ops::selected_isa()));
    }
    // The amx kernel on its emulated tiles (any CPU, any architecture).
    qk::gemm::set_amx_emulation(true);
    check_gemm(paths.back(), rng, "amx (emulated)");
    check_conv(paths.back(), rng, "amx (emulated)");
    qk::gemm::set_amx_emulation(false);
    std::printf("  %d thread(s), gemm amx (emulated)\n", threads);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%d passed, %d failed in %.2fs\n", passed, failed, seconds);
  return failed == 0 ? 0 : 1;
}
