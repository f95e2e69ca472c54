/* Instruction-throughput probe for the report's GEMM ceiling: each function
 * runs `iters` iterations of the inner instruction of one qk GEMM path on
 * NACC independent accumulators (enough to hide latency), so its time gives
 * that path's int8 multiply-accumulate peak on this core. Built at benchmark
 * time with the system C compiler (bench/bench_ceilings.py); not part of qk.
 *
 *   scalar       pmaddwd xmm + paddd (SSE2, the x86-64 baseline the portable
 *                kernel is compiled for): 8 int16 MACs
 *   avx2         vpmaddwd ymm + vpaddd (qk's exact AVX2 scheme): 16 MACs
 *   avx_vnni     vpdpbusd ymm: 32 MACs
 *   avx512_vnni  vpdpbusd zmm: 64 MACs
 *   amx          tdpbusd on 16 x 64-byte tiles: 16 x 16 x 64 = 16,384 MACs, six
 *                accumulator tiles (the instruction's latency over its
 *                throughput is well under six on Sapphire Rapids)
 *   clock        a chain of dependent 1-cycle adds: cycles per second
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Twelve named accumulators (more than latency x throughput on current
 * cores) stay in registers; the empty asm makes each one opaque so the
 * compiler can neither fold nor drop the loop. */
#define EACH(X, p) X(p, 0) X(p, 1) X(p, 2) X(p, 3) X(p, 4) X(p, 5) X(p, 6) X(p, 7) X(p, 8) X(p, 9) X(p, 10) X(p, 11)
#define DECL(p, i) vec c##i = zero_##p();
#define STEP(p, i) c##i = step_##p(c##i, a); __asm__ volatile("" : "+x"(c##i));
#define FOLD(p, i) s += fold_##p(c##i);

#define PROBE(p, attr, vec_t)                      \
  attr int64_t p(int64_t iters, int32_t seed) {    \
    typedef vec_t vec;                             \
    const vec a = seed_##p(seed);                  \
    EACH(DECL, p)                                  \
    for (int64_t n = 0; n < iters; ++n) {          \
      EACH(STEP, p)                                \
    }                                              \
    int64_t s = 0;                                 \
    EACH(FOLD, p)                                  \
    return s;                                      \
  }

static inline __m128i seed_scalar(int32_t s) { return _mm_set1_epi32(s); }
/* The product reads the accumulator so it cannot be hoisted out of the loop. */
static inline __m128i step_scalar(__m128i c, __m128i a) { return _mm_add_epi32(c, _mm_madd_epi16(c, a)); }
static inline int64_t fold_scalar(__m128i v) { return _mm_cvtsi128_si32(v); }
static inline __m128i zero_scalar(void) { return _mm_setzero_si128(); }
PROBE(scalar, , __m128i)

__attribute__((target("avx2"))) static inline __m256i seed_avx2(int32_t s) { return _mm256_set1_epi32(s); }
__attribute__((target("avx2"))) static inline __m256i step_avx2(__m256i c, __m256i a) {
  return _mm256_add_epi32(c, _mm256_madd_epi16(c, a));
}
__attribute__((target("avx2"))) static inline int64_t fold_avx2(__m256i v) {
  return _mm_cvtsi128_si32(_mm256_castsi256_si128(v));
}
__attribute__((target("avx2"))) static inline __m256i zero_avx2(void) { return _mm256_setzero_si256(); }
PROBE(avx2, __attribute__((target("avx2"))), __m256i)

#define VNNI256 __attribute__((target("avx2,avxvnni")))
VNNI256 static inline __m256i seed_avx_vnni(int32_t s) { return _mm256_set1_epi32(s); }
VNNI256 static inline __m256i step_avx_vnni(__m256i c, __m256i a) { return _mm256_dpbusd_avx_epi32(c, a, a); }
VNNI256 static inline int64_t fold_avx_vnni(__m256i v) { return _mm_cvtsi128_si32(_mm256_castsi256_si128(v)); }
VNNI256 static inline __m256i zero_avx_vnni(void) { return _mm256_setzero_si256(); }
PROBE(avx_vnni, VNNI256, __m256i)

#define VNNI512 __attribute__((target("avx512f,avx512vnni")))
VNNI512 static inline __m512i seed_avx512_vnni(int32_t s) { return _mm512_set1_epi32(s); }
VNNI512 static inline __m512i step_avx512_vnni(__m512i c, __m512i a) { return _mm512_dpbusd_epi32(c, a, a); }
VNNI512 static inline int64_t fold_avx512_vnni(__m512i v) { return _mm512_reduce_add_epi32(v); }
VNNI512 static inline __m512i zero_avx512_vnni(void) { return _mm512_setzero_si512(); }
PROBE(avx512_vnni, VNNI512, __m512i)

/* Linux grants a process the AMX tile data state only on request (qk asks
 * too; asking twice is harmless). Returns -1 when the kernel refuses. */
#define AMX __attribute__((target("amx-tile,amx-int8")))
enum { kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18 };

struct amx_config {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

AMX int64_t amx(int64_t iters, int32_t seed) {
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) return -1;
  struct amx_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 8; ++t) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  _tile_loadconfig(&cfg);
  int8_t operand[16 * 64];
  memset(operand, seed & 0x7f, sizeof operand);
  _tile_loadd(6, operand, 64);
  _tile_loadd(7, operand, 64);
  _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3); _tile_zero(4); _tile_zero(5);
  for (int64_t n = 0; n < iters; ++n) {
    _tile_dpbusd(0, 6, 7); _tile_dpbusd(1, 6, 7); _tile_dpbusd(2, 6, 7);
    _tile_dpbusd(3, 6, 7); _tile_dpbusd(4, 6, 7); _tile_dpbusd(5, 6, 7);
  }
  int32_t out[16 * 16];
  _tile_stored(0, out, 64);
  _tile_release();
  return out[0];
}

/* 16 dependent adds per iteration: about 16 cycles, loop overhead overlapped. */
int64_t clock_adds(int64_t iters, int32_t seed) {
  int64_t x = seed;
  for (int64_t n = 0; n < iters; ++n) {
    __asm__ volatile(
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0"
        : "+r"(x));
  }
  return x;
}
