// The step boundary: after each step the policy decides (policy.cpp) from the flags every
// rank agreed on, then save, and on a stop or at the end a durable commit before anyone is
// told. The C++ loop helper, ckpt_step (C, Fortran) and Python's steps()/loop() all call
// after_step.
//
// The flags are agreed only at agreement boundaries, which every rank knows in advance: the
// first boundary of a session (and the first after a restore or wait()), then each one at
// the distance rank 0 proposed (agreement_distance: about Options::agree_seconds of steps).
// An agreement boundary completes the allreduce started at the previous one and starts the
// next; a boundary in between makes no MPI call and decides from "no new flags" (every=N
// still saves at multiples of N). So a signal is acted on at most about two agreement
// periods after it arrives, at the same step on every rank.
#include "session.hpp"

#include "signals.hpp"

#include <fmt/format.h>

#include <cmath>

namespace ckpt {

namespace {

// An agreement boundary: completes the agreement started at the previous one (its flags,
// and the distance to the next agreement boundary), commits an async save that every rank
// finished writing, decides, and starts the next agreement with this rank's flags.
detail::Decision agree(Checkpointer::Impl &m, std::int64_t step, double t) {
  m.finish_pending();
  const int agreed = m.carry_flags;
  const std::int64_t from = m.carry_boundary;
  // The first agreement of a session has none before it: the next boundary agrees too.
  m.next_agreement = m.boundaries + (from > 0 ? std::max<std::int64_t>(m.carry_distance, 1) : 1);
  m.carry_flags = 0;
  m.carry_distance = 0;
  m.carry_boundary = 0;
  // An async save is committed once every rank reported at an agreement boundary after it
  // that its background write is done. All ranks see the same flags: they commit together,
  // and a failed background write throws here on every rank.
  if (m.pending && from > m.pending->boundary && !(agreed & detail::flag_write_pending))
    m.complete_pending();
  // The same flags on every rank: the same decision (policy.hpp).
  const auto d = detail::decide(m.opts, step, agreed, m.saved_step, m.stopped);
  // What this rank saw: signals and request_stop() (any rank), the clock (rank 0 only).
  int local = detail::stop_flags(detail::stop_signal());
  std::int64_t distance = 0;
  if (m.rank() == 0) {
    if (m.history.saves == 0 && !m.fields.empty() && (m.opts.every_auto || !std::isnan(m.end_time)))
      m.history.state_bytes = m.fields.bytes() * static_cast<std::uint64_t>(m.comm.size());
    int clock = detail::clock_flags(m.opts, m.history, t, now(), m.end_time);
    if (d.save)
      clock &= ~detail::flag_time_due; // this boundary saves: the interval starts again
    local |= clock;
    distance = detail::agreement_distance(m.opts, m.history, m.end_time);
  }
  if (m.pending && !m.worker.done())
    local |= detail::flag_write_pending;
  m.send_msg = {local, static_cast<int>(distance)};
  m.req_boundary = m.boundaries;
  mpi::check(MPI_Iallreduce(m.send_msg.data(), m.recv_msg.data(), 2, MPI_INT, MPI_BOR, m.comm.get(), &m.req),
             "starting the step agreement", m.rank());
  return d;
}

} // namespace

bool Checkpointer::should_checkpoint(std::int64_t step) {
  auto &m = *impl_;
  m.progress("step", step);
  const double t = mono();
  ++m.boundaries;
  m.history.record_boundary(t);
  const auto d = m.boundaries >= m.next_agreement ? agree(m, step, t)
                                                  : detail::decide(m.opts, step, 0, m.saved_step, m.stopped);
  m.stopped = d.stop;
  m.history.last_boundary = mono();
  return d.save;
}

StepRange Checkpointer::steps(std::int64_t total) { return StepRange(*this, total); }

void Checkpointer::set_time(double t) noexcept { impl_->sim_time = t; }

void Checkpointer::request_stop() noexcept { detail::raise_stop_flag(-1); }

StopReason Checkpointer::stopped() const noexcept { return impl_->stopped; }

int Checkpointer::exit_code() const noexcept {
  const auto s = impl_->stopped;
  return s == StopReason::signal || s == StopReason::time_limit || s == StopReason::requested ? exit_more_work : 0;
}

StepRange::iterator StepRange::begin() {
  auto &m = *cp_->impl_;
  std::int64_t start = 0;
  if (!m.restore_done) {
    if (auto r = cp_->restore())
      start = *r;
  } else if (m.restored) {
    start = *m.restored;
  }
  m.stopped = StopReason::none;
  m.history.last_boundary = mono();
  if (start >= total_) {
    m.stopped = StopReason::finished;
    return iterator(this, total_, true);
  }
  return iterator(this, start, false);
}

bool StepRange::iterator::operator==(const iterator &o) const noexcept {
  return end_ == o.end_ && (end_ || step_ == o.step_);
}

StepRange::iterator &StepRange::iterator::operator++() {
  const std::int64_t done = step_ + 1;
  step_ = done;
  if (range_->cp_->after_step(done, done >= range_->total_) != StopReason::none)
    end_ = true;
  return *this;
}

// The one after-step routine of every binding (C++ loop helper, ckpt_step, Python steps()):
// policy, then save, then on a stop or at the end wait until the checkpoint is committed and
// durable, then clear the stop. Errors (a failed save or commit) are thrown before anyone
// is told "stopped", so a stop always means a durable checkpoint.
StopReason Checkpointer::after_step(std::int64_t done, bool last, const std::function<void(std::int64_t)> &save_fn) {
  auto &m = *impl_;
  bool due = should_checkpoint(done);
  if (last && m.opts.final)
    due = true;
  if (due && m.saved_step != done) {
    if (save_fn)
      save_fn(done);
    else
      save(done, m.sim_time);
  }
  if (last || m.stopped != StopReason::none) {
    wait();          // leaving the loop: the last checkpoint must be durable (async mode)
    m.flush_final(); // and, with node-local storage, in CKPT_DIR and checked
  }
  m.history.last_boundary = mono();
  if (last) {
    // The run is done: a stop asked for in its last agreement period, not agreed yet, is moot.
    detail::clear_stop_flag();
    m.stopped = StopReason::finished;
    return StopReason::finished;
  }
  if (m.stopped != StopReason::none) {
    const int sig = detail::stop_signal();
    m.log(fmt::format("stopping after step {} ({}{}); checkpoint is durable", done, stop_reason_name(m.stopped),
                      sig > 0 ? fmt::format(", signal {}", sig) : std::string()));
    detail::clear_stop_flag();
  }
  return m.stopped;
}

} // namespace ckpt
