// Instruction-set paths, CPU feature detection and the process-wide cap.
//
// Plain data and functions only: this header is included by per-ISA files,
// so it must not define inline code that could be compiled with ISA flags.
#pragma once

#include "cpu/isa_list.h"

namespace qk {

// Ordered from the most portable to the fastest (cpu/isa_list.h); a cap allows
// every path at or below it that the CPU also supports.
//  x86-64: avx2 = AVX2 + FMA + F16C; avx_vnni adds 256-bit vpdpbusd; avx512 =
//    F/BW/VL/DQ; avx512_vnni adds VNNI; amx adds AMX-TILE/AMX-INT8 with the
//    Linux tile-data permission.
//  aarch64: neon = Advanced SIMD with FP16 conversion (every ARMv8-A CPU);
//    neon_dotprod adds SDOT/UDOT; i8mm adds USDOT/SMMLA.
#define QK_ISA_ENUM(name, flags) name,
enum class Isa : int { QK_ISA_LIST(QK_ISA_ENUM) };
#undef QK_ISA_ENUM
#define QK_ISA_COUNT(name, flags) +1
constexpr int kNumIsas = 0 QK_ISA_LIST(QK_ISA_COUNT);
#undef QK_ISA_COUNT

// The CPU features detection read (as `qk.cpu_features()` shows them), by
// the architecture's own names.
struct Feature {
  const char* name;
  bool present;
};
struct CpuFeatures {
  int count;
  Feature items[24];
};
// Defined per architecture (cpu/detect_<arch>.cc).
const CpuFeatures& cpu_features();

// Data cache sizes per core in bytes (0 where the CPU does not say): cpuid's
// deterministic cache parameters on x86-64 (leaf 4 on Intel, 0x8000001D on
// AMD), sysfs (or sysctl on macOS) elsewhere.
struct CacheSizes {
  long l1d, l2, l3;
};
const CacheSizes& cache_sizes();

const char* isa_name(Isa isa);
// Returns false if the name is unknown.
bool isa_from_name(const char* name, Isa* out);

// True if this CPU and OS can run the path (cpu/detect_<arch>.cc).
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
