#include "cpu/isa.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace qk {
namespace {

#define QK_ISA_NAME(name, flags) #name,
constexpr const char* kIsaNames[kNumIsas] = {QK_ISA_LIST(QK_ISA_NAME)};
#undef QK_ISA_NAME

bool bit(unsigned reg, int n) { return (reg >> n) & 1u; }

uint64_t read_xcr0() {
  uint32_t eax, edx;
  // xgetbv with ecx = 0; encoded as bytes so no -mxsave is needed.
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

// Linux keeps AMX tile data disabled until a process asks for it.
bool request_amx_permission() {
  constexpr long kArchGetXcompPerm = 0x1022;
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) return false;
  unsigned long bitmask = 0;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &bitmask) != 0) return false;
  return (bitmask >> kXfeatureXtiledata) & 1ul;
}

// Walks the deterministic cache parameter leaf (Intel 4, AMD 0x8000001D share
// its layout): per level, ways * partitions * line size * sets.
CacheSizes detect_caches() {
  CacheSizes sizes{0, 0, 0};
  unsigned a, b, c, d;
  unsigned leaf = 4;
  if (__get_cpuid_max(0x80000000, nullptr) >= 0x8000001D) {
    __cpuid_count(0x80000001, 0, a, b, c, d);
    if (bit(c, 22)) leaf = 0x8000001D;  // AMD's topology extensions
  }
  if (leaf == 4 && __get_cpuid_max(0, nullptr) < 4) return sizes;
  for (unsigned i = 0; i < 16; ++i) {
    __cpuid_count(leaf, i, a, b, c, d);
    const unsigned type = a & 0x1f;  // 0: no more caches; 1 data, 2 instruction, 3 unified
    if (type == 0) break;
    if (type == 2) continue;
    const long bytes = long((b >> 22) + 1) * long(((b >> 12) & 0x3ff) + 1) * long((b & 0xfff) + 1) * long(c + 1);
    switch ((a >> 5) & 0x7) {
      case 1: sizes.l1d = bytes; break;
      case 2: sizes.l2 = bytes; break;
      case 3: sizes.l3 = bytes; break;
      default: break;
    }
  }
  return sizes;
}

CpuFeatures detect() {
  CpuFeatures f;
  std::memset(&f, 0, sizeof f);
  unsigned a, b, c, d;
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 1) return f;
  __cpuid_count(1, 0, a, b, c, d);
  f.sse42 = bit(c, 20);
  f.fma = bit(c, 12);
  f.f16c = bit(c, 29);
  const bool osxsave = bit(c, 27);
  const bool cpu_avx = bit(c, 28);
  uint64_t xcr0 = osxsave ? read_xcr0() : 0;
  f.os_avx = osxsave && (xcr0 & 0x6) == 0x6;
  f.os_avx512 = f.os_avx && (xcr0 & 0xe0) == 0xe0;
  f.avx = cpu_avx && f.os_avx;
  if (!f.avx) f.fma = f.f16c = false;
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    const unsigned max_sub = a;
    f.avx2 = f.avx && bit(b, 5);
    f.avx512f = f.os_avx512 && bit(b, 16);
    f.avx512dq = f.avx512f && bit(b, 17);
    f.avx512bw = f.avx512f && bit(b, 30);
    f.avx512vl = f.avx512f && bit(b, 31);
    f.avx512_vnni = f.avx512f && bit(c, 11);
    f.avx512_fp16 = f.avx512f && bit(d, 23);
    f.amx_bf16 = bit(d, 22);
    f.amx_tile = bit(d, 24);
    f.amx_int8 = bit(d, 25);
    if (max_sub >= 1) {
      __cpuid_count(7, 1, a, b, c, d);
      f.avx_vnni = f.avx2 && bit(a, 4);
      f.avx512_bf16 = f.avx512f && bit(a, 5);
    }
  }
  const bool xcr0_amx = (xcr0 & 0x60000) == 0x60000;
  f.os_amx = f.amx_tile && f.amx_int8 && xcr0_amx && request_amx_permission();
  if (!f.os_amx) f.amx_tile = f.amx_int8 = f.amx_bf16 = false;
  return f;
}

bool supported(const CpuFeatures& f, Isa isa) {
  const bool avx2 = f.avx2 && f.fma && f.f16c;
  const bool avx512 = avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::avx2: return avx2;
    case Isa::avx_vnni: return avx2 && f.avx_vnni;
    case Isa::avx512: return avx512;
    case Isa::avx512_vnni: return avx512 && f.avx512_vnni;
    case Isa::amx: return avx512 && f.avx512_vnni && f.os_amx;
  }
  return false;
}

Isa initial_cap() {
  const char* env = std::getenv("QK_ISA");
  if (env == nullptr || *env == '\0') return best_isa();
  Isa isa;
  if (!isa_from_name(env, &isa))
    throw std::invalid_argument(std::string("QK_ISA: unknown ISA '") + env + "'");
  if (!isa_supported(isa))
    throw std::invalid_argument(std::string("QK_ISA: this machine cannot run '") + env + "'");
  return isa;
}

std::atomic<int>& cap_storage() {
  static std::atomic<int> cap{static_cast<int>(initial_cap())};
  return cap;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

const CacheSizes& cache_sizes() {
  static const CacheSizes sizes = detect_caches();
  return sizes;
}

const char* isa_name(Isa isa) { return kIsaNames[static_cast<int>(isa)]; }

bool isa_from_name(const char* name, Isa* out) {
  for (int i = 0; i < kNumIsas; ++i) {
    if (std::strcmp(name, kIsaNames[i]) == 0) {
      *out = static_cast<Isa>(i);
      return true;
    }
  }
  return false;
}

bool isa_supported(Isa isa) { return supported(cpu_features(), isa); }

Isa best_isa() {
  Isa best = Isa::scalar;
  for (int i = 0; i < kNumIsas; ++i)
    if (isa_supported(static_cast<Isa>(i))) best = static_cast<Isa>(i);
  return best;
}

Isa isa_cap() { return static_cast<Isa>(cap_storage().load(std::memory_order_relaxed)); }

void set_isa_cap(Isa isa) { cap_storage().store(static_cast<int>(isa), std::memory_order_relaxed); }

Isa select_isa(const bool implemented[kNumIsas]) {
  const int cap = static_cast<int>(isa_cap());
  for (int i = cap; i > 0; --i)
    if (implemented[i] && isa_supported(static_cast<Isa>(i))) return static_cast<Isa>(i);
  return Isa::scalar;
}

}  // namespace qk
