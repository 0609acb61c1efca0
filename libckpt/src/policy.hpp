#pragma once
// Policy stage: when to checkpoint and when to stop. Pure functions of the options and of
// the history the run recorded (step durations, save costs), with no MPI and no clock of
// their own: the caller passes the time. Unit-tested in tests/unit/test_local.cpp.
//
// At each agreement boundary every rank turns what it saw into flags (stop_flags, and on
// rank 0 clock_flags); the step agreement in step_boundary.cpp ORs them across ranks, with
// rank 0's agreement_distance (when the next agreement boundary comes); decide() turns the
// agreed flags into one decision, the same on every rank. Boundaries between agreement
// boundaries decide without new flags.

#include <ckpt/checkpointer.hpp>
#include <ckpt/options.hpp>

#include <cstdint>

namespace ckpt::detail {

// Flags exchanged at step boundaries.
enum : int {
  flag_signal = 1,        ///< a stop signal arrived on this rank
  flag_time_due = 2,      ///< rank 0: the time interval (seconds or every=auto) has passed
  flag_time_limit = 4,    ///< rank 0: the job's end is closer than the margin
  flag_requested = 8,     ///< request_stop() was called on this rank
  flag_write_pending = 16 ///< this rank's background write of an async save is still running
};

/// What the policy has recorded of the run so far.
struct PolicyHistory {
  double last_checkpoint = 0; ///< clock reading of the last checkpoint (or of the start)
  double last_boundary = -1;  ///< clock reading of the previous step boundary; -1 before the first
  double iter_sum = 0;        ///< seconds of the steps since the last save
  std::int64_t iter_count = 0;
  double iter_max = 0;        ///< the longest step of the run
  std::int64_t saves = 0;     ///< committed saves
  double max_save = 0;        ///< the longest save until its data was durable, seconds
  double max_blocked = 0;     ///< the longest time a save blocked the application, seconds
  std::uint64_t state_bytes = 0; ///< all ranks' registered bytes (for the estimate before a save)
  bool flushes = false;       ///< node-local storage: a stop also flushes to the shared directory
  double max_flush = 0;       ///< the longest flush to the shared directory, seconds

  /// A step boundary at clock reading `t`: the step since the previous one is recorded.
  void record_boundary(double t);
  /// A committed save that took `seconds` until durable and blocked the application `blocked`.
  void record_save(double seconds, double blocked);
};

/// The cost of one save: the longest so far, or before the first one an estimate of the
/// state at a slow 100 MB/s.
double estimated_save_seconds(const PolicyHistory &h);

/// every=auto: Daly's optimum compute time between checkpoints for checkpoint cost C and
/// mean time between failures M. C is what a checkpoint costs the run: the whole save when
/// sync, the time save() blocked when async.
double auto_interval(const Options &o, const PolicyHistory &h);

/// How long before the job's end the stop checkpoint starts: Options::margin_seconds when
/// set, else 5 s + twice a save + twice the longest step; with node-local storage plus
/// twice the flush to the shared directory that a stop makes (before the first one, the
/// state at 100 MB/s).
double time_limit_margin(const Options &o, const PolicyHistory &h);

/// The most step boundaries from one agreement boundary to the next.
inline constexpr std::int64_t max_agreement_distance = 1000;

/// Rank 0's proposal, at an agreement boundary, for the number of step boundaries between
/// two later agreement boundaries: about Options::agree_seconds of steps at the mean step
/// time since the last save. The period is at most a tenth of the every=seconds or
/// every=auto interval, and with a job end time (`end_time` not NaN) at most a tenth of the
/// time-limit margin counted in the longest step of the run, so a due checkpoint or a stop
/// comes late by at most a fifth of them. 1 (every boundary agrees) when agree_seconds is 0,
/// when steps are slower than the period, or before a step was measured; at most
/// max_agreement_distance.
std::int64_t agreement_distance(const Options &o, const PolicyHistory &h, double end_time);

/// A rank's stop flags from detail::stop_signal(): > 0 a signal, < 0 request_stop().
int stop_flags(int stop_signal);

/// Rank 0's clock flags at clock reading `t` and wall time `wall` (seconds since the
/// epoch), with the job ending at `end_time` (NaN when there is no limit).
int clock_flags(const Options &o, const PolicyHistory &h, double t, double wall, double end_time);

struct Decision {
  bool save = false;                      ///< checkpoint at this boundary
  StopReason stop = StopReason::none;     ///< why the run stops after it (none: it goes on)
};

/// The decision at the boundary after `step` from the flags all ranks agreed on. A stop,
/// once decided, holds; `saved_step` (the step last saved) is not saved twice unless the
/// run stops there.
Decision decide(const Options &o, std::int64_t step, int agreed, std::int64_t saved_step, StopReason stopped);

} // namespace ckpt::detail
