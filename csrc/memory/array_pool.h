// Memory for NumPy array data while qk runs a model (the NumPy allocator that
// bindings/memory.cc installs). A forward pass allocates the same large
// intermediates every call; fresh from the kernel each time, they cost a page
// fault and a zero fill per 4 KiB (on a KVM guest, MiniLM's 200 MB of
// intermediates per pass were half of its time). Large blocks freed here are
// kept, up to a limit of idle bytes, and handed out again by size class.
// Thread-safe; every block is 64-byte aligned.
#pragma once

#include <cstddef>

namespace qk {

void* pool_malloc(size_t bytes);
void* pool_calloc(size_t count, size_t size);
void* pool_realloc(void* data, size_t bytes);
void pool_free(void* data);

struct PoolStats {
  size_t idle_bytes;   // freed large blocks kept for reuse
  size_t limit_bytes;  // the most idle bytes kept
  size_t reused;       // large allocations served from kept blocks
  size_t fresh;        // large allocations taken from the system
};

PoolStats pool_stats();
// Sets the idle limit, and frees kept blocks above it (0 keeps none).
void set_pool_limit(size_t bytes);

}  // namespace qk
