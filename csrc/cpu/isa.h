// Instruction-set paths, CPU feature detection and the process-wide cap.
//
// Plain data and functions only: this header is included by per-ISA files,
// so it must not define inline code that could be compiled with ISA flags.
#pragma once

namespace qk {

// Ordered from the most portable to the fastest; a cap allows every path at
// or below it that the CPU also supports.
enum class Isa : int {
  scalar = 0,
  avx2 = 1,         // AVX2 + FMA + F16C
  avx_vnni = 2,     // + AVX-VNNI (256-bit vpdpbusd)
  avx512 = 3,       // AVX-512 F/BW/VL/DQ
  avx512_vnni = 4,  // + AVX-512 VNNI
  amx = 5,          // + AMX-TILE/AMX-INT8 with the Linux tile-data permission
};
constexpr int kNumIsas = 6;

struct CpuFeatures {
  bool sse42, avx, avx2, fma, f16c, avx_vnni;
  bool avx512f, avx512bw, avx512vl, avx512dq, avx512_vnni, avx512_bf16, avx512_fp16;
  bool amx_tile, amx_int8, amx_bf16;
  bool os_avx;      // XCR0 saves YMM state
  bool os_avx512;   // XCR0 saves opmask and ZMM state
  bool os_amx;      // XCR0 covers tile state and Linux granted XTILEDATA
};

const CpuFeatures& cpu_features();

const char* isa_name(Isa isa);
// Returns false if the name is unknown.
bool isa_from_name(const char* name, Isa* out);

// True if this CPU and OS can run the path.
bool isa_supported(Isa isa);
// The best supported path.
Isa best_isa();

// The cap in force (initialised from QK_ISA at first use, else best_isa()).
Isa isa_cap();
// Sets the cap; the caller has checked isa_supported().
void set_isa_cap(Isa isa);

// Picks, among the paths a kernel family implements (`implemented[i]` for
// Isa i), the best one at or below the cap that the machine supports.
Isa select_isa(const bool implemented[kNumIsas]);

}  // namespace qk
