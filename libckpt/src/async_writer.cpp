#include "async_writer.hpp"

namespace ckpt::detail {

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
