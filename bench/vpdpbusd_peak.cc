// The vpdpbusd ceiling of one core: independent accumulator chains (no loads,
// no dependences between chains), ymm vs zmm, and a chain of dependent adds
// to estimate the clock. Best of several repetitions, because a shared
// machine only ever makes a run slower.
//
//   g++ -O2 bench/vpdpbusd_peak.cc -o /tmp/vpdpbusd_peak && /tmp/vpdpbusd_peak
//
// GOP/s counts a multiply and an add per byte pair: a vpdpbusd does
// lanes * 4 * 2 operations (128 for a zmm, 64 for a ymm).
#include <chrono>
#include <cstdio>

#define DP(r, i) "vpdpbusd %%" r "30, %%" r "31, %%" r #i "\n\t"
#define CHAINS_1(r) DP(r, 0)
#define CHAINS_2(r) DP(r, 0) DP(r, 1)
#define CHAINS_4(r) DP(r, 0) DP(r, 1) DP(r, 2) DP(r, 3)
#define CHAINS_8(r) CHAINS_4(r) DP(r, 4) DP(r, 5) DP(r, 6) DP(r, 7)
#define CHAINS_12(r) CHAINS_8(r) DP(r, 8) DP(r, 9) DP(r, 10) DP(r, 11)
#define CHAINS_16(r) CHAINS_12(r) DP(r, 12) DP(r, 13) DP(r, 14) DP(r, 15)

#define LOOP(name, body)                                                                       \
  static double name(long iters) {                                                            \
    long scratch = 0;                                                                         \
    const auto t0 = std::chrono::steady_clock::now();                                         \
    __asm__ volatile("1:\n\t" body "dec %0\n\tjnz 1b" : "+r"(iters), "+r"(scratch)::"cc");   \
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();      \
  }

LOOP(zmm1, CHAINS_1("zmm")) LOOP(zmm2, CHAINS_2("zmm")) LOOP(zmm4, CHAINS_4("zmm")) LOOP(zmm8, CHAINS_8("zmm"))
LOOP(zmm12, CHAINS_12("zmm")) LOOP(zmm16, CHAINS_16("zmm"))
LOOP(ymm1, CHAINS_1("ymm")) LOOP(ymm2, CHAINS_2("ymm")) LOOP(ymm4, CHAINS_4("ymm")) LOOP(ymm8, CHAINS_8("ymm"))
LOOP(ymm12, CHAINS_12("ymm")) LOOP(ymm16, CHAINS_16("ymm"))
LOOP(adds, "add $1, %1\n\tadd $1, %1\n\tadd $1, %1\n\tadd $1, %1\n\t")

int main() {
  struct Case { const char* name; double (*fn)(long); int chains, ops; };
  const Case cases[] = {{"zmm", zmm1, 1, 128},  {"zmm", zmm2, 2, 128},   {"zmm", zmm4, 4, 128},
                        {"zmm", zmm8, 8, 128},  {"zmm", zmm12, 12, 128}, {"zmm", zmm16, 16, 128},
                        {"ymm", ymm1, 1, 64},   {"ymm", ymm2, 2, 64},    {"ymm", ymm4, 4, 64},
                        {"ymm", ymm8, 8, 64},   {"ymm", ymm12, 12, 64},  {"ymm", ymm16, 16, 64}};
  const long kInstr = 100'000'000, kReps = 5;
  double best_clock = 0;
  for (int rep = 0; rep < kReps; ++rep) {
    const double ghz = double(kInstr) / adds(kInstr / 4) / 1e9;  // one dependent add per cycle
    if (ghz > best_clock) best_clock = ghz;
  }
  std::printf("clock (dependent adds): %.2f GHz\n", best_clock);
  std::printf("%-4s %6s %9s %12s %14s\n", "reg", "chains", "GOP/s", "instr/ns", "instr/cycle");
  for (const Case& c : cases) {
    const long iters = kInstr / c.chains;
    double best = 1e30;
    for (int rep = 0; rep < kReps; ++rep) {
      const double s = c.fn(iters);
      if (s < best) best = s;
    }
    const double per_ns = double(iters) * c.chains / best / 1e9;
    std::printf("%-4s %6d %9.1f %12.2f %14.2f\n", c.name, c.chains, per_ns * c.ops, per_ns, per_ns / best_clock);
  }
}
