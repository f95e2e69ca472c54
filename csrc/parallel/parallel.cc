#include "parallel/parallel.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

namespace qk {

namespace {
// A spin-wait hint to the core (PAUSE on x86-64, YIELD on aarch64).
inline void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}
}  // namespace
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

constexpr std::chrono::microseconds kWaitPoll{200};

// One parallel_for call. Chunks are claimed from `next` by the caller and by
// any pool worker that comes by; the caller waits only for chunks someone
// claimed. A worker that is not scheduled in time (a busy machine) therefore
// never delays the call: the caller runs the chunk itself. Held by shared_ptr
// because a late worker may still look at it after the caller has returned
// (it then finds nothing to claim and never touches `fn`).
struct Job {
  const std::function<void(size_t, size_t)>* fn;
  size_t n, chunks, align;
  std::atomic<size_t> next{0}, done{0};
  std::mutex mutex;
  std::condition_variable finished;
  std::exception_ptr error;  // the first one thrown; guarded by mutex

  size_t bound(size_t k) const {
    if (k == chunks) return n;
    size_t b = n / chunks * k + n % chunks * k / chunks;
    return b - b % align;
  }

  // Runs chunks until none is left to claim.
  void work() {
    for (size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < chunks;) {
      const size_t begin = bound(i), end = bound(i + 1);
      try {
        if (begin < end) (*fn)(begin, end);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
      }
      if (done.fetch_add(1, std::memory_order_acq_rel) + 1 == chunks) {
        std::lock_guard<std::mutex> lock(mutex);  // pairs with the waiter's predicate check
        finished.notify_all();
      }
    }
  }

  // The caller's chunk is as long as any other, so the rest usually ends
  // within microseconds of it: poll for a while first. Sleeping on the
  // condition variable at once adds a futex wake-up to every call, which
  // on small layers costs as much as the second thread saves.
  void wait() {
    const auto deadline = std::chrono::steady_clock::now() + kWaitPoll;
    while (done.load(std::memory_order_acquire) != chunks && std::chrono::steady_clock::now() < deadline)
      cpu_relax();
    if (done.load(std::memory_order_acquire) == chunks) return;
    std::unique_lock<std::mutex> lock(mutex);
    finished.wait(lock, [&] { return done.load(std::memory_order_acquire) == chunks; });
  }
};

// Worker threads shared by all callers (several Python threads may call
// kernels at once: each call is its own Job in the queue). Workers are
// detached and the pool is never destroyed, so nothing races with
// interpreter shutdown. A job wakes only as many workers as it has chunks
// to share, and workers beyond num_threads() - 1 (after the thread count
// went down) exit, so a pool once grown large costs nothing later.
class Pool {
 public:
  void run(const std::shared_ptr<Job>& job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (; workers_ + 1 < job->chunks; ++workers_) std::thread([this] { serve(); }).detach();
      jobs_.push_back(job);
      queued_.store(jobs_.size(), std::memory_order_release);
    }
    for (size_t i = 1; i < job->chunks; ++i) wake_.notify_one();
    job->work();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = std::find(jobs_.begin(), jobs_.end(), job);
      if (it != jobs_.end()) jobs_.erase(it);
      queued_.store(jobs_.size(), std::memory_order_release);
    }
    job->wait();
  }

 private:
  void serve() {
    for (;;) {
      // Calls come back to back (the layers of a model, a benchmark loop),
      // and waking a sleeping thread costs tens of microseconds: poll for a
      // short while before sleeping.
      const auto deadline = std::chrono::steady_clock::now() + kPoll;
      while (queued_.load(std::memory_order_acquire) == 0 && std::chrono::steady_clock::now() < deadline)
        cpu_relax();
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return !jobs_.empty() || surplus(); });
        if (surplus()) {
          --workers_;
          return;
        }
        job = jobs_.front();
        // Everything claimed: leave it to its caller and look at the next job.
        if (job->next.load(std::memory_order_relaxed) >= job->chunks) {
          jobs_.pop_front();
          queued_.store(jobs_.size(), std::memory_order_release);
          continue;
        }
      }
      job->work();
    }
  }

  // More workers than the thread count needs (the caller is one of the threads). Under mutex_.
  bool surplus() const { return workers_ + 1 > static_cast<size_t>(std::max(num_threads(), 1)); }

 public:
  // Lets surplus workers see that they are (after set_num_threads lowered the count).
  void wake_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    wake_.notify_all();
  }

  size_t workers() {
    std::lock_guard<std::mutex> lock(mutex_);
    return workers_;
  }

 private:
  static constexpr std::chrono::microseconds kPoll{100};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> jobs_;
  std::atomic<size_t> queued_{0};  // jobs_.size(), readable without the mutex
  size_t workers_ = 0;
};

// A forked child has none of the parent's threads, and the parent's pool
// mutex may have been held at the fork: the child starts a fresh pool
// (the old one is leaked on purpose).
std::atomic<Pool*> pool_instance{nullptr};

void reset_pool_after_fork() { pool_instance.store(new Pool(), std::memory_order_release); }

Pool& pool() {
  static const bool init = [] {
    pool_instance.store(new Pool(), std::memory_order_release);
    pthread_atfork(nullptr, nullptr, reset_pool_after_fork);
    return true;
  }();
  (void)init;
  return *pool_instance.load(std::memory_order_acquire);
}

}  // namespace

int num_threads() { return threads_storage().load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  threads_storage().store(n, std::memory_order_relaxed);
  pool().wake_all();
}

size_t pool_workers() { return pool().workers(); }

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
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->n = n;
  job->chunks = chunks;
  job->align = align;
  pool().run(job);
  if (job->error) std::rethrow_exception(job->error);
}

}  // namespace qk
