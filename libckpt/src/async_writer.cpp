#include "async_writer.hpp"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

namespace ckpt::detail {

namespace {

// Lets the calling thread run on every CPU: the kernel intersects the mask with the
// process's cpuset, so it ends up on the CPUs the job may use. Best effort: a failure
// leaves the inherited binding.
void allow_every_cpu() {
  cpu_set_t all;
  CPU_ZERO(&all);
  const long n = ::sysconf(_SC_NPROCESSORS_CONF);
  for (long c = 0; c < n && c < CPU_SETSIZE; ++c)
    CPU_SET(static_cast<int>(c), &all);
  ::pthread_setaffinity_np(::pthread_self(), sizeof all, &all);
}

} // namespace

Worker::~Worker() {
  if (!thread_.joinable())
    return;
  wait();
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Worker::submit(std::function<void()> job) {
  wait();
  {
    std::lock_guard lk(mu_);
    job_ = std::move(job);
    done_.store(false, std::memory_order_release);
  }
  if (!thread_.joinable())
    thread_ = std::thread([this] { run(); });
  cv_.notify_all();
}

void Worker::wait() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return done_.load(std::memory_order_acquire); });
}

void Worker::run() {
  if (any_cpu_)
    allow_every_cpu();
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stop_ || job_; });
      if (!job_)
        return;
      job = std::move(job_);
      job_ = nullptr;
    }
    job();
    {
      std::lock_guard lk(mu_);
      done_.store(true, std::memory_order_release);
    }
    cv_.notify_all();
  }
}

} // namespace ckpt::detail
