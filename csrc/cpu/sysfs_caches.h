// Cache sizes from Linux's sysfs (the CPUs where cpuid does not say), shared
// by the detection files of the architectures other than x86-64.
#pragma once

#include "cpu/isa.h"

namespace qk {

// /sys/devices/system/cpu/cpu0/cache/index*/{level,type,size}; 0 for a level
// that is absent or unreadable.
CacheSizes read_sysfs_caches();

}  // namespace qk
