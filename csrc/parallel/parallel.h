// Splitting work across threads: a small pool in which the calling thread
// takes part, so a busy machine never makes a call wait for a worker.
#pragma once

#include <cstddef>
#include <functional>

namespace qk {

// Threads used for large problems: QK_NUM_THREADS, else the cores this
// process may run on.
int num_threads();
// The caller has checked n >= 1. Workers beyond the new count exit.
void set_num_threads(int n);
// Worker threads alive now (the calling thread is not one of them).
size_t pool_workers();

// Calls fn(begin, end) on disjoint chunks that cover [0, n), each at least
// `grain` long (except when n < grain), on up to num_threads() threads.
// Chunks are contiguous and in order: chunk i of T covers [n*i/T, n*(i+1)/T)
// rounded to multiples of `align`, so results never depend on the thread count.
void parallel_for(size_t n, size_t grain, size_t align,
                  const std::function<void(size_t begin, size_t end)>& fn);

}  // namespace qk
