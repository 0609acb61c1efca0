#pragma once
/// \file
/// Settings of a Checkpointer, from code and from the environment.

#include <cstdint>
#include <string>
#include <vector>

namespace ckpt {

/// Exit status of an application that stopped early after a durable checkpoint and has
/// more work left (EX_TEMPFAIL from sysexits.h). The SLURM helper requeues on it.
inline constexpr int exit_more_work = 75;

/// How `save` writes. `sync` returns when the checkpoint is durable; `async` returns after
/// copying the state to staging memory and completes the write in the background.
enum class Mode : int { sync = 0, async = 1 };

/// Settings of a Checkpointer.
///
/// Every field can also be set from the environment, which wins over the value set in
/// code, so a job script can tune a solver without recompiling:
///
/// | variable          | field           | example             |
/// |-------------------|-----------------|---------------------|
/// | CKPT_DIR          | dir             | /scratch/run1/ckpt  |
/// | CKPT_EVERY        | every           | 100 (steps), or auto|
/// | CKPT_SECONDS      | seconds         | 600                 |
/// | CKPT_KEEP         | keep            | 3 (0 keeps all)     |
/// | CKPT_QUIET        | quiet           | 1                   |
/// | CKPT_FINAL        | final           | 0                   |
/// | CKPT_MODE         | mode            | sync or async       |
/// | CKPT_SIGNALS      | signals         | USR1,TERM or none   |
/// | CKPT_MARGIN       | margin_seconds  | 120                 |
/// | CKPT_MAX_RESTARTS | max_restarts    | 50 (0: no cap)      |
/// | CKPT_MTBF         | mtbf_seconds    | 86400 (for every=auto) |
/// | CKPT_PROGRESS     | progress        | 1                   |
/// | CKPT_FRESH        | fresh           | 1                   |
/// | CKPT_LOCAL_DIR    | local_dir       | /dev/shm            |
/// | CKPT_FLUSH_EVERY  | flush_every     | 10                  |
/// | CKPT_AGREE_SECONDS| agree_seconds   | 0.25 (0: every step)|
/// | CKPT_SMALL_BYTES  | small_bytes     | 1048576 (0: never)  |
/// | CKPT_WRITER_CPUS  | writer_any_cpu  | any or inherit      |
struct Options {
  /// Directory that holds the checkpoints (created if missing).
  std::string dir = "checkpoints";
  /// Checkpoint every N steps (0: not by step count).
  std::int64_t every = 0;
  /// Choose the interval from the measured checkpoint cost and `mtbf_seconds` (Young/Daly).
  bool every_auto = false;
  /// Checkpoint when this many seconds passed since the last one (0: not by time).
  double seconds = 0;
  /// Keep the newest K committed checkpoints, delete older ones (0: keep all).
  int keep = 3;
  /// Do not log one line per checkpoint on rank 0.
  bool quiet = false;
  /// Save a checkpoint when the loop helper `steps()` reaches its last step.
  bool final = true;
  /// Synchronous or asynchronous save.
  Mode mode = Mode::sync;
  /// Signals that request "checkpoint and stop" at the next step boundary.
  std::vector<int> signals = default_signals();
  /// Stop when the job's remaining time falls below this many seconds (0: derive the margin
  /// from the measured checkpoint cost). Only used when a job end time is known.
  double margin_seconds = 0;
  /// Refuse to run when SLURM_RESTART_COUNT exceeds this (0: no cap).
  int max_restarts = 0;
  /// Mean time between failures used by `every_auto`.
  double mtbf_seconds = 24 * 3600.0;
  /// Rank 0 prints one line per event to stderr, for monitors and tests that act on the
  /// run's progress: `ckpt: progress step N` at every step boundary, `ckpt: progress saved
  /// N` once checkpoint N is committed and durable, `ckpt: progress restored N` (or
  /// `restored none`) after a restore.
  bool progress = false;
  /// Allow starting from scratch when the directory holds checkpoints but none can be
  /// restored (all were set aside as damaged). Without it restore() refuses with
  /// Errc::no_valid_checkpoint, so weeks of work are never replaced silently by step 0.
  /// Valid checkpoints are still restored when it is set.
  bool fresh = false;
  /// Node-local storage (a node's SSD or /dev/shm). When set, every checkpoint goes there
  /// first: each rank's part on its own node and a copy on a partner rank's node, and only
  /// some are flushed to `dir` on the shared file system (see `flush_every`). A restore
  /// picks the newest checkpoint that can be rebuilt from the parts the nodes still hold, or
  /// the newest one in `dir`. Empty: every checkpoint goes to `dir`.
  std::string local_dir = {};
  /// With `local_dir`: also flush every K-th checkpoint to `dir`, in the background
  /// (0: only at a stop and at the end of the run, which always flush).
  int flush_every = 0;
  /// States of at most this many bytes (all ranks together) are built as one file in
  /// rank 0's memory and written with one call: one create, one write, one fsync, one
  /// rename, one directory fsync. Larger ones are written by every rank at its offsets
  /// (O_DIRECT for large runs). 0: never; at most 1 GiB is used. Not with `local_dir`.
  std::uint64_t small_bytes = 1u << 20;
  /// Seconds of steps between two step agreements, the only step boundaries that make an
  /// MPI call unless they checkpoint: signals, request_stop() and the clock are acted on at
  /// most about two such periods after they happen. Steps slower than this agree at every
  /// boundary; 0 agrees at every boundary. Saves every `every` steps need no agreement.
  double agree_seconds = 0.25;
  /// The background writer of async saves (and of node-local flushes), and the helper
  /// threads of a large sync save (hasher, writers) and of a large restore (readers), and
  /// rank 0's helpers (the small save's directory fsync, freeing pruned checkpoints), may
  /// run on any CPU the process's cpuset allows, instead of inheriting the rank's binding:
  /// an MPI launcher usually binds a rank to one core, and a writer on that core takes
  /// turns with the solver instead of overlapping it. The kernel keeps them inside the
  /// cpuset, so a job's cgroup still confines them to the job's cores. false
  /// (CKPT_WRITER_CPUS=inherit): they keep the rank's binding.
  bool writer_any_cpu = true;

  /// SIGUSR1 and SIGTERM.
  static std::vector<int> default_signals();

  /// Returns a copy with the CKPT_* environment variables applied.
  /// \throws Error(invalid_argument) naming the variable when a value does not parse.
  Options with_env() const;
};

} // namespace ckpt
