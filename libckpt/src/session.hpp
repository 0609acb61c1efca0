#pragma once
// The session: what lives for a Checkpointer's whole run (the communicator duplicate, the
// directory and its lock, the job's end time, stop handlers, the policy history, staging
// memory and the async writer), and the registered field set. Private to libckpt/src; its
// parts are implemented by stage:
//   checkpointer.cpp   the public API, opening the session, registering fields
//   step_boundary.cpp  after each step: policy (policy.cpp), save, on a stop wait until durable
//   loops.cpp          nested loops and phases: the position saved with each checkpoint
//   save.cpp           the save entry points; block tables and the plan checks (plan.cpp)
//   save_small.cpp     a small state: gathered to rank 0, built in memory, written in one call
//   agreement.cpp      rank 0 creates the temp file; every rank learns the layout (typed messages)
//   write.cpp          every rank writes its bytes (sync now, async by the background writer)
//   commit.cpp         every rank durable → checksums into the file, rename, LATEST, retention
//   level_save.cpp     with CKPT_LOCAL_DIR: the node-local commit, partner copies, flushes (levels.hpp)
//   restore.cpp        one file: verify and read into the fields (candidates: restore_fallback.cpp)

#include "async_writer.hpp"
#include "commit.hpp"
#include "dir_lock.hpp"
#include "levels.hpp"
#include "policy.hpp"

#include <ckpt/checkpointer.hpp>
#include <ckpt/formats/checkpoint_file.hpp>
#include <ckpt/formats/raw_writer.hpp>
#include <ckpt/mpi/comm.hpp>

#include <mpi.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ckpt {

namespace fs = std::filesystem;

namespace detail {
/// Wall-clock time, seconds since the epoch.
inline double now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}
/// Monotonic clock, seconds.
inline double mono() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}
/// "1.5 MiB"
std::string human_bytes(std::uint64_t b);
} // namespace detail
using detail::human_bytes;
using detail::mono;
using detail::now;

using Field = FieldSet::Field;

namespace detail {
/// The position of a program in its Checkpointer::loop / phase nest (loops.cpp).
struct LoopNest {
  static constexpr std::size_t max_depth = 8;
  // The field `ckpt.position`: version, depth, top-level done, then per level the name's
  // hash, the index and the count of loops and phases done in the current iteration.
  static constexpr std::size_t words = 3 + 3 * max_depth;
  static constexpr const char *field = "ckpt.position";
  struct Frame {
    std::string name;
    std::int64_t hash = 0;
    std::int64_t n = 0, i = 0;
    std::int64_t done = 0;    // loops and phases finished in the current iteration
    std::int64_t entered = 0; // loops and phases entered in the current iteration
    bool nonleaf = false;     // the current iteration entered a loop or phase
  };
  struct Saved {
    std::int64_t hash = 0, i = 0, done = 0;
  };
  std::array<std::int64_t, words> buf{};
  std::vector<Frame> frames;
  std::int64_t top_done = 0, top_entered = 0;
  std::vector<Saved> replay; // the restored position, until the program is back there
  std::optional<LoopPosition> restored;
  std::int64_t step = 0;
  bool halted = false; // a stop ended the nest

  void encode();
  void decode(const std::string &file);
};
} // namespace detail

/// The write (or read) description of this rank's block of distributed field `f`, stored at
/// global shape `shape`: the same for a save (save.cpp) and a restore's direct read.
inline formats::FieldWrite block_write(const Field &f, const Shape &shape) {
  formats::FieldWrite w;
  w.name = f.name;
  w.kind = f.kind;
  w.dtype = f.dtype;
  w.shape = shape;
  w.write = volume(f.block.count) > 0;
  w.data = f.data;
  w.offset = f.block.offset;
  w.count = f.block.count;
  w.memory = f.block.memory;
  w.memory_offset = f.block.memory_offset;
  w.grid = f.grid;
  return w;
}

struct Checkpointer::Impl {
  mpi::Comm comm;
  Options opts;
  fs::path dir;
  FieldSet fields;               // the registered set (the register-once API)
  std::map<std::string, std::string> metadata;
  bool restore_done = false;     // the loop helper restores once
  bool frozen = false;           // fields were restored into: no more registrations until clear_fields()
  std::int64_t saved_step = -1;  // step of the last successful save() (committed, or staged when async) or restore
  std::optional<std::int64_t> restored;
  // Rank 0: `dir` holds a durable checkpoint of this run (one it committed or restored), so a
  // small save may rename before its fsync (detail::commit_written). Set by the thread that
  // commits, read by the background writer.
  std::atomic<bool> durable_in_dir{false};
  SaveStats stats;
  double sim_time = 0;
  StopReason stopped = StopReason::none;
  std::unique_ptr<detail::LoopNest> nest; // Checkpointer::loop/phase (loops.cpp)
  bool handlers = false;
  detail::DirLock lock; // rank 0: this job owns `dir` while the Checkpointer lives

