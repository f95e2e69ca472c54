#include "memory/array_pool.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace qk {
namespace {

// Each block starts with a header holding its capacity; the data follows, so
// free and realloc (which NumPy calls without a size) know what they hold.
constexpr size_t kHeader = 64;
// Below this malloc's own bins reuse memory without faults; above it glibc
// maps and unmaps a block per allocation.
constexpr size_t kPooledMin = size_t(256) << 10;
// Blocks this large ask for transparent huge pages, as NumPy's own allocator does.
constexpr size_t kHugePagesMin = size_t(4) << 20;
constexpr size_t kDefaultLimit = size_t(512) << 20;

struct Pool {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void*>> idle;  // capacity -> kept blocks (data pointers)
  size_t idle_bytes = 0, limit = kDefaultLimit, reused = 0, fresh = 0;
};

// Never destroyed: arrays may be freed after static destructors have run.
Pool& pool() {
  static Pool* p = new Pool;
  return *p;
}

size_t& capacity_of(void* data) { return *reinterpret_cast<size_t*>(static_cast<uint8_t*>(data) - kHeader); }

// Large sizes round up to an eighth of their power of two (at most 12.5%
// unused), so shapes that differ a little share blocks; 0 when too large.
size_t capacity_for(size_t bytes) {
  if (bytes > SIZE_MAX / 4) return 0;
  if (bytes < kPooledMin) return bytes;
  const size_t step = (size_t(1) << (63 - __builtin_clzll(bytes))) / 8;
  return (bytes + step - 1) / step * step;
}

void* fresh_block(size_t capacity) {
  const size_t total = (capacity + kHeader + 63) / 64 * 64;
  auto* base = static_cast<uint8_t*>(std::aligned_alloc(64, total));
  if (base == nullptr) return nullptr;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (capacity >= kHugePagesMin) {
    const uintptr_t page = 4096, begin = (reinterpret_cast<uintptr_t>(base) + page - 1) & ~(page - 1);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(base) + total) & ~(page - 1);
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);  // a hint only
  }
#endif
  void* data = base + kHeader;
  capacity_of(data) = capacity;
  return data;
}

void release(void* data) { std::free(static_cast<uint8_t*>(data) - kHeader); }

}  // namespace

void* pool_malloc(size_t bytes) {
  const size_t capacity = capacity_for(bytes);
  if (bytes != 0 && capacity == 0) return nullptr;
  if (capacity >= kPooledMin) {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mutex);
    auto it = p.idle.find(capacity);
    if (it != p.idle.end() && !it->second.empty()) {
      void* data = it->second.back();
      it->second.pop_back();
      p.idle_bytes -= capacity;
      ++p.reused;
      return data;
    }
    ++p.fresh;
  }
  return fresh_block(capacity);
}

void* pool_calloc(size_t count, size_t size) {
  size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes)) return nullptr;
  void* data = pool_malloc(bytes);
  if (data != nullptr) std::memset(data, 0, bytes);  // a kept block holds old data
  return data;
}

void pool_free(void* data) {
  if (data == nullptr) return;
  const size_t capacity = capacity_of(data);
  if (capacity >= kPooledMin) {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mutex);
    if (p.idle_bytes + capacity <= p.limit) {
      p.idle[capacity].push_back(data);
      p.idle_bytes += capacity;
      return;
    }
  }
  release(data);
}

void* pool_realloc(void* data, size_t bytes) {
  if (data == nullptr) return pool_malloc(bytes);
  const size_t capacity = capacity_of(data);
  if (capacity_for(bytes) == capacity) return data;  // the same size class: it fits
  void* grown = pool_malloc(bytes);
  if (grown == nullptr) return nullptr;  // the old block stays valid, as with realloc
  std::memcpy(grown, data, bytes < capacity ? bytes : capacity);
  pool_free(data);
  return grown;
}

PoolStats pool_stats() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  return {p.idle_bytes, p.limit, p.reused, p.fresh};
}

void set_pool_limit(size_t bytes) {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  p.limit = bytes;
  for (auto& [capacity, blocks] : p.idle) {
    while (p.idle_bytes > p.limit && !blocks.empty()) {
      release(blocks.back());
      blocks.pop_back();
      p.idle_bytes -= capacity;
    }
  }
}

}  // namespace qk
