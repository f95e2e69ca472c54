// Runs the AVX-512 quant kernels and the AVX-VNNI / AVX-512 VNNI GEMM tiles
// (built against SIMDe, see test_simde_kernels.py) against the scalar path.
// Prints the first mismatch and exits 1; exits 0 when everything agrees.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "gemm/gemm_kernels.h"
#include "quant/quant_kernels.h"

namespace {

std::mt19937 rng(12345);

float random_value(int i) {
  static const float specials[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 0.5f, 1.5f, 2.5f, -2.5f, 1e30f, -1e30f};
  if (i % 7 == 0) return specials[rng() % (sizeof specials / sizeof *specials)];
  return std::ldexp(static_cast<float>(static_cast<int>(rng() % 20001) - 10000) / 100.0f, static_cast<int>(rng() % 9) - 4);
}

bool same_bits(float a, float b) {
  uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y || (std::isnan(a) && std::isnan(b));
}

int check_quant() {
  using qk::quant::QuantKernels;
  const QuantKernels& ref = qk::quant::scalar::kernels;
  const QuantKernels& sim = qk::quant::avx512::kernels;
  const size_t kGuard = 64;
  for (size_t n = 0; n < 100; ++n) {
    for (int pe = 0; pe < 2; ++pe) {
      std::vector<float> x(n + kGuard), scale(n + kGuard), zp(n + kGuard);
      for (size_t i = 0; i < n; ++i) {
        x[i] = random_value(static_cast<int>(i));
        scale[i] = 0.05f + static_cast<float>(rng() % 100) / 37.0f;
        zp[i] = static_cast<float>(static_cast<int>(rng() % 11) - 5);
      }
      if (!pe) scale[0] = 0.1f, zp[0] = 3.0f;
      for (int u = 0; u < 2; ++u) {
        std::vector<uint8_t> a(n + kGuard, 0xAB), b(n + kGuard, 0xAB);
        const float qmin = u ? 0.0f : -128.0f, qmax = u ? 255.0f : 127.0f;
        std::vector<float> zpu(zp);
        if (u)
          for (auto& z : zpu) z += 100.0f;
        ref.quantize[u][pe](x.data(), a.data(), n, scale.data(), zpu.data(), qmin, qmax);
        sim.quantize[u][pe](x.data(), b.data(), n, scale.data(), zpu.data(), qmin, qmax);
        if (a != b) return std::printf("quantize mismatch: n=%zu unsigned=%d per_element=%d\n", n, u, pe), 1;
        std::vector<float> da(n + kGuard, 7.0f), db(n + kGuard, 7.0f);
        ref.dequantize[u][pe](a.data(), da.data(), n, scale.data(), zpu.data(), false);
        sim.dequantize[u][pe](a.data(), db.data(), n, scale.data(), zpu.data(), false);
        for (size_t i = 0; i < n + kGuard; ++i)
          if (!same_bits(da[i], db[i])) return std::printf("dequantize mismatch: n=%zu i=%zu\n", n, i), 1;
      }
      std::vector<float> fa(n + kGuard, 7.0f), fb(n + kGuard, 7.0f);
      ref.fake_quantize[pe](x.data(), fa.data(), n, scale.data(), zp.data(), -8.0f, 7.0f, false);
      sim.fake_quantize[pe](x.data(), fb.data(), n, scale.data(), zp.data(), -8.0f, 7.0f, false);
      for (size_t i = 0; i < n + kGuard; ++i)
        if (!same_bits(fa[i], fb[i])) return std::printf("fake_quantize mismatch: n=%zu i=%zu\n", n, i), 1;
    }
  }
  return 0;
}

// Every tile shape on the quads layout, computed directly: C[r][j] (+)= sum_k A[r][k] * B[k][j],
// with A in the kernels' format (rows lda bytes apart, or interleaved per
// step: row r of step q at (q * mr + r) * 4) and B panels b_stride apart.
int check_gemm(const qk::gemm::GemmKernels& kernels, const char* name) {
  using namespace qk::gemm;
  for (size_t k_steps = 0; k_steps < 40; ++k_steps) {
    const size_t kp = 4 * k_steps, b_stride = kp * kNR + 64;  // a gap between panels
    const size_t lda = kp + 3;                                  // rows apart, unaligned
    const bool rows = kernels.a->rows_contiguous;
    std::vector<uint8_t> a(kernels.mr * lda + 4);
    std::vector<int8_t> b(kernels.np * b_stride + 64);
    for (auto& v : a) v = static_cast<uint8_t>(rng() % 4 == 0 ? 255 : rng());
    for (auto& v : b) v = static_cast<int8_t>(rng() % 4 == 0 ? -128 : rng());
    for (int mr = 1; mr <= kernels.mr; ++mr)
      for (int np = 1; np <= kernels.np; ++np)
        for (int accumulate = 0; accumulate < 2; ++accumulate) {
          const size_t ldc = kernels.np * kNR + 3;
          std::vector<int32_t> c(kernels.mr * ldc), start(c.size());
          for (auto& v : start) v = static_cast<int32_t>(rng());
          c = start;
          kernels.tile(Tile{a.data(), lda, b.data(), b_stride, k_steps, c.data(), ldc, accumulate != 0}, mr, np);
          for (int r = 0; r < kernels.mr; ++r)
            for (size_t j = 0; j < ldc; ++j) {
              int64_t want = start[r * ldc + j];
              if (r < mr && j < size_t(np) * kNR) {
                if (!accumulate) want = 0;
                const int8_t* panel = b.data() + (j / kNR) * b_stride;
                for (size_t k = 0; k < kp; ++k) {
                  const size_t ai = rows ? r * lda + k : ((k / 4) * mr + r) * 4 + k % 4;
                  want += int64_t(a[ai]) * panel[(k / 4) * 4 * kNR + (j % kNR) * 4 + k % 4];
                }
              }
              if (c[r * ldc + j] != static_cast<int32_t>(want))
                return std::printf("%s tile mismatch: k_steps=%zu mr=%d np=%d acc=%d r=%d j=%zu\n", name, k_steps, mr, np,
                                   accumulate, r, j),
                       1;
            }
        }
  }
  return 0;
}

}  // namespace

int main() {
  if (check_quant()) return 1;
  if (check_gemm(qk::gemm::avx_vnni::kernels, "avx_vnni")) return 1;
  if (check_gemm(qk::gemm::avx512_vnni::kernels, "avx512_vnni")) return 1;
  std::puts("ok");
  return 0;
}
