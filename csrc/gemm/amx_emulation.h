// A scalar emulation of the AMX intrinsics amx_kernel.inc uses, for the
// test-only emulated path: eight tile registers of 16 rows x 64 bytes per
// thread, the configuration's rows and colsb honoured, tdpbusd / tdpbssd
// with their operand signedness and int32 wrap-around. Every use checks that a
// configuration was loaded and that the operands' shapes agree, so a kernel
// that forgets the configuration or mixes shapes fails the tests.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace qk::gemm::amx_emulation {

struct State {
  uint8_t data[8][16][64];
  uint16_t colsb[8];
  uint8_t rows[8];
  bool configured;
};

inline State& state() {
  static thread_local State s{};
  return s;
}

inline void check(bool ok, const char* what) {
  if (!ok) throw std::logic_error(what);
}

inline void loadconfig(const void* cfg) {
  const uint8_t* p = static_cast<const uint8_t*>(cfg);
  check(p[0] == 1, "amx emulation: palette must be 1");
  State& s = state();
  for (int t = 0; t < 8; ++t) {
    std::memcpy(&s.colsb[t], p + 16 + 2 * t, 2);
    s.rows[t] = p[48 + t];
    check(s.rows[t] <= 16 && s.colsb[t] <= 64, "amx emulation: tile larger than 16 x 64 bytes");
  }
  s.configured = true;
}

inline void release() { state().configured = false; }

inline State& configured() {
  State& s = state();
  check(s.configured, "amx emulation: tile used without a loaded configuration");
  return s;
}

inline void loadd(int t, const void* base, size_t stride) {
  State& s = configured();
  for (int r = 0; r < s.rows[t]; ++r)
    std::memcpy(s.data[t][r], static_cast<const uint8_t*>(base) + r * stride, s.colsb[t]);
}

inline void stored(int t, void* base, size_t stride) {
  State& s = configured();
  for (int r = 0; r < s.rows[t]; ++r) std::memcpy(static_cast<uint8_t*>(base) + r * stride, s.data[t][r], s.colsb[t]);
}

inline void zero(int t) {
  State& s = configured();
  std::memset(s.data[t], 0, sizeof s.data[t]);
}

// C[m][n] += sum over quads q, lanes i of A[m][4q + i] * B[q][4n + i].
template <bool kASigned>
inline void dot(int c, int a, int b) {
  State& s = configured();
  check(s.rows[c] == s.rows[a] && s.colsb[c] == s.colsb[b] && s.colsb[a] / 4 == s.rows[b],
        "amx emulation: tile shapes do not fit the product");
  for (int m = 0; m < s.rows[c]; ++m)
    for (int n = 0; n < s.colsb[c] / 4; ++n) {
      uint32_t acc;
      std::memcpy(&acc, &s.data[c][m][4 * n], 4);
      for (int q = 0; q < s.colsb[a] / 4; ++q)
        for (int i = 0; i < 4; ++i) {
          const uint8_t av = s.data[a][m][4 * q + i];
          const int32_t x = kASigned ? int32_t(int8_t(av)) : int32_t(av);
          acc += uint32_t(x * int32_t(int8_t(s.data[b][q][4 * n + i])));  // wraps like the hardware
        }
      std::memcpy(&s.data[c][m][4 * n], &acc, 4);
    }
}

}  // namespace qk::gemm::amx_emulation

#define _tile_loadconfig(cfg) ::qk::gemm::amx_emulation::loadconfig(cfg)
#define _tile_release() ::qk::gemm::amx_emulation::release()
#define _tile_loadd(t, base, stride) ::qk::gemm::amx_emulation::loadd(t, base, stride)
#define _tile_stream_loadd(t, base, stride) ::qk::gemm::amx_emulation::loadd(t, base, stride)
#define _tile_stored(t, base, stride) ::qk::gemm::amx_emulation::stored(t, base, stride)
#define _tile_zero(t) ::qk::gemm::amx_emulation::zero(t)
#define _tile_dpbusd(c, a, b) ::qk::gemm::amx_emulation::dot<false>(c, a, b)
#define _tile_dpbssd(c, a, b) ::qk::gemm::amx_emulation::dot<true>(c, a, b)
