#pragma once
// The background thread of async saves. It runs one job at a time and never calls MPI:
// the collective parts of a save (agreement, commit) stay on the application's thread.
//
// Waking a thread that sleeps on a condition variable is a system call that costs the
// waker a few microseconds (more in a virtual machine), a good part of what an async save
// of a small state costs the solver. So while saves come often (less than `nap_limit`
// apart), the thread does not sleep between them: it naps in short timed sleeps, checking
// for the next job, for up to twice the last interval between two submissions, and
// submit() then only stores the job. Otherwise it sleeps and submit() wakes it.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

namespace ckpt::detail {

class Worker {
public:
  Worker() = default;
  ~Worker();
  Worker(const Worker &) = delete;
  Worker &operator=(const Worker &) = delete;

  /// Whether the thread, once started, may run on any CPU of the process's cpuset rather
  /// than on the CPUs its creator is bound to (Options::writer_any_cpu). Before submit().
  void any_cpu(bool any) { any_cpu_ = any; }
  /// Whether the thread naps between jobs that come often (the default) or always sleeps
  /// until woken: for a helper whose jobs are rare or long next to a wake-up (~5 us), a
  /// napping thread would only take CPU time from the solver. Before submit().
  void naps(bool on) { naps_ = on; }
  /// Runs `job` on the background thread (started on first use). The previous job must be
  /// finished (call wait() first). `job` must not throw.
  void submit(std::function<void()> job);
  /// Whether the last submitted job finished (true when none was submitted). Lock-free.
  bool done() const noexcept { return done_.load(std::memory_order_acquire); }
  /// Blocks until the last submitted job finished.
  void wait();

private:
  using Clock = std::chrono::steady_clock;
  /// Submissions further apart than this: the thread sleeps between jobs.
  static constexpr std::chrono::microseconds nap_limit{5000};
  void run();
  void nap();
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::function<void()> job_;
  std::atomic<bool> stop_{false};
  bool any_cpu_ = false;
  bool naps_ = true;
  std::atomic<bool> done_{true};
  std::atomic<bool> posted_{false}; // a job was stored and not yet taken
  bool sleeping_ = false;           // the thread waits on cv_ (guarded by mu_)
  Clock::time_point last_submit_{};
  std::atomic<std::int64_t> interval_ns_{0}; // between the last two submissions
};

} // namespace ckpt::detail
