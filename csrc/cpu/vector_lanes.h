// Byte <-> int32 / float conversions of GCC vector extensions for the
// kernels written in them (.inc files compiled once per ISA). GCC 12 turns
// the direct conversions into one scalar move per lane, except narrowing
// on AVX-512 (vpmovdb); through int16 each step is a few vector instructions. Internal linkage (anonymous namespace):
// every ISA file that includes this compiles its own copy with its flags.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qk {
namespace {

template <size_t kLanes>
struct Lanes {
  typedef float Floats __attribute__((vector_size(4 * kLanes)));
  typedef int32_t Ints __attribute__((vector_size(4 * kLanes)));
  typedef int16_t Halves __attribute__((vector_size(2 * kLanes)));
  typedef uint8_t Bytes __attribute__((vector_size(kLanes)));
};

// uint8 lanes as floats (exact).
template <size_t kLanes>
inline typename Lanes<kLanes>::Floats bytes_to_floats(typename Lanes<kLanes>::Bytes v) {
  using L = Lanes<kLanes>;
  return __builtin_convertvector(__builtin_convertvector(__builtin_convertvector(v, typename L::Halves),
                                                         typename L::Ints),
                                 typename L::Floats);
}

// The low byte of each int32 lane.
template <size_t kLanes>
inline typename Lanes<kLanes>::Bytes low_bytes(typename Lanes<kLanes>::Ints v) {
  using L = Lanes<kLanes>;
#if defined(__AVX512F__)
  return __builtin_convertvector(v, typename L::Bytes);
#else
  return __builtin_convertvector(__builtin_convertvector(v, typename L::Halves), typename L::Bytes);
#endif
}

}  // namespace
}  // namespace qk
