// aarch64 detection: the kernel's hardware capability bits on Linux
// (getauxval), sysctl on macOS (written from Apple's documented names, not
// run: no Mac was available).
#if defined(__aarch64__)
#include <cstddef>

#include "cpu/isa.h"
#include "cpu/sysfs_caches.h"

#if defined(__APPLE__)
#include <sys/sysctl.h>
#else
#include <sys/auxv.h>
#endif

namespace qk {
namespace {

struct ArmFeatures {
  bool asimd, asimd_dotprod, i8mm;
};

#if defined(__APPLE__)
bool sysctl_flag(const char* name) {
  int value = 0;
  size_t size = sizeof value;
  return sysctlbyname(name, &value, &size, nullptr, 0) == 0 && value != 0;
}

ArmFeatures detect() {
  return {sysctl_flag("hw.optional.neon") || sysctl_flag("hw.optional.AdvSIMD"),
          sysctl_flag("hw.optional.arm.FEAT_DotProd"), sysctl_flag("hw.optional.arm.FEAT_I8MM")};
}

long sysctl_long(const char* name) {
  long long value = 0;
  size_t size = sizeof value;
  return sysctlbyname(name, &value, &size, nullptr, 0) == 0 ? long(value) : 0;
}

CacheSizes detect_caches() {
  return {sysctl_long("hw.l1dcachesize"), sysctl_long("hw.l2cachesize"), sysctl_long("hw.l3cachesize")};
}
#else
// Bits of AT_HWCAP / AT_HWCAP2 (the kernel's arch/arm64 uapi hwcap.h).
constexpr unsigned long kHwcapAsimd = 1ul << 1;
constexpr unsigned long kHwcapAsimdDp = 1ul << 20;
constexpr unsigned long kHwcap2I8mm = 1ul << 13;

ArmFeatures detect() {
  const unsigned long hwcap = getauxval(AT_HWCAP), hwcap2 = getauxval(AT_HWCAP2);
  const bool asimd = (hwcap & kHwcapAsimd) != 0;
  return {asimd, asimd && (hwcap & kHwcapAsimdDp) != 0, asimd && (hwcap2 & kHwcap2I8mm) != 0};
}

CacheSizes detect_caches() { return read_sysfs_caches(); }
#endif

const ArmFeatures& features() {
  static const ArmFeatures f = detect();
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures list = [] {
    const ArmFeatures& f = features();
    return CpuFeatures{3, {{"asimd", f.asimd}, {"asimddp", f.asimd_dotprod}, {"i8mm", f.i8mm}}};
  }();
  return list;
}

const CacheSizes& cache_sizes() {
  static const CacheSizes sizes = detect_caches();
  return sizes;
}

bool isa_supported(Isa isa) {
  const ArmFeatures& f = features();
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::neon: return f.asimd;
    case Isa::neon_dotprod: return f.asimd && f.asimd_dotprod;
    // The i8mm kernels also use SDOT (every I8MM CPU has it, but say so).
    case Isa::i8mm: return f.asimd && f.asimd_dotprod && f.i8mm;
  }
  return false;
}

}  // namespace qk
#endif
