#pragma once
// The background thread of async saves. It runs one job at a time and never calls MPI:
// the collective parts of a save (agreement, commit) stay on the application's thread.

#include <atomic>
#include <condition_variable>
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
  /// Runs `job` on the background thread (started on first use). The previous job must be
  /// finished (call wait() first). `job` must not throw.
  void submit(std::function<void()> job);
  /// Whether the last submitted job finished (true when none was submitted). Lock-free.
  bool done() const noexcept { return done_.load(std::memory_order_acquire); }
  /// Blocks until the last submitted job finished.
  void wait();

private:
  void run();
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::function<void()> job_;
  bool stop_ = false;
  bool any_cpu_ = false;
  std::atomic<bool> done_{true};
};

} // namespace ckpt::detail
