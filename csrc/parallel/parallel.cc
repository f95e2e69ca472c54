#include "parallel/parallel.h"

#include <omp.h>
#include <sched.h>

#include <atomic>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>

namespace qk {
namespace {

int default_threads() {
  if (const char* env = std::getenv("QK_NUM_THREADS"); env != nullptr && *env != '\0') {
    char* end = nullptr;
    long n = std::strtol(env, &end, 10);
    if (*end != '\0' || n < 1 || n > 4096)
      throw std::invalid_argument(std::string("QK_NUM_THREADS: expected a whole number >= 1, got '") +
                                  env + "'");
    return static_cast<int>(n);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : 1;
  return 1;
}

std::atomic<int>& threads_storage() {
  static std::atomic<int> threads{default_threads()};
  return threads;
}

}  // namespace

int num_threads() { return threads_storage().load(std::memory_order_relaxed); }

void set_num_threads(int n) { threads_storage().store(n, std::memory_order_relaxed); }

void parallel_for(size_t n, size_t grain, size_t align,
                  const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  if (grain < 1) grain = 1;
  if (align < 1) align = 1;
  size_t chunks = n / grain;
  if (chunks > static_cast<size_t>(num_threads())) chunks = num_threads();
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  // An exception must not escape an OpenMP region: keep the first, rethrow after.
  std::exception_ptr error;
  std::mutex error_mutex;
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static, 1)
  for (size_t i = 0; i < chunks; ++i) {
    auto bound = [&](size_t k) {
      if (k == chunks) return n;
      size_t b = n / chunks * k + n % chunks * k / chunks;
      b -= b % align;
      return b;
    };
    size_t begin = bound(i), end = bound(i + 1);
    if (begin >= end) continue;
    try {
      fn(begin, end);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace qk
