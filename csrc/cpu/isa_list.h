// THE one list of ISA paths, from the most portable to the fastest:
// X(name, compiler flags of its files), each but scalar inside
// QK_ON_<architecture>(...), which keeps it only when compiling for that
// architecture. The Isa enum, the names QK_ISA and qk.set_isa accept,
// qk.available_isas() (and through it the test fixtures) come from here;
// cmake/qk_isas.cmake reads the same lines to compile only this
// architecture's *_<name>.cc files, each with its flags, and
// cmake/check_isa_objects.cmake to know which objects are ISA-specific.
// Adding a path is adding a line here, its detection in cpu/detect_<arch>.cc,
// files named after it and their entries in each family's kernel table.
#pragma once

#if defined(__x86_64__) || defined(_M_X64)
#define QK_ON_x86_64(...) __VA_ARGS__
#define QK_ON_aarch64(...)
#elif defined(__aarch64__)
#define QK_ON_x86_64(...)
#define QK_ON_aarch64(...) __VA_ARGS__
#else
#define QK_ON_x86_64(...)
#define QK_ON_aarch64(...)
#endif

// clang-format off
#define QK_ISA_LIST(X) \
  X(scalar,      "") \
  QK_ON_x86_64(X(avx2,        "-mavx2 -mfma -mf16c")) \
  QK_ON_x86_64(X(avx_vnni,    "-mavx2 -mfma -mf16c -mavxvnni")) \
  QK_ON_x86_64(X(avx512,      "-mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c")) \
  QK_ON_x86_64(X(avx512_vnni, "-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma -mf16c")) \
  QK_ON_x86_64(X(amx,         "-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma -mf16c -mamx-tile -mamx-int8")) \
  QK_ON_aarch64(X(neon,         "")) \
  QK_ON_aarch64(X(neon_dotprod, "-march=armv8.2-a+dotprod")) \
  QK_ON_aarch64(X(i8mm,         "-march=armv8.2-a+dotprod+i8mm"))
// clang-format on
