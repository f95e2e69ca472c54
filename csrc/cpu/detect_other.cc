// Any other architecture: the scalar path only, caches from sysfs.
#if !defined(__x86_64__) && !defined(_M_X64) && !defined(__aarch64__)
#include "cpu/isa.h"
#include "cpu/sysfs_caches.h"

namespace qk {

const CpuFeatures& cpu_features() {
  static const CpuFeatures none{0, {}};
  return none;
}

const CacheSizes& cache_sizes() {
  static const CacheSizes sizes = read_sysfs_caches();
  return sizes;
}

bool isa_supported(Isa isa) { return isa == Isa::scalar; }

}  // namespace qk
#endif
