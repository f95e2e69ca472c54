// Per-thread scratch memory reused from call to call. A kernel's temporary
// buffers (a packed A block, the int32 sums, a padded image) taken fresh per
// call cost a page fault per 4 KiB and a zero fill each time, which on a
// small convolution was a quarter of its time. Contents are uninitialized.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace qk {

// The buffers a thread may hold at once; a kernel and the kernels it calls
// on the same thread use different slots.
enum class ScratchSlot : int { kConvImage = 0, kConvRows = 1, kGemmA = 2, kGemmSums = 3 };

// At least `bytes` bytes, 64-byte aligned, valid until the next Scratch of the
// same slot on this thread. Buffers up to kScratchKeepBytes stay with the
// thread for the next call; larger ones are freed with this object.
class Scratch {
 public:
  static constexpr size_t kScratchKeepBytes = size_t(8) << 20;
  Scratch(ScratchSlot slot, size_t bytes);
  template <typename T>
  T* as() const {
    return reinterpret_cast<T*>(data_);
  }

 private:
  std::unique_ptr<uint8_t[]> own_;  // a buffer too large to keep
  uint8_t* data_;
};

}  // namespace qk
