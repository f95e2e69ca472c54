// Instruction-set paths, CPU feature detection and the process-wide cap.
//
// Plain data and functions only: this header is included by per-ISA files,
// so it must not define inline code that could be compiled with ISA flags.
#pragma once

#include "cpu/isa_list.h"

namespace qk {

// Ordered from the most portable to the fastest (cpu/isa_list.h); a cap allows
// every path at or below it that the CPU also supports. avx2 = AVX2 + FMA +
// F16C; avx_vnni adds 256-bit vpdpbusd; avx512 = F/BW/VL/DQ; avx512_vnni adds
// VNNI; amx adds AMX-TILE/AMX-INT8 with the Linux tile-data permission.
#define QK_ISA_ENUM(name, flags) name,
enum class Isa : int { QK_ISA_LIST(QK_ISA_ENUM) };
#undef QK_ISA_ENUM
#define QK_ISA_COUNT(name, flags) +1
constexpr int kNumIsas = 0 QK_ISA_LIST(QK_ISA_COUNT);
#undef QK_ISA_COUNT

struct CpuFeatures {
  bool sse42, avx, avx2, fma, f16c, avx_vnni;
  bool avx512f, avx512bw, avx512vl, avx512dq, avx512_vnni, avx512_bf16, avx512_fp16;
  bool amx_tile, amx_int8, amx_bf16;
  bool os_avx;      // XCR0 saves YMM state
  bool os_avx512;   // XCR0 saves opmask and ZMM state
  bool os_amx;      // XCR0 covers tile state and Linux granted XTILEDATA
};

const CpuFeatures& cpu_features();

// Data cache sizes per core in bytes (0 where the CPU does not say), from
// cpuid's deterministic cache parameters (leaf 4 on Intel, 0x8000001D on AMD).
struct CacheSizes {
  long l1d, l2, l3;
};
const CacheSizes& cache_sizes();

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