  // Step-boundary agreement (step_boundary.cpp): at agreement boundaries only, a nonblocking
  // allreduce (MPI_BOR) of [flags, distance] started at one agreement boundary and completed
  // at the next, so the common case waits for nothing. Only rank 0 sends a distance: the
  // number of boundaries from the agreement boundary where it is completed to the next one.
  // Boundaries in between make no MPI call.
  MPI_Request req = MPI_REQUEST_NULL;
  std::array<int, 2> send_msg{}, recv_msg{}; // [flags, distance]
  int carry_flags = 0;
  std::int64_t carry_distance = 0;  // the distance that came with carry_flags
  std::int64_t next_agreement = 1;  // the number of the next agreement boundary (all ranks)
  detail::PolicyHistory history;  // step durations and save costs (policy.hpp), clock mono()
  double end_time = NAN;          // job end, seconds since epoch (rank 0's reading)

  int rank() const { return comm.rank(); }
  void log(const std::string &msg) const {
    if (rank() == 0 && !opts.quiet)
      std::fprintf(stderr, "ckpt: %s\n", msg.c_str());
  }
  // CKPT_PROGRESS: one line per event, for monitors and tests that act on progress.
  void progress(const char *event, std::optional<std::int64_t> step) const {
    if (rank() == 0 && opts.progress) {
      if (step)
        std::fprintf(stderr, "ckpt: progress %s %lld\n", event, static_cast<long long>(*step));
      else
        std::fprintf(stderr, "ckpt: progress %s none\n", event);
    }
  }
  void warn(const std::string &msg) const {
    if (rank() == 0)
      std::fprintf(stderr, "ckpt: warning: %s\n", msg.c_str());
  }
  // Runs `body` on every rank (catching errors), then agrees: all throw or none.
  template <class F> void collective(F &&body) {
    mpi::agree(comm, mpi::capture(rank(), std::forward<F>(body)));
  }
  // Runs `body` on rank 0 only, then agrees.
  template <class F> void on_root(F &&body) {
    mpi::agree(comm, mpi::capture(rank(), [&] {
      if (rank() == 0)
        body();
    }));
  }
  // Collective calls (save, restore, wait) complete the step agreement in flight first; its
  // flags are used at the next agreement boundary.
  void finish_pending() {
    if (req != MPI_REQUEST_NULL) {
      mpi::check(MPI_Wait(&req, MPI_STATUS_IGNORE), "completing the step agreement", rank());
      carry_flags |= recv_msg[0];
      carry_distance = recv_msg[1];
      carry_boundary = req_boundary;
    }
  }
  // The next step boundary is an agreement boundary (after a restore or wait(): all ranks
  // call them at the same boundary).
  void agree_at_next_boundary() { next_agreement = boundaries + 1; }
  void append_stats(const std::string &line) const { detail::append_stats_line(dir, line); }

  void save(const std::vector<Field> &set, std::int64_t step, double time);

