#pragma once
/// \file
/// The Checkpointer: register state, save, restore, and the loop helper.

#include <ckpt/catalog.hpp>
#include <ckpt/error.hpp>
#include <ckpt/field_set.hpp>
#include <ckpt/options.hpp>
#include <ckpt/types.hpp>

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ckpt {

/// Why the loop helper ended.
enum class StopReason : int {
  none = 0,       ///< still running
  finished = 1,   ///< reached the last step
  signal = 2,     ///< a stop signal arrived; a checkpoint was saved
  time_limit = 3, ///< the job's time limit is near; a checkpoint was saved
  requested = 4,  ///< request_stop() was called; a checkpoint was saved
};

/// "none", "finished", "signal", "time_limit" or "requested".
const char *stop_reason_name(StopReason r) noexcept;

/// Costs measured by a Checkpointer so far.
struct SaveStats {
  std::int64_t saves = 0;
  std::uint64_t bytes = 0;        ///< payload bytes of all saves
  double seconds = 0;             ///< time the application was blocked in save
  double last_seconds = 0;
  std::uint64_t last_bytes = 0;
  std::int64_t last_step = -1;
};

class StepRange;
class LoopRange;

/// Where a program was in its Checkpointer::loop / phase structure when a checkpoint was
/// saved (Checkpointer::restored_position()). Loops and phases are counted in the order the
/// program enters them: `done` of a level is how many of the loops and phases inside its
/// current iteration had finished.
struct LoopPosition {
  struct Level {
    std::int64_t index = 0; ///< the loop's index (0 for a phase)
    std::int64_t done = 0;  ///< loops and phases finished inside this iteration
    bool operator==(const Level &) const = default;
  };
  std::int64_t done = 0;    ///< top-level loops and phases finished
  std::vector<Level> stack; ///< the running loops and phases, outermost first
  bool operator==(const LoopPosition &) const = default;
};

/// Thrown by the iteration of a Checkpointer::loop or phase after a stop (signal, time
/// limit, request_stop()) once its checkpoint is durable: it ends every loop of the nest,
/// at any depth. Catch it outside the outermost loop and exit with
/// Checkpointer::exit_code() (ckpt::exit_more_work).
class Stopped : public std::exception {
public:
  explicit Stopped(StopReason reason) noexcept : reason_(reason) {}
  StopReason reason() const noexcept { return reason_; }
  const char *what() const noexcept override { return "ckpt: stopped after a durable checkpoint"; }

private:
  StopReason reason_;
};

/// Coordinated checkpoints of the state of an MPI application.
///
/// \code
/// ckpt::Checkpointer cp(MPI_COMM_WORLD, {.dir = "run", .every = 100});
/// cp.distributed("u", u.data(), {.global = {ny, nx}, .offset = {y0, x0}, .count = {my, mx}});
/// cp.replicated("t", &t);
/// for (auto step : cp.steps(nsteps)) { advance(u); t += dt; }
/// return cp.exit_code();
/// \endcode
///
/// Registration calls are local; restore, save, should_checkpoint and the loop helper are
/// collective over the communicator, and all ranks must register the same fields in the
/// same order. Errors inside collective calls are agreed on: every rank throws the same
/// Error.
class Checkpointer : public detail::TypedRegistration<Checkpointer> {
public:
  /// Collective over comm. Duplicates comm (the user's communicator is never freed), applies
  /// the CKPT_* environment (see Options), creates the directory and installs the stop
  /// signal handlers.
  /// \throws Error(invalid_argument, io, restart_limit)
  Checkpointer(MPI_Comm comm, Options options = {});
  /// Collective: commits a pending async save and flushes node-local storage. A
  /// Checkpointer still open when MPI_Finalize is called is closed there (while MPI works),
  /// and its destructor then does nothing more.
  ~Checkpointer();
  Checkpointer(Checkpointer &&) noexcept;
  /// Closes this one's session first (collective, as the destructor), then takes `other`'s.
  Checkpointer &operator=(Checkpointer &&) noexcept;
  Checkpointer(const Checkpointer &) = delete;
  Checkpointer &operator=(const Checkpointer &) = delete;

  using detail::TypedRegistration<Checkpointer>::distributed;
  using detail::TypedRegistration<Checkpointer>::replicated;
  using detail::TypedRegistration<Checkpointer>::per_rank;

  // Registration: the Checkpointer's own field set, used by save(step), restore() and the
  // loop helper. See FieldSet for each call. Local.
  // \throws Error(invalid_argument) for a bad name, a block outside the global shape, a
  // name already registered, or a registration after restore() (clear_fields() first).

  /// Registers this rank's block of a distributed N-d array.
  void distributed(const std::string &name, Dtype dtype, void *data, const Block &block);
  /// Registers a value that is the same on every rank (stored once). `shape` empty means a
  /// scalar. On save, ckpt checks that all ranks hold the same bytes.
  void replicated(const std::string &name, Dtype dtype, void *data, const Shape &shape = {});
  /// Registers a value of fixed shape that differs per rank (RNG state, counters).
  /// Restoring it on a different number of ranks is an error (Errc::rank_count).
  void per_rank(const std::string &name, Dtype dtype, void *data, const Shape &shape = {});
  /// A per-rank value whose shape may change: `get` returns the current data and shape,
  /// `resize` is called on restore with the saved shape and returns where to read it.
  void per_rank_resizable(const std::string &name, Dtype dtype,
                          std::function<std::pair<void *, Shape>()> get,
                          std::function<void *(const Shape &)> resize);
  /// Tags the registered distributed field `name` with its grid: each later checkpoint then
  /// opens as a VTKHDF image in ParaView (see FieldSet::grid). Allowed after restore().
  void grid(const std::string &name, const Grid &grid);
  /// The registered fields.
  const FieldSet &fields() const noexcept;

  /// A key/value pair stored as a root attribute of every later checkpoint. Local.
  void metadata(const std::string &key, const std::string &value);

  /// Loads the newest valid checkpoint in the directory into the registered fields.
  /// Damaged checkpoints (checksum mismatch, truncated, malformed) are set aside as
  /// `<file>.corrupt` with a logged reason and the next older one is tried. An I/O error
  /// (EIO, EACCES, a failed open: the storage, not the file) is retried once, then thrown,
  /// and nothing is renamed. Collective over comm.
  /// \returns the restored step, or nothing when the directory holds no checkpoint (or
  ///   none can be restored and Options::fresh allows starting from scratch).
  /// \throws Error(io) when a checkpoint cannot be read; Error(mismatch, missing_field,
  ///   rank_count) when the checkpoint does not fit the registered fields;
  ///   Error(unsupported_version); Error(no_valid_checkpoint) when checkpoints exist (or
  ///   were set aside by an earlier run) but none is valid and Options::fresh is not set
  ///   (registered buffers may then be overwritten).
  std::optional<std::int64_t> restore();

  /// Loads one given checkpoint file; no fallback. Collective over comm.
  /// \throws Error(corrupt) and the errors of restore().
  std::int64_t restore_from(const std::string &file);

  /// restore() into the arrays of `fields` instead of the registered ones (the set handed
  /// to each restore may differ). Collective over comm.
  std::optional<std::int64_t> restore(const FieldSet &fields);
  /// restore_from(file) into the arrays of `fields`. Collective over comm.
  std::int64_t restore_from(const FieldSet &fields, const std::string &file);
  /// Reads `fields` from one checkpoint file, verified like a restore, without making it
  /// the restored checkpoint (restored_step() and the progress line are unchanged): for
  /// reading part of a file, such as a description stored as a field. Collective over comm.
  std::int64_t read_from(const FieldSet &fields, const std::string &file);

  /// Writes a checkpoint of the registered fields at `step` (the number of completed
  /// steps); `time` is the simulation time stored with it. Collective over comm.
  /// With Mode::sync it returns when the checkpoint is committed and durable. With
  /// Mode::async it copies the state into staging memory (one copy of this rank's state,
  /// allocated at the first save and reused) and returns; a background thread writes it,
  /// and the commit happens at a later collective call (should_checkpoint, save, wait,
  /// restore, the destructor) once every rank's write is done. A save first waits for the
  /// previous one. Errors of a background write are thrown by that later call.
  /// \throws Error; the previous committed checkpoint is never damaged.
  void save(std::int64_t step, double time = 0);
  /// save(step, time) of `fields` instead of the registered ones: the session (directory,
  /// policy history, staging memory, async writer) stays, the set may differ at each save.
  void save(const FieldSet &fields, std::int64_t step, double time = 0);

  /// Makes the last checkpoint durable and committed: with Mode::async, waits for this
  /// rank's background write, then commits collectively (rename, LATEST, retention). A
  /// no-op when nothing is pending. The destructor does the same (logging errors instead of
  /// throwing). Collective over comm.
  /// \throws Error when the background write failed on any rank (every rank throws the
  ///   same error; the previous committed checkpoint is intact).
  void wait();

  /// Whether to checkpoint after `step` completed steps: by step count, by elapsed time,
  /// by the automatic interval (Options::every_auto), because a stop signal arrived or the
  /// time limit is near. Also commits a finished async save. All ranks get the same answer.
  /// Collective over comm, but only agreement boundaries make an MPI call: signals,
  /// request_stop() and the clock are agreed on about every Options::agree_seconds of steps
  /// (the first call, and the first after a restore or wait(), agree), so a stop comes at
  /// most about two such periods after it was asked for.
  bool should_checkpoint(std::int64_t step);

  /// The step boundary of every loop (the C++ loop helper, the C API's ckpt_step and
  /// Python's steps() all call it): after `done` completed steps, checkpoints per policy
  /// (and at the `last` step when Options::final), by `save_fn(done)` when given, else by
  /// save(done, time). On a stop request or at the last step it then waits until the
  /// checkpoint is committed and durable, and clears the stop request. Collective.
  /// \returns StopReason::none to go on, finished after the last step, or why it stopped
  ///   (signal, time_limit, requested); a stop is reported only once its checkpoint is
  ///   durable. \throws Error when the save or its commit failed (then no stop is
  ///   reported and exit_code() is not exit_more_work).
  StopReason after_step(std::int64_t done, bool last = false,
                        const std::function<void(std::int64_t)> &save_fn = {});

  /// Drops every registered field (local), so that the next save or restore uses a new
  /// set: fields may be added, removed or resized between saves. An async save in flight
  /// is not affected (its data was copied when save() returned).
  void clear_fields();

  /// The step of an async save not yet committed (its write may still run), if any.
  std::optional<std::int64_t> pending_step() const noexcept;

  /// The step whose state is in a checkpoint: the last successful save() (committed, or
  /// staged when async), or the restored step; nothing before either.
  std::optional<std::int64_t> saved_step() const noexcept;

  /// Loop helper: restores (once), then yields the steps from the restored step (or 0) to
  /// `total - 1`. After each step it checkpoints per policy; after a stop request it saves
  /// and ends the loop early. Collective over comm.
  StepRange steps(std::int64_t total);

  /// A checkpointed loop that may be nested, with phases between and inside loops:
  /// \code
  /// for (auto _ : cp.phase("setup")) setup();
  /// for (auto sweep : cp.loop("sweep", 8)) {
  ///   for (auto _ : cp.phase("init")) init(sweep);
  ///   for (auto t : cp.loop("t", 10000)) advance(u);
  /// }
  /// \endcode
  /// The first call of loop() or phase() restores the newest checkpoint (register the
  /// fields before; do not call restore() yourself). The position (each running loop's index, and
  /// which loops and phases of the current iterations are done) is saved with every
  /// checkpoint as the replicated field `ckpt.position`; a restarted program re-enters the
  /// outer loops at the saved indices and the inner loop at the saved step, and skips the
  /// loops and phases that were done. The policy counts the steps of the innermost loops
  /// (an iteration that enters no nested loop or phase is one step; a phase with none
  /// inside is one step). On a stop the iteration checkpoints and throws ckpt::Stopped.
  /// The end of a top-level loop or phase saves a final checkpoint (Options::final). A
  /// `break` ends a loop as done. The program must enter the same loops and phases in the
  /// same order as the run that saved the checkpoint (a different name where a saved loop
  /// was running is Error(mismatch)); at most 8 levels. An error (of the restore, a save,
  /// a mismatch) ends the nest: later loops and phases yield nothing. Collective over comm.
  LoopRange loop(const std::string &name, std::int64_t n);
  /// A named phase that runs once (a loop of one iteration, index 0), skipped after a
  /// restart once it was done: `for (auto _ : cp.phase("spin-up")) { ... }`. Collective.
  LoopRange phase(const std::string &name);
  /// The running loops and phases, outermost first, as (name, index) pairs.
  std::vector<std::pair<std::string, std::int64_t>> position() const;
  /// The position saved in the checkpoint restored by the first loop or phase; nothing
  /// before it, or when it started from scratch.
  std::optional<LoopPosition> restored_position() const;
  /// Steps counted by loop() and phase() so far (innermost iterations, restored ones
  /// included): the step of their checkpoints.
  std::int64_t loop_step() const noexcept;

  /// Sets the simulation time saved with checkpoints taken by the loop helper.
  void set_time(double t) noexcept;

  /// Asks the loop helper to checkpoint and stop at the next step boundary. Local and
  /// async-signal-safe to call from anywhere in this process.
  void request_stop() noexcept;

  /// Why the loop helper ended (StopReason::none while it runs).
  StopReason stopped() const noexcept;
  /// 0 when the loop finished, ckpt::exit_more_work when it stopped early after a checkpoint.
  int exit_code() const noexcept;

  /// The step restore() returned, if any.
  std::optional<std::int64_t> restored_step() const noexcept;
  /// Costs measured so far.
  const SaveStats &stats() const noexcept;
  /// The effective options (after the environment was applied).
  const Options &options() const noexcept;
  /// This process's rank and the number of ranks in the communicator.
  int rank() const noexcept;
  int size() const noexcept;

  struct Impl;

private:
  friend class StepRange;
  friend class LoopRange;
  std::unique_ptr<Impl> impl_;
};

/// Restore with fallback, for bindings that load a checkpoint file their own way (the
/// Python package); Checkpointer::restore() follows the same rules. Collective over comm.
/// Calls `restore_one(file)` (collective; throws Error) on the checkpoints of `dir`, newest
/// first, until one loads. Only verified content damage (checksum mismatch, truncation,
/// malformed structure in bytes that read back fine) sets a file aside as `<file>.corrupt`
/// and tries the next older one. An I/O error (the bytes cannot be read on some rank) is
/// retried once, then thrown as Error(io) on every rank, renaming nothing. When nothing can
/// be restored although the directory holds checkpoints (set-aside ones included), it
/// throws Error(no_valid_checkpoint) unless `fresh` (default: CKPT_FRESH) allows starting
/// from scratch. With node-local storage (`local_dir`, default: CKPT_LOCAL_DIR), a newer
/// checkpoint rebuilt from the node-local parts is written into `dir` first.
/// \returns the restored step, or nothing for a fresh start.
std::optional<std::int64_t> restore_newest(MPI_Comm comm, const std::string &dir,
                                           const std::function<std::int64_t(const std::string &)> &restore_one,
                                           std::optional<bool> fresh = std::nullopt,
                                           std::optional<std::string> local_dir = std::nullopt);

/// Range returned by Checkpointer::steps(). Iterating it drives checkpoints.
class StepRange {
public:
  class iterator {
  public:
    using value_type = std::int64_t;
    using difference_type = std::ptrdiff_t;
    std::int64_t operator*() const noexcept { return step_; }
    iterator &operator++();
    bool operator!=(const iterator &o) const noexcept { return !(*this == o); }
    bool operator==(const iterator &o) const noexcept;

  private:
    friend class StepRange;
    iterator(StepRange *r, std::int64_t s, bool end) : range_(r), step_(s), end_(end) {}
    StepRange *range_;
    std::int64_t step_;
    bool end_;
  };
  /// Restores (collective) and returns the first step.
  iterator begin();
  iterator end() { return iterator(this, total_, true); }

private:
  friend class Checkpointer;
  StepRange(Checkpointer &cp, std::int64_t total) : cp_(&cp), total_(total) {}
  Checkpointer *cp_;
  std::int64_t total_;
  bool done_ = false;
};

/// Range returned by Checkpointer::loop() and phase(). Iterating it drives checkpoints
/// and records the position.
class LoopRange {
public:
  class iterator {
  public:
    using value_type = std::int64_t;
    using difference_type = std::ptrdiff_t;
    std::int64_t operator*() const;
    iterator &operator++();
    bool operator!=(const iterator &o) const noexcept { return end_ != o.end_; }
    bool operator==(const iterator &o) const noexcept { return end_ == o.end_; }

  private:
    friend class LoopRange;
    iterator(LoopRange *r, bool end) : range_(r), end_(end) {}
    LoopRange *range_;
    bool end_;
  };
  /// Enters the loop and returns its first index, or end() when it was done before the
  /// restored checkpoint was saved (or a stop or an error ended the nest).
  iterator begin();
  iterator end() { return iterator(this, true); }
  /// Leaving a loop early (`break`) marks it done.
  ~LoopRange();
  LoopRange(const LoopRange &) = delete;
  LoopRange &operator=(const LoopRange &) = delete;

private:
  friend class Checkpointer;
  LoopRange(Checkpointer &cp, std::string name, std::int64_t n, bool phase)
      : cp_(&cp), name_(std::move(name)), n_(n), phase_(phase) {}
  Checkpointer *cp_;
  std::string name_;
  std::int64_t n_;
  bool phase_;
  std::size_t depth_ = 0;
  bool active_ = false; // entered and not yet left
};

} // namespace ckpt
