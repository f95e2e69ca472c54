// Checks the AVX-512 fp16 kernels against the scalar ones under SIMDe emulation:
// every float32 bit pattern (narrowing, alternating streaming stores), every
// 16-bit pattern (widening), and lengths 0..300 at 40 output offsets with
// guard bytes around the output. Built and run by test_fp16_avx512_simde.py.
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <vector>
#include <random>
#include "fp16/fp16_kernels.h"
using namespace qk::fp16;
int fails = 0;
#define CHECK(c, ...) do { if (!(c)) { if (fails++ < 20) printf(__VA_ARGS__); } } while (0)
int main() {
  const Fp16Kernels& S = scalar::kernels; const Fp16Kernels& A = avx512::kernels;
  // exhaustive narrowing
  const size_t C = size_t(1) << 24;
  std::vector<uint32_t> u(C); std::vector<uint16_t> a(C), s(C);
  for (uint64_t base = 0; base < (uint64_t(1) << 32); base += C) {
    for (size_t i = 0; i < C; ++i) u[i] = uint32_t(base + i);
    const bool stream = (base >> 24) % 2;
    const float* x = reinterpret_cast<const float*>(u.data());
    S.f32_to_f16(x, s.data(), C, false); A.f32_to_f16(x, a.data(), C, stream);
    for (size_t i = 0; i < C; ++i) CHECK(a[i] == s[i], "f16 %08x: avx512 %04x scalar %04x\n", u[i], a[i], s[i]);
    S.f32_to_bf16(x, s.data(), C, false); A.f32_to_bf16(x, a.data(), C, stream);
    for (size_t i = 0; i < C; ++i) CHECK(a[i] == s[i], "bf16 %08x: avx512 %04x scalar %04x\n", u[i], a[i], s[i]);
  }
  printf("exhaustive narrowing done, fails=%d\n", fails);
  // all 16-bit patterns widening
  std::vector<uint16_t> h(65536); for (int i = 0; i < 65536; ++i) h[i] = i;
  std::vector<float> fa(65536), fs(65536);
  for (int st = 0; st < 2; ++st) {
    S.f16_to_f32(h.data(), fs.data(), 65536, false); A.f16_to_f32(h.data(), fa.data(), 65536, st);
    CHECK(!memcmp(fa.data(), fs.data(), 65536 * 4), "f16->f32 mismatch\n");
    S.bf16_to_f32(h.data(), fs.data(), 65536, false); A.bf16_to_f32(h.data(), fa.data(), 65536, st);
    CHECK(!memcmp(fa.data(), fs.data(), 65536 * 4), "bf16->f32 mismatch\n");
  }
  // heads, tails, alignment, guards
  std::mt19937 rng(1);
  std::vector<uint32_t> src(512); for (auto& v : src) v = rng();
  for (int k = 0; k < 512; k += 7) src[k] = 0x7f800001u + k;  // NaNs
  std::vector<uint16_t> h16(512); for (auto& v : h16) v = rng();
  for (int k = 0; k < 512; k += 5) h16[k] = 0x7c01 + k % 0x3fe;
  for (size_t n = 0; n <= 300; ++n)
    for (size_t off = 0; off < 40; ++off)
      for (int st = 0; st < 2; ++st) {
        alignas(64) uint16_t o16[400], r16[400]; alignas(64) float o32[400], r32[400];
        const float* x = reinterpret_cast<const float*>(src.data()) + (off * 3) % 50;
        memset(o16, 0xab, sizeof o16); memset(r16, 0xab, sizeof r16);
        A.f32_to_f16(x, o16 + off, n, st); S.f32_to_f16(x, r16 + off, n, false);
        CHECK(!memcmp(o16, r16, sizeof o16), "f16 n=%zu off=%zu st=%d\n", n, off, st);
        memset(o16, 0xab, sizeof o16); memset(r16, 0xab, sizeof r16);
        A.f32_to_bf16(x, o16 + off, n, st); S.f32_to_bf16(x, r16 + off, n, false);
        CHECK(!memcmp(o16, r16, sizeof o16), "bf16 n=%zu off=%zu st=%d\n", n, off, st);
        const uint16_t* hp = h16.data() + (off * 5) % 60;
        memset(o32, 0xab, sizeof o32); memset(r32, 0xab, sizeof r32);
        A.f16_to_f32(hp, o32 + off, n, st); S.f16_to_f32(hp, r32 + off, n, false);
        CHECK(!memcmp(o32, r32, sizeof o32), "f16->f32 n=%zu off=%zu st=%d\n", n, off, st);
        memset(o32, 0xab, sizeof o32); memset(r32, 0xab, sizeof r32);
        A.bf16_to_f32(hp, o32 + off, n, st); S.bf16_to_f32(hp, r32 + off, n, false);
        CHECK(!memcmp(o32, r32, sizeof o32), "bf16->f32 n=%zu off=%zu st=%d\n", n, off, st);
      }
  printf("done, fails=%d\n", fails);
  return fails != 0;
}
