// x86-64 detection: cpuid, XCR0 (what the OS saves) and Linux's AMX permission.
#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include "cpu/isa.h"

namespace qk {
namespace {

struct X86Features {
  bool sse42, avx, avx2, fma, f16c, avx_vnni;
  bool avx512f, avx512bw, avx512vl, avx512dq, avx512_vnni, avx512_bf16, avx512_fp16;
  bool amx_tile, amx_int8, amx_bf16;
  bool os_avx;      // XCR0 saves YMM state
  bool os_avx512;   // XCR0 saves opmask and ZMM state
  bool os_amx;      // XCR0 covers tile state and Linux granted XTILEDATA
};

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

X86Features detect() {
  X86Features f;
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

bool supported(const X86Features& f, Isa isa) {
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

const X86Features& features() {
  static const X86Features f = detect();
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures list = [] {
    const X86Features& f = features();
    return CpuFeatures{16,
                       {{"sse4_2", f.sse42},
                        {"avx", f.avx},
                        {"avx2", f.avx2},
                        {"fma", f.fma},
                        {"f16c", f.f16c},
                        {"avx_vnni", f.avx_vnni},
                        {"avx512f", f.avx512f},
                        {"avx512bw", f.avx512bw},
                        {"avx512vl", f.avx512vl},
                        {"avx512dq", f.avx512dq},
                        {"avx512_vnni", f.avx512_vnni},
                        {"avx512_bf16", f.avx512_bf16},
                        {"avx512_fp16", f.avx512_fp16},
                        {"amx_tile", f.amx_tile},
                        {"amx_int8", f.amx_int8},
                        {"amx_bf16", f.amx_bf16}}};
  }();
  return list;
}

const CacheSizes& cache_sizes() {
  static const CacheSizes sizes = detect_caches();
  return sizes;
}

bool isa_supported(Isa isa) { return supported(features(), isa); }

}  // namespace qk
#endif
