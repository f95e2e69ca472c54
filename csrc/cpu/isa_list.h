// THE one list of ISA paths, from the most portable to the fastest:
// X(name, compiler flags of its files). The Isa enum, the names QK_ISA and
// qk.set_isa accept, qk.available_isas() (and through it the test fixtures)
// come from here; CMakeLists.txt reads the same lines to give each
// *_<name>.cc file its flags, and cmake/check_isa_objects.cmake to know which
// objects are ISA-specific. Adding a path is adding a line here, its
// detection in isa.cc, and files named after it.
#pragma once

// clang-format off
#define QK_ISA_LIST(X) \
  X(scalar,      "") \
  X(avx2,        "-mavx2 -mfma -mf16c") \
  X(avx_vnni,    "-mavx2 -mfma -mf16c -mavxvnni") \
  X(avx512,      "-mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c") \
  X(avx512_vnni, "-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma -mf16c") \
  X(amx,         "-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma -mf16c -mamx-tile -mamx-int8")
// clang-format on
