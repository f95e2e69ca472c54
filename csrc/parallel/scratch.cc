#include "parallel/scratch.h"

namespace qk {
namespace {

struct Kept {
  std::unique_ptr<uint8_t[]> memory;
  size_t capacity = 0;
};

constexpr int kSlots = 4;
thread_local Kept kept[kSlots];

uint8_t* aligned(uint8_t* p) {
  return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63));
}

}  // namespace

Scratch::Scratch(ScratchSlot slot, size_t bytes) {
  const size_t need = bytes + 64;  // room to align
  if (bytes > kScratchKeepBytes) {
    own_.reset(new uint8_t[need]);
    data_ = aligned(own_.get());
    return;
  }
  Kept& k = kept[static_cast<int>(slot)];
  if (k.capacity < need) {
    k.memory.reset(new uint8_t[need]);
    k.capacity = need;
  }
  data_ = aligned(k.memory.get());
}

}  // namespace qk
