#include "async_writer.hpp"

#include <ckpt/formats/raw_writer.hpp>

#include <algorithm>
#include <sys/prctl.h>
#include <time.h>

namespace ckpt::detail {

Worker::~Worker() {
  if (!thread_.joinable())
    return;
  wait();
  {
    std::lock_guard lk(mu_);
    stop_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
  thread_.join();
}

void Worker::submit(std::function<void()> job) {
  wait();
  const auto now = Clock::now();
  bool wake = false;
  {
    std::lock_guard lk(mu_);
    job_ = std::move(job);
    done_.store(false, std::memory_order_release);
    posted_.store(true, std::memory_order_release);
    wake = sleeping_;
  }
  if (last_submit_ != Clock::time_point{})
    interval_ns_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_submit_).count(),
                       std::memory_order_relaxed);
  last_submit_ = now;
  if (!thread_.joinable())
    thread_ = std::thread([this] { run(); });
  else if (wake)
    cv_.notify_all();
}

void Worker::wait() {
  if (done())
    return;
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return done_.load(std::memory_order_acquire); });
}

// Between two jobs that come often: short timed sleeps until the next job is posted, for up
// to twice the last interval between submissions. Each sleep is an eighth of that interval
// (20-200 us), so the thread wakes a few thousand times a second at most, on its own CPU.
void Worker::nap() {
  const std::chrono::nanoseconds interval{interval_ns_.load(std::memory_order_relaxed)};
  if (!naps_ || interval <= std::chrono::nanoseconds::zero() || interval > nap_limit)
    return;
  const auto step = std::clamp<std::chrono::nanoseconds>(interval / 8, std::chrono::microseconds(20),
                                                         std::chrono::microseconds(200));
  const auto until = Clock::now() + 2 * interval;
  const timespec ts{0, static_cast<long>(step.count())};
  while (!posted_.load(std::memory_order_acquire) && !stop_.load(std::memory_order_acquire) && Clock::now() < until)
    ::nanosleep(&ts, nullptr);
}

void Worker::run() {
  if (any_cpu_)
    formats::allow_every_cpu();
  // Timed naps as short as asked (the default slack rounds them up by 50 us).
  ::prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lk(mu_);
      sleeping_ = true;
      cv_.wait(lk, [&] { return stop_.load(std::memory_order_acquire) || job_; });
      sleeping_ = false;
      if (!job_)
        return;
      job = std::move(job_);
      job_ = nullptr;
      posted_.store(false, std::memory_order_relaxed);
    }
    job();
    {
      std::lock_guard lk(mu_);
      done_.store(true, std::memory_order_release);
    }
    cv_.notify_all();
    nap();
  }
}

} // namespace ckpt::detail