  // A save whose data is written (sync) or being written (async) but not yet committed.
  struct Pending {
    std::int64_t step = 0;
    double time = 0;
    Mode mode = Mode::sync;
    formats::Header header;
    std::vector<formats::FieldWrite> writes; // data pointers are stale after save returns
    formats::Layout layout;
    formats::WritePlan plan;
    std::string final_name;
    fs::path tmp_path, final_path;
    std::uint64_t payload = 0;
    double t0 = 0;              // mono() at the start of save
    double blocked = 0;         // seconds save() blocked the application
    double write_end = 0;       // mono() when this rank's data was durable
    std::int64_t boundary = 0;  // should_checkpoint calls made before this save
    mpi::Status status;         // this rank's outcome of snapshot + write + fsync
    std::vector<std::uint64_t> digests;
    std::int64_t iterations = 0; // iterations timed since the previous save (stats line)
    double iteration_seconds = 0; // their mean
    bool small = false;         // save_small.cpp: rank 0 writes and publishes the whole file
    std::vector<std::string> warnings; // rank 0: what pruning could not delete
    bool stats_appended = false; // rank 0: its stats line written by the background writer
  };
  std::unique_ptr<Pending> pending;
  // Declared before the worker, so they are destroyed after its thread is joined.
  formats::Staging staging;    // async: one copy of this rank's state, reused
  formats::Staging ring;       // sync: ring_slots x ring_slot_bytes, reused
  formats::Staging small_data; // save_small: this rank's packed bytes (rank 0: every rank's)
  formats::Staging small_file; // save_small, rank 0: the file image
  formats::FileImage small_image; // save_small, rank 0: the file in HDF5's memory, reused
  formats::WritePlan small_plan;  // save_small: how this rank packs its bytes, and what from
  std::vector<formats::FieldWrite> small_plan_of;
  // Rank 0: fsyncs the directory of a small save while the application's thread (or the
  // async writer) fsyncs the file (detail::commit_written). Declared before `worker`, whose
  // jobs use it, so that it outlives it.
  detail::Worker dir_syncer;
  detail::Worker worker;       // background writer of async saves (no MPI calls)
  // Rank 0: what a sync save leaves to do off the application's thread once committed:
  // close the last descriptors of the checkpoints that pruning unlinked (detail::prune's
  // `deferred`), which frees their blocks, and append the save's statistics line. Waited
  // for before rank 0 writes the next save, so a nearly full disk has the space back by
  // then, and when the Checkpointer closes.
  detail::Worker reaper;
  std::vector<int> reap_fds; // unlinked by prune_in_background, not yet handed to the reaper
  // Rank 0, on the application's thread: retention up to `step` (detail::prune); the pruned
  // files' descriptors wait in reap_fds. Returns prune's warnings.
  std::vector<std::string> prune_in_background(std::int64_t step);
  // Rank 0: hands reap_fds and `stats_line` (if not empty) to the reaper.
  void reap_in_background(std::string stats_line = {});
  std::int64_t boundaries = 0; // should_checkpoint calls so far (equal on all ranks)
  std::int64_t req_boundary = 0, carry_boundary = 0; // the boundary the flags in flight/carried are from (0: none)
  // The stages of save (save.cpp; then save_small.cpp, or agreement.cpp and write.cpp), then
  // the commit (commit.cpp).
  // `previous`: an async small save to commit on the tables' all-reduce (save.cpp).
  std::vector<formats::FieldWrite> block_tables(const std::vector<Field> &fields, std::int64_t step,
                                                Pending *previous = nullptr);
  bool agree_same_tables(std::vector<formats::FieldWrite> &writes, const std::vector<std::uint64_t> &mine,
                         const std::vector<std::size_t> &replicated_at, bool had_tables, bool reuse,
                         const mpi::Status &built, Pending *previous);
  // The block tables of the last save, reused while no rank changes its signature or blocks.
  struct Tables {
    bool valid = false;
    std::vector<std::uint64_t> key;          // this rank's words, without the step and the replicated checksums
    std::vector<formats::FieldWrite> writes; // per field: the agreed shape, blocks and this rank's offset
  } tables;
  std::unique_ptr<Pending> new_pending(std::int64_t step, double time, double t0,
                                       const std::vector<formats::FieldWrite> &writes);
  void save_small(std::unique_ptr<Pending> p, std::vector<formats::FieldWrite> writes);
  std::unique_ptr<Pending> agree_layout(std::unique_ptr<Pending> p, const std::vector<formats::FieldWrite> &writes);
  void write(std::unique_ptr<Pending> p, std::vector<formats::FieldWrite> writes);
  // Collective: waits for this rank's write of the pending save and commits it.
  void complete_pending();
  void commit(Pending &p);
  void commit_small(Pending &p);
  mpi::Status small_outcome(const Pending &p) const;
  void small_committed(const Pending &p);
  // After the commit of `p` (every rank): statistics, the log line, the stats file.
  void committed(const Pending &p, double durable, double blocked);
  // The "save" line of ckpt-stats.jsonl for `p`.
  std::string save_stats_line(const Pending &p, double durable, double blocked) const;
  mpi::Status no_space_or(const mpi::Status &st, std::uint64_t payload) const;
  std::int64_t restore_file(const std::vector<Field> &fields, const std::string &file);
  std::optional<std::int64_t> restore(const std::vector<Field> &fields);
  // After a restore of `set` (or none: r empty): what the session records of it.
  void restored_to(std::optional<std::int64_t> r, const FieldSet &set);

  // Storage levels (CKPT_LOCAL_DIR; levels.hpp, level_save.cpp). Null without a local dir.
  struct Levels {
    fs::path local, run_dir;          // CKPT_LOCAL_DIR, and this run's directory in it
    std::string id;                   // the run id recorded in CKPT_DIR
    detail::Topology topo;            // every rank's node, and the partners
    std::int64_t last_step = -1;      // the newest committed node-local checkpoint
    detail::PartInfo last_part;       // this rank's part of it
    std::int64_t flushed_step = -1;   // the newest checkpoint known to be in CKPT_DIR
    std::int64_t saves = 0;           // node-local checkpoints committed by this session
    std::int64_t flushing = -1;       // the step being flushed in the background (-1: none)
    double flush_start = 0;           // mono() when it started
    detail::PartInfo flush_part;      // this rank's part being flushed
    mpi::Status flush_status;         // its outcome, set by the flush thread
    detail::Worker flusher;           // the flush thread (no MPI calls); joined first
  };
  std::unique_ptr<Levels> levels;
  void open_levels();
  void commit_local(Pending &p);
  void flush_start();
  void flush_finish(bool must);
  void flush_final();
  void close_levels() noexcept;
  // What closing a session does while MPI and HDF5 still work (collective): the pending
  // save committed, node-local storage flushed, HDF5 objects closed, stop handlers
  // removed. Run by the destructor, or by MPI_Finalize for a session still open then
  // (checkpointer.cpp); once.
  void shut_down() noexcept;
  bool shut = false;
};

} // namespace ckpt
