#include "dir_lock.hpp"
#include "plan.hpp"
#include "policy.hpp"
#include "restore_fallback.hpp"
#include "async_writer.hpp"
#include "commit.hpp"
#include "job_env.hpp"
#include "signals.hpp"

#include <ckpt/checkpointer.hpp>
#include <ckpt/formats/checkpoint_file.hpp>
#include <ckpt/formats/checksum.hpp>
#include <ckpt/formats/raw_writer.hpp>
#include <ckpt/mpi/comm.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace ckpt {

const char *stop_reason_name(StopReason r) noexcept {
  switch (r) {
  case StopReason::none: return "none";
  case StopReason::finished: return "finished";
  case StopReason::signal: return "signal";
  case StopReason::time_limit: return "time_limit";
  case StopReason::requested: return "requested";
  }
  return "unknown";
}

namespace {

double now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}
double mono() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// Field names become HDF5 dataset names and file-system-safe table names.
void validate_name(const std::string &name, const char *what) {
  auto fail = [&](const char *why) {
    throw Error(Errc::invalid_argument, -1, fmt::format("invalid {} name '{}': {}", what, name, why));
  };
  if (name.empty())
    fail("empty");
  if (name.size() > 255)
    fail("longer than 255 characters");
  if (name == "." || name == ".." || name.find("..") != std::string::npos)
    fail("'..' is not allowed");
  if (name == formats::meta_group)
    fail("reserved for ckpt's own tables");
  for (unsigned char c : name) {
    if (c == '/')
      fail("'/' is not allowed");
    if (c < 0x20 || c == 0x7f)
      fail("control characters are not allowed");
    if (!(std::isalnum(c) || c == '_' || c == '.' || c == '-'))
      fail("use letters, digits, '_', '.' and '-'");
  }
}

std::string human_bytes(std::uint64_t b) {
  if (b >= (1ull << 30))
    return fmt::format("{:.2f} GiB", b / double(1ull << 30));
  if (b >= (1ull << 20))
    return fmt::format("{:.1f} MiB", b / double(1ull << 20));
  if (b >= (1ull << 10))
    return fmt::format("{:.1f} KiB", b / double(1ull << 10));
  return fmt::format("{} B", b);
}

} // namespace

struct Field {
  std::string name;
  Kind kind;
  Dtype dtype;
  void *data = nullptr;
  Block block;   // distributed: global/offset/count/memory/memory_offset
  Shape shape;   // replicated and fixed per-rank values
  std::function<std::pair<void *, Shape>()> get;       // resizable per-rank values
  std::function<void *(const Shape &)> resize;
};

struct Checkpointer::Impl {
  mpi::Comm comm;
  Options opts;
  fs::path dir;
  std::vector<Field> fields;
  std::map<std::string, std::string> metadata;
  bool restore_done = false;     // the loop helper restores once
  bool frozen = false;           // fields were restored into: no more registrations until clear_fields()
  std::int64_t saved_step = -1;  // step of the last successful save() (committed, or staged when async) or restore
  std::optional<std::int64_t> restored;
  SaveStats stats;
  double sim_time = 0;
  StopReason stopped = StopReason::none;
  bool handlers = false;
  detail::DirLock lock; // rank 0: this job owns `dir` while the Checkpointer lives

  // Step-boundary agreement: a nonblocking allreduce started at one call and completed at
  // the next, so the common case costs no synchronisation.
  MPI_Request req = MPI_REQUEST_NULL;
  int send_flags = 0, recv_flags = 0, carry_flags = 0;
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
  void finish_pending() {
    if (req != MPI_REQUEST_NULL) {
      mpi::check(MPI_Wait(&req, MPI_STATUS_IGNORE), "completing the step agreement", rank());
      carry_flags |= recv_flags;
      carry_boundary = req_boundary;
    }
  }
  std::uint64_t registered_bytes() const {
    std::uint64_t b = 0;
    for (const auto &f : fields) {
      if (f.kind == Kind::distributed)
        b += volume(f.block.count) * dtype_size(f.dtype);
      else if (f.kind == Kind::per_rank && f.get)
        b += volume(f.get().second) * dtype_size(f.dtype);
      else
        b += volume(f.shape) * dtype_size(f.dtype);
    }
    return b;
  }
  void append_stats(const std::string &line) const { detail::append_stats_line(dir, line); }

  void save(std::int64_t step, double time);

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
    std::string iter;           // iteration statistics for the stats line
  };
  std::unique_ptr<Pending> pending;
  // Declared before the worker, so they are destroyed after its thread is joined.
  formats::Staging staging;    // async: one copy of this rank's state, reused
  formats::Staging ring;       // sync: ring_slots x ring_slot_bytes, reused
  detail::Worker worker;       // background writer of async saves (no MPI calls)
  std::int64_t boundaries = 0; // should_checkpoint calls so far (equal on all ranks)
  std::int64_t req_boundary = 0, carry_boundary = 0; // the boundary the flags in flight/carried are from
  // Collective: waits for this rank's write of the pending save and commits it.
  void complete_pending();
  void commit(Pending &p);
  mpi::Status no_space_or(const mpi::Status &st, std::uint64_t payload) const;
  std::int64_t restore_file(const std::string &file);
  std::optional<std::int64_t> restore();
};

// ------------------------------------------------------------------------------------------

Checkpointer::Checkpointer(MPI_Comm comm, Options options) : impl_(std::make_unique<Impl>()) {
  auto &m = *impl_;
  m.comm = mpi::Comm(comm);
  // The environment is read on every rank; an error there is agreed on like any other.
  m.collective([&] { m.opts = options.with_env(); });
  m.dir = m.opts.dir;
  if (m.opts.every < 0 || m.opts.keep < 0 || m.opts.seconds < 0)
    throw Error(Errc::invalid_argument, m.rank(), "every, keep and seconds must not be negative");

  double end_time = NAN;
  std::int64_t restarts = 0;
  m.on_root([&] {
    std::error_code ec;
    fs::create_directories(m.dir, ec);
    if (ec)
      throw Error(Errc::io, 0, fmt::format("cannot create checkpoint directory {}: {}", m.dir.string(), ec.message()));
    if (::access(m.dir.c_str(), W_OK | X_OK) != 0)
      throw Error(Errc::io, 0, fmt::format("checkpoint directory {} is not writable: {}", m.dir.string(), std::strerror(errno)));
    // Before anything in the directory is touched: another live job may own its temp files.
    m.lock = detail::DirLock::acquire(m.dir);
    if (!m.lock.warning().empty())
      m.warn(m.lock.warning());
    // Temp files of saves that never committed (a killed job) are garbage.
    for (const auto &e : fs::directory_iterator(m.dir, ec)) {
      const std::string n = e.path().filename().string();
      if (n.rfind(".ckpt-", 0) == 0 && n.size() > 4 && n.compare(n.size() - 4, 4, ".tmp") == 0)
        fs::remove(e.path(), ec);
    }
    if (auto t = detail::job_end_time())
      end_time = *t;
    restarts = detail::job_restart_count();
  });
  m.end_time = m.comm.bcast(end_time, 0, "broadcasting the job end time");
  restarts = m.comm.bcast(restarts, 0, "broadcasting the restart count");
  if (m.opts.max_restarts > 0 && restarts > m.opts.max_restarts)
    throw Error(Errc::restart_limit, 0,
                fmt::format("this job was restarted {} times, more than the cap of {} "
                            "(CKPT_MAX_RESTARTS): stopping instead of requeueing again; check "
                            "the output of the earlier runs for the cause",
                            restarts, m.opts.max_restarts));
  if (restarts > 0)
    m.log(fmt::format("job restart {} (SLURM_RESTART_COUNT)", restarts));
  if (!m.opts.signals.empty()) {
    detail::install_stop_handlers(m.opts.signals);
    m.handlers = true;
  }
  m.history.last_checkpoint = mono();
}

Checkpointer::~Checkpointer() {
  if (!impl_)
    return;
  try {
    impl_->finish_pending();
  } catch (...) {
  }
  // The last async checkpoint becomes durable and committed (collective, like wait()).
  try {
    impl_->complete_pending();
  } catch (const Error &e) {
    impl_->warn(fmt::format("the last asynchronous checkpoint was not committed: {}", e.detail()));
  } catch (...) {
  }
  if (impl_->handlers)
    detail::uninstall_stop_handlers();
}

Checkpointer::Checkpointer(Checkpointer &&) noexcept = default;
Checkpointer &Checkpointer::operator=(Checkpointer &&) noexcept = default;

// ------------------------------------------------------------------------------------------
// Registration (local)

static void check_new(const Checkpointer::Impl &m, const std::string &name) {
  validate_name(name, "field");
  if (m.frozen)
    throw Error(Errc::invalid_argument, m.rank(),
                fmt::format("field '{}' registered after restore(): register all fields first (or "
                            "clear_fields() and register the new set)",
                            name));
  for (const auto &f : m.fields)
    if (f.name == name)
      throw Error(Errc::invalid_argument, m.rank(), fmt::format("field '{}' is already registered", name));
}

void Checkpointer::distributed(const std::string &name, Dtype dtype, void *data, const Block &block) {
  auto &m = *impl_;
  check_new(m, name);
  Block b = block;
  const std::size_t nd = b.global.size();
  auto fail = [&](const std::string &why) {
    throw Error(Errc::invalid_argument, m.rank(), fmt::format("distributed field '{}': {}", name, why));
  };
  if (nd == 0)
    fail("the global shape is empty (use replicated() for scalars)");
  if (b.offset.size() != nd || b.count.size() != nd)
    fail(fmt::format("global shape has {} dimensions but offset has {} and count {}", nd, b.offset.size(), b.count.size()));
  for (std::size_t d = 0; d < nd; ++d)
    if (b.offset[d] + b.count[d] > b.global[d])
      fail(fmt::format("block [{}] + [{}] lies outside the global shape [{}] in dimension {}",
                       fmt::join(b.offset, ","), fmt::join(b.count, ","), fmt::join(b.global, ","), d));
  if (b.memory.empty()) {
    b.memory = b.count;
    b.memory_offset.assign(nd, 0);
  }
  if (b.memory_offset.empty())
    b.memory_offset.assign(nd, 0);
  if (b.memory.size() != nd || b.memory_offset.size() != nd)
    fail("memory and memory_offset must have as many dimensions as the global shape");
  for (std::size_t d = 0; d < nd; ++d)
    if (b.memory_offset[d] + b.count[d] > b.memory[d])
      fail(fmt::format("block does not fit its memory layout in dimension {}", d));
  if (!data && volume(b.count) > 0)
    fail("data is a null pointer");
  m.fields.push_back(Field{name, Kind::distributed, dtype, data, b, {}, {}, {}});
}

void Checkpointer::replicated(const std::string &name, Dtype dtype, void *data, const Shape &shape) {
  auto &m = *impl_;
  check_new(m, name);
  if (!data && volume(shape) > 0)
    throw Error(Errc::invalid_argument, m.rank(), fmt::format("replicated field '{}': data is a null pointer", name));
  m.fields.push_back(Field{name, Kind::replicated, dtype, data, {}, shape, {}, {}});
}

void Checkpointer::per_rank(const std::string &name, Dtype dtype, void *data, const Shape &shape) {
  auto &m = *impl_;
  check_new(m, name);
  if (!data && volume(shape) > 0)
    throw Error(Errc::invalid_argument, m.rank(), fmt::format("per-rank field '{}': data is a null pointer", name));
  m.fields.push_back(Field{name, Kind::per_rank, dtype, data, {}, shape, {}, {}});
}

void Checkpointer::per_rank_resizable(const std::string &name, Dtype dtype,
                                      std::function<std::pair<void *, Shape>()> get,
                                      std::function<void *(const Shape &)> resize) {
  auto &m = *impl_;
  check_new(m, name);
  if (!get || !resize)
    throw Error(Errc::invalid_argument, m.rank(), fmt::format("per-rank field '{}': get and resize are required", name));
  m.fields.push_back(Field{name, Kind::per_rank, dtype, nullptr, {}, {}, std::move(get), std::move(resize)});
}

void Checkpointer::metadata(const std::string &key, const std::string &value) {
  validate_name(key, "metadata key");
  impl_->metadata[key] = value;
}

// ------------------------------------------------------------------------------------------
// Save

void Checkpointer::save(std::int64_t step, double time) { impl_->save(step, time); }

void Checkpointer::Impl::save(std::int64_t step, double time) {
  const double t0 = mono();
  finish_pending();
  complete_pending(); // a new save waits for the previous one to be committed
  const int n = comm.size();
  if (step < 0)
    throw Error(Errc::invalid_argument, rank(), fmt::format("save: step {} is negative", step));

  // 1. This rank's part of every field: where it lies and its checksum. Plus a signature
  //    of the registry that must be equal on all ranks.
  std::vector<formats::FieldWrite> writes(fields.size());
  std::vector<std::uint64_t> mine; // per field: checksum, then kind-specific numbers
  std::string signature = fmt::format("{}|", step);
  collective([&] {
    for (std::size_t i = 0; i < fields.size(); ++i) {
      const Field &f = fields[i];
      auto &w = writes[i];
      w.name = f.name;
      w.kind = f.kind;
      w.dtype = f.dtype;
      const std::size_t elem = dtype_size(f.dtype);
      signature += fmt::format("{}:{}:{}", f.name, int(f.kind), int(f.dtype));
      if (f.kind == Kind::distributed) {
        signature += fmt::format(":{}", fmt::join(f.block.global, "x"));
        w.shape = f.block.global;
        w.write = volume(f.block.count) > 0;
        w.data = f.data;
        w.offset = f.block.offset;
        w.count = f.block.count;
        w.memory = f.block.memory;
        w.memory_offset = f.block.memory_offset;
        mine.push_back(0); // the writer computes it from the bytes it writes
        mine.insert(mine.end(), f.block.offset.begin(), f.block.offset.end());
        mine.insert(mine.end(), f.block.count.begin(), f.block.count.end());
      } else {
        const void *data = f.data;
        Shape shape = f.shape;
        if (f.get) {
          auto [p, s] = f.get();
          data = p;
          shape = s;
          if (!p && volume(s) > 0)
            throw Error(Errc::invalid_argument, rank(), fmt::format("per-rank field '{}' returned a null pointer", f.name));
        }
        const std::uint64_t bytes = volume(shape) * elem;
        // Replicated values are compared across ranks now; per-rank ones are hashed by the writer.
        mine.push_back(f.kind == Kind::replicated ? formats::checksum(data, static_cast<std::size_t>(bytes)) : 0);
        w.data = data;
        w.memory = f.kind == Kind::per_rank ? Shape{volume(shape)} : shape;
        w.memory_offset.assign(w.memory.size(), 0);
        if (f.kind == Kind::replicated) {
          signature += fmt::format(":{}", fmt::join(shape, "x"));
          w.shape = shape;
          w.write = rank() == 0;
          w.offset.assign(shape.size(), 0);
          w.count = shape;
        } else {
          signature += fmt::format(":{}", shape.size());
          mine.push_back(shape.size());
          mine.insert(mine.end(), shape.begin(), shape.end());
          w.write = volume(shape) > 0;
          w.count = Shape{volume(shape)};
        }
      }
      signature += ";";
    }
  });

  // 2. All ranks must have registered the same fields (names, kinds, dtypes, shapes).
  const std::uint64_t sig = formats::checksum(signature.data(), signature.size());
  auto sigs = comm.allgather(sig, "comparing registries");
  for (int r = 0; r < n; ++r)
    if (sigs[static_cast<std::size_t>(r)] != sigs[0])
      throw Error(Errc::invalid_argument, r,
                  fmt::format("save at step {}: rank {} registered different fields (or a different "
                              "step) than rank 0; all ranks must register the same fields in the same order",
                              step, r));

  // 3. Every rank's blocks and checksums, gathered to all ranks (same tables everywhere).
  std::vector<std::uint64_t> starts;
  auto all = comm.allgatherv(mine, &starts, "gathering block tables");
  std::vector<std::size_t> pos(starts.begin(), starts.end());
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const Field &f = fields[i];
    auto &w = writes[i];
    std::uint64_t total = 0;
    for (int r = 0; r < n; ++r) {
      std::size_t &p = pos[static_cast<std::size_t>(r)];
      BlockInfo b;
      b.rank = r;
      b.checksum = all[p++];
      if (f.kind == Kind::distributed) {
        const std::size_t nd = w.shape.size();
        b.offset.assign(all.begin() + long(p), all.begin() + long(p + nd));
        b.count.assign(all.begin() + long(p + nd), all.begin() + long(p + 2 * nd));
        p += 2 * nd;
        b.local_shape = b.count;
        if (volume(b.count) > 0)
          w.blocks.push_back(b);
      } else if (f.kind == Kind::replicated) {
        if (r == 0) {
          b.offset.assign(w.shape.size(), 0);
          b.count = w.shape;
          b.local_shape = w.shape;
          w.blocks.push_back(b);
        } else if (b.checksum != w.blocks[0].checksum) {
          throw Error(Errc::mismatch, r,
                      fmt::format("save at step {}: replicated field '{}' differs between rank 0 and "
                                  "rank {}; use per_rank() for values that differ",
                                  step, f.name, r));
        }
      } else {
        const std::size_t lnd = static_cast<std::size_t>(all[p++]);
        b.local_shape.assign(all.begin() + long(p), all.begin() + long(p + lnd));
        p += lnd;
        b.offset = {total};
        b.count = {volume(b.local_shape)};
        total += b.count[0];
        w.blocks.push_back(b);
        if (r == rank())
          w.offset = b.offset;
      }
    }
    if (f.kind == Kind::per_rank) {
      w.shape = {total};
      for (const auto &b : w.blocks)
        if (b.local_shape.size() != w.blocks[0].local_shape.size())
          throw Error(Errc::mismatch, b.rank,
                      fmt::format("save: per-rank field '{}' has {} dimensions on rank {} but {} on rank 0",
                                  f.name, b.local_shape.size(), b.rank, w.blocks[0].local_shape.size()));
    }
    if (f.kind == Kind::distributed) {
      // The blocks must tile the global array: same total, no overlap.
      std::uint64_t covered = 0;
      for (const auto &b : w.blocks)
        covered += volume(b.count);
      const bool overlap = detail::find_overlap(w.blocks).has_value(); // any number of blocks
      if (overlap || covered != volume(w.shape))
        throw Error(Errc::invalid_argument, 0,
                    fmt::format("save: the blocks of distributed field '{}' do not tile its global "
                                "shape [{}] ({} of {} elements covered{})",
                                f.name, fmt::join(w.shape, ","), covered, volume(w.shape),
                                overlap ? ", blocks overlap" : ""));
    }
  }

  // 4. Rank 0 lays the temp file out (all metadata, raw data regions allocated) and tells
  //    every rank where each dataset's data lies.
  auto p = std::make_unique<Pending>();
  p->step = step;
  p->time = time;
  p->mode = opts.mode;
  p->t0 = t0;
  p->boundary = boundaries;
  p->final_name = checkpoint_file_name(step);
  p->final_path = dir / p->final_name;
  p->tmp_path = dir / ("." + p->final_name + ".tmp");
  p->header = formats::Header{step, time, n, metadata};
  for (const auto &w : writes)
    p->payload += volume(w.shape) * dtype_size(w.dtype);
  {
    // Rank 0's outcome, then (when it succeeded) the layout: the creation time recorded in
    // the file and each dataset's data offset.
    mpi::Status st;
    if (rank() == 0) {
      st = mpi::capture(0, [&] {
        // Never write through a file or link planted at the temp path.
        if (::unlink(p->tmp_path.c_str()) != 0 && errno != ENOENT)
          throw Error(Errc::io, 0, fmt::format("cannot remove stale {}: {}", p->tmp_path.string(), std::strerror(errno)));
        // Refuse up front when the data cannot fit: HDF5 1.10 that fails to flush a file while
        // closing it (ENOSPC) leaves a half-destroyed file that crashes the process at exit
        // (found by tests/faults/full_disk.py). Only the metadata written here is exposed.
        struct statvfs vfs {};
        if (::statvfs(dir.c_str(), &vfs) == 0 &&
            double(vfs.f_bavail) * double(vfs.f_frsize) < double(p->payload) + double(64 << 10))
          throw Error(Errc::no_space, 0,
                      fmt::format("no space left in {} for a checkpoint of {} ({} free): free space there, "
                                  "lower CKPT_KEEP, or point CKPT_DIR elsewhere",
                                  dir.string(), human_bytes(p->payload),
                                  human_bytes(static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize)));
        p->layout = formats::create_file(p->tmp_path.string(), p->header, writes);
      });
      if (!st.ok() && st.code == Errc::hdf5)
        st = no_space_or(st, p->payload);
      if (!st.ok())
        ::unlink(p->tmp_path.c_str());
    }
    st = mpi::bcast(comm, st, 0, "broadcasting the outcome of creating the checkpoint file");
    if (!st.ok())
      throw Error(st.code, 0, st.message);
    p->layout.created = comm.bcast(p->layout.created, 0, "broadcasting the checkpoint layout");
    p->layout.data_offset = comm.bcast(p->layout.data_offset, 0, "broadcasting the checkpoint layout");
    if (p->layout.data_offset.size() != writes.size())
      throw Error(Errc::internal, 0, "the checkpoint layout does not list every field");
  }

  // 5. Every rank writes its bytes at those offsets. Block checksums of distributed and
  //    per-rank fields are computed from the bytes as they are written (the snapshot).
  std::vector<bool> hashed(fields.size());
  for (std::size_t i = 0; i < fields.size(); ++i)
    hashed[i] = fields[i].kind != Kind::replicated;
  p->plan = formats::plan_writes(writes, p->layout, hashed);
  const detail::Fault f_write = detail::fault_action("write", rank()), f_fsync = detail::fault_action("fsync", rank());
  if (history.iter_count > 0)
    p->iter = fmt::format(",\"iterations\":{},\"iteration_seconds\":{:.9g}", history.iter_count,
                          history.iter_sum / double(history.iter_count));
  history.iter_sum = 0;
  history.iter_count = 0;
  if (opts.mode == Mode::sync) {
    p->status = mpi::capture(rank(), [&] {
      detail::fault_apply(f_write, "write", rank());
      // Rank 0 fsyncs the file once, after writing the checksums into it (commit).
      p->digests = formats::write_streaming(p->tmp_path.string(), p->plan, ring, rank() != 0);
      detail::fault_apply(f_fsync, "fsync", rank());
    });
    p->write_end = mono();
    p->blocked = -1; // the whole save, set at commit
    p->writes = std::move(writes);
    commit(*p);
    saved_step = step;
    return;
  }
  // Async: copy the state into the reused staging memory; the background thread writes it.
  p->status = mpi::capture(rank(), [&] { formats::snapshot(p->plan, staging); });
  p->writes = std::move(writes);
  p->blocked = mono() - t0;
  stats.seconds += p->blocked;
  stats.last_seconds = p->blocked;
  pending = std::move(p);
  history.last_checkpoint = mono();
  saved_step = step; // staged; committed (or its error thrown) by a later collective call
  if (!pending->status.ok()) {
    pending->write_end = mono();
    return; // reported at the commit, on every rank
  }
  Pending *job = pending.get();
  const int me = rank();
  worker.submit([this, job, me, f_write, f_fsync] {
    job->status = mpi::capture(me, [&] {
      detail::fault_apply(f_write, "write", me);
      job->digests = formats::write_snapshot(job->tmp_path.string(), job->plan, staging);
      detail::fault_apply(f_fsync, "fsync", me);
    });
    job->write_end = mono();
  });
}

mpi::Status Checkpointer::Impl::no_space_or(const mpi::Status &st, std::uint64_t payload) const {
  struct statvfs vfs {};
  if (::statvfs(dir.c_str(), &vfs) == 0 && double(vfs.f_bavail) * vfs.f_frsize < double(payload) + (1 << 20))
    return {Errc::no_space, fmt::format("no space left in {} for a checkpoint of {} ({})", dir.string(),
                                        human_bytes(payload), st.message)};
  return st;
}

void Checkpointer::Impl::complete_pending() {
  if (!pending)
    return;
  worker.wait();
  std::unique_ptr<Pending> p = std::move(pending);
  commit(*p);
}

void Checkpointer::Impl::commit(Pending &p) {
  const std::int64_t step = p.step;
  const std::string &final_name = p.final_name;
  const fs::path &final_path = p.final_path;
  const fs::path &tmp_path = p.tmp_path;
  const int n = comm.size();
  auto cleanup_tmp = [&] {
    if (rank() == 0)
      ::unlink(tmp_path.c_str());
  };

  // Every rank's data is durable (or its error is known): agree, then gather the checksums
  // and timings, and rank 0 writes the checksums into the file.
  mpi::Status status = p.status;
  if (!status.ok() && (status.code == Errc::io || status.code == Errc::hdf5))
    status = no_space_or(status, p.payload);
  try {
    mpi::agree(comm, status);
  } catch (...) {
    cleanup_tmp();
    throw;
  }
  // Each rank's timings (one typed message), then its block checksums.
  struct Timings {
    double durable; // seconds from the start of save() until this rank's data was durable
    double blocked; // seconds save() blocked this rank
  };
  double durable = 0, blocked = 0;
  for (const auto &t : comm.allgather_message(Timings{p.write_end - p.t0, p.blocked}, "gathering save timings")) {
    durable = std::max(durable, t.durable);
    blocked = std::max(blocked, t.blocked);
  }
  std::vector<std::uint64_t> mine(p.writes.size(), 0);
  for (std::size_t i = 0; i < p.writes.size() && i < p.digests.size(); ++i)
    mine[i] = p.digests[i];
  std::vector<std::uint64_t> starts;
  const auto all = comm.allgatherv(mine, &starts, "gathering checksums");
  for (std::size_t i = 0; i < p.writes.size(); ++i) {
    if (p.writes[i].kind == Kind::replicated) // the fields may have changed since the save
      continue;
    for (auto &b : p.writes[i].blocks)
      b.checksum = all[starts[static_cast<std::size_t>(b.rank)] + i];
  }
  try {
    on_root([&] {
      formats::finish_file(tmp_path.string(), p.header, p.writes, p.layout);
      detail::fsync_path(tmp_path.string(), false);
    });
  } catch (...) {
    cleanup_tmp();
    throw;
  }

  // 6. Commit: rename into place, fsync the directory, then move the LATEST pointer.
  try {
    on_root([&] { detail::publish(dir, tmp_path, final_name); });
  } catch (...) {
    cleanup_tmp();
    throw;
  }

  // 7. Retention: keep the newest `keep` checkpoints up to this step. Failures only warn.
  if (rank() == 0)
    for (const auto &w : detail::prune(dir, opts.keep, step))
      warn(w);

  // When save (or the commit) returns, every rank sees the directory as rank 0 left it.
  comm.barrier("finishing the commit");
  // Counted once committed: a failed save leaves the statistics (and every=auto) as they were.
  stats.saves++;
  stats.bytes += p.payload;
  stats.last_bytes = p.payload;
  stats.last_step = step;
  const double secs = mono() - p.t0;
  if (p.mode == Mode::sync) {
    stats.seconds += secs;
    stats.last_seconds = secs;
    blocked = secs;
  }
  history.record_save(std::max(durable, p.mode == Mode::sync ? secs : 0.0), blocked);
  if (p.mode == Mode::sync)
    history.last_checkpoint = mono();
  progress("saved", step);
  if (rank() == 0) {
    const double dur = p.mode == Mode::sync ? secs : durable;
    const double gbps = dur > 0 ? p.payload / dur / 1e9 : 0;
    if (p.mode == Mode::sync)
      log(fmt::format("step {} saved: {} in {:.3f} s ({:.2f} GB/s) -> {}", step, human_bytes(p.payload), secs, gbps,
                      final_path.string()));
    else
      log(fmt::format("step {} saved (async): {}, blocked {:.3f} s, durable after {:.3f} s ({:.2f} GB/s) -> {}", step,
                      human_bytes(p.payload), blocked, dur, gbps, final_path.string()));
    append_stats(fmt::format("{{\"event\":\"save\",\"step\":{},\"time\":{:.17g},\"unix\":{:.3f},\"nranks\":{},"
                             "\"bytes\":{},\"blocked_seconds\":{:.6f},\"durable_seconds\":{:.6f},"
                             "\"gbps\":{:.4f},\"mode\":\"{}\"{},\"file\":\"{}\"}}",
                             step, p.time, now(), n, p.payload, blocked, dur, gbps,
                             p.mode == Mode::sync ? "sync" : "async", p.iter, final_name));
  }
}

// ------------------------------------------------------------------------------------------
// Restore

void Checkpointer::wait() {
  auto &m = *impl_;
  m.finish_pending();
  m.complete_pending();
}

std::int64_t Checkpointer::restore_from(const std::string &file) {
  auto &m = *impl_;
  m.finish_pending();
  m.complete_pending();
  std::int64_t step = m.restore_file(file);
  m.restore_done = true;
  m.frozen = true;
  m.restored = step;
  m.saved_step = step;
  m.progress("restored", step);
  return step;
}

std::optional<std::int64_t> Checkpointer::restore() {
  auto &m = *impl_;
  m.finish_pending();
  m.complete_pending();
  auto r = m.restore();
  m.restore_done = true;
  m.frozen = true;
  m.restored = r;
  if (r)
    m.saved_step = *r;
  m.progress("restored", r);
  return r;
}

std::int64_t Checkpointer::Impl::restore_file(const std::string &file) {
  const double t0 = mono();
  std::optional<formats::Reader> reader;
  collective([&] { reader.emplace(file, comm.get()); });
  const CheckpointInfo &info = reader->info();
  const int n = comm.size();

  // Does the checkpoint fit what the application registered? (Same answer on all ranks,
  // except for per-rank shapes, hence the agreement.)
  std::vector<const FieldInfo *> saved(fields.size());
  collective([&] {
    auto step = std::optional<std::int64_t>();
    const std::string base = fs::path(file).filename().string();
    if (base.rfind("ckpt-", 0) == 0 && base != checkpoint_file_name(info.step))
      throw Error(Errc::corrupt, -1, fmt::format("{} holds step {}, not the step its name says", file, info.step));
    for (std::size_t i = 0; i < fields.size(); ++i) {
      const Field &f = fields[i];
      const FieldInfo *fi = info.field(f.name);
      if (!fi)
        throw Error(Errc::missing_field, -1, fmt::format("restore: field '{}' is not in {}; it holds: {}", f.name, file,
                                                          [&] {
                                                            std::string s;
                                                            for (const auto &x : info.fields)
                                                              s += (s.empty() ? "" : ", ") + x.name;
                                                            return s.empty() ? std::string("no fields") : s;
                                                          }()));
      if (fi->kind != f.kind)
        throw Error(Errc::mismatch, -1, fmt::format("restore: field '{}' is {} in {} but registered as {}", f.name,
                                                     kind_name(fi->kind), file, kind_name(f.kind)));
      if (fi->dtype != f.dtype)
        throw Error(Errc::mismatch, -1, fmt::format("restore: field '{}' is {} in {} but registered as {}", f.name,
                                                     dtype_name(fi->dtype), file, dtype_name(f.dtype)));
      if (f.kind == Kind::distributed && fi->shape != f.block.global)
        throw Error(Errc::mismatch, -1, fmt::format("restore: field '{}' has global shape [{}] in {} but [{}] is registered",
                                                     f.name, fmt::join(fi->shape, ","), file, fmt::join(f.block.global, ",")));
      if (f.kind == Kind::replicated && fi->shape != f.shape)
        throw Error(Errc::mismatch, -1, fmt::format("restore: field '{}' has shape [{}] in {} but [{}] is registered",
                                                     f.name, fmt::join(fi->shape, ","), file, fmt::join(f.shape, ",")));
      if (f.kind == Kind::per_rank) {
        if (info.nranks != n)
          throw Error(Errc::rank_count, -1,
                      fmt::format("restore: per-rank field '{}' was saved by {} ranks in {}, this run has {}; "
                                  "per-rank values can only be restored on the same number of ranks (store "
                                  "arrays that should be resharded as distributed fields)",
                                  f.name, info.nranks, file, n));
        const auto &b = fi->blocks[static_cast<std::size_t>(rank())];
        if (!f.get && b.local_shape != f.shape)
          throw Error(Errc::mismatch, -1, fmt::format("restore: per-rank field '{}' of rank {} has shape [{}] in {} but [{}] is registered",
                                                       f.name, rank(), fmt::join(b.local_shape, ","), file, fmt::join(f.shape, ",")));
      }
      saved[i] = fi;
    }
    (void)step;
  });

  // New decomposition of every distributed field, to decide who verifies which saved block.
  std::vector<std::uint64_t> mine;
  for (const auto &f : fields)
    if (f.kind == Kind::distributed) {
      mine.insert(mine.end(), f.block.offset.begin(), f.block.offset.end());
      mine.insert(mine.end(), f.block.count.begin(), f.block.count.end());
    }
  std::vector<std::uint64_t> starts;
  auto all = comm.allgatherv(mine, &starts, "gathering the new decomposition");

  std::uint64_t bytes = 0;
  std::string damage;
  Errc damage_code = Errc::corrupt; // io when a read failed (storage, not content)
  collective([&] {
    std::size_t dist_pos = 0; // position of this field in each rank's `mine`
    for (std::size_t i = 0; i < fields.size(); ++i) {
      Field &f = fields[i];
      const FieldInfo &fi = *saved[i];
      const std::size_t elem = dtype_size(f.dtype);
      if (f.kind == Kind::distributed) {
        const std::size_t nd = fi.shape.size();
        // Contiguous datasets are read with pread/O_DIRECT at their offset (the same on
        // every rank, so either all ranks or none take part in the collective H5Dread),
        // hashing the bytes on the way.
        std::optional<std::uint64_t> read_sum;
        if (const std::uint64_t raw = reader->raw_offset(fi); raw != formats::Layout::no_offset) {
          formats::FieldWrite fw;
          fw.name = f.name;
          fw.kind = f.kind;
          fw.dtype = f.dtype;
          fw.shape = fi.shape;
          fw.write = volume(f.block.count) > 0;
          fw.data = f.data;
          fw.offset = f.block.offset;
          fw.count = f.block.count;
          fw.memory = f.block.memory;
          fw.memory_offset = f.block.memory_offset;
          formats::Layout lay;
          lay.data_offset = {raw};
          const auto plan = formats::plan_writes({fw}, lay, {true});
          // A short or unreadable file fails on some ranks only: note it and go on, so
          // every rank still takes part in the collective reads of the other fields.
          try {
            read_sum = formats::read_streaming(file, plan, ring)[0];
          } catch (const Error &e) {
            if (damage.empty()) {
              damage = e.detail();
              damage_code = e.code() == Errc::corrupt ? Errc::corrupt : Errc::io;
            }
          }
        } else {
          reader->read(fi, f.block.offset, f.block.count, volume(f.block.count) ? f.data : nullptr, f.block.memory,
                       f.block.memory_offset, true);
        }
        bytes += volume(f.block.count) * elem;
        // Saved blocks that some rank now holds exactly are verified by that rank from
        // what it read; the others are read again by rank (block % n) just to check them.
        for (std::size_t k = 0; k < fi.blocks.size(); ++k) {
          const auto &b = fi.blocks[k];
          int holder = -1;
          for (int r = 0; r < n && holder < 0; ++r) {
            const std::uint64_t *p = &all[starts[static_cast<std::size_t>(r)] + dist_pos];
            if (std::equal(b.offset.begin(), b.offset.end(), p) && std::equal(b.count.begin(), b.count.end(), p + nd))
              holder = r;
          }
          const int checker = holder >= 0 ? holder : static_cast<int>(k % static_cast<std::size_t>(n));
          if (checker != rank())
            continue;
          std::uint64_t sum;
          if (holder >= 0) {
            sum = read_sum ? *read_sum
                           : formats::checksum_block(f.data, f.block.memory, f.block.memory_offset, f.block.count, elem);
          } else {
            std::vector<std::byte> tmp(static_cast<std::size_t>(volume(b.count) * elem));
            reader->read(fi, b.offset, b.count, tmp.data(), b.count, Shape(nd, 0), false);
            sum = formats::checksum(tmp.data(), tmp.size());
          }
          if (sum != b.checksum && damage.empty())
            damage = fmt::format("checksum mismatch in field '{}' block {} of {}", f.name, k, file);
        }
        dist_pos += 2 * nd;
      } else if (f.kind == Kind::replicated) {
        reader->read(fi, Shape(fi.shape.size(), 0), fi.shape, f.data ? f.data : nullptr, fi.shape,
                     Shape(fi.shape.size(), 0), true);
        const auto sum = formats::checksum(f.data, static_cast<std::size_t>(volume(fi.shape) * elem));
        if (sum != fi.blocks.at(0).checksum && damage.empty())
          damage = fmt::format("checksum mismatch in field '{}' block 0 of {}", f.name, file);
      } else {
        const auto &b = fi.blocks[static_cast<std::size_t>(rank())];
        void *dst = f.get ? f.resize(b.local_shape) : f.data;
        reader->read(fi, b.offset, b.count, volume(b.count) ? dst : nullptr, b.count, Shape{0}, true);
        bytes += volume(b.count) * elem;
        const auto sum = formats::checksum(dst, static_cast<std::size_t>(volume(b.count) * elem));
        if (sum != b.checksum && damage.empty())
          damage = fmt::format("checksum mismatch in field '{}' block {} of {}", f.name, rank(), file);
      }
    }
    // Damage is reported only after every rank took part in every collective read.
    if (!damage.empty())
      throw Error(damage_code, -1, damage);
  });
  collective([&] { reader->close(); });
  sim_time = info.time;
  const double secs = mono() - t0;
  const std::int64_t total = comm.allreduce_sum(static_cast<std::int64_t>(bytes), "summing restored bytes");
  log(fmt::format("restored step {} from {} ({} in {:.3f} s, saved on {} ranks, now {})", info.step, file,
                  human_bytes(static_cast<std::uint64_t>(total)), secs, info.nranks, n));
  if (rank() == 0)
    append_stats(fmt::format("{{\"event\":\"restore\",\"step\":{},\"unix\":{:.3f},\"nranks\":{},\"saved_nranks\":{},"
                             "\"bytes\":{},\"seconds\":{:.6f},\"file\":\"{}\"}}",
                             info.step, now(), n, info.nranks, total, secs, fs::path(file).filename().string()));
  history.last_checkpoint = mono();
  return info.step;
}

std::optional<std::int64_t> Checkpointer::Impl::restore() {
  return detail::restore_with_fallback(
      comm, dir.string(), opts.fresh, [&](const std::string &file) { return restore_file(file); },
      [&](const std::string &msg) { warn(msg); });
}

// ------------------------------------------------------------------------------------------
// Policy and loop helper

bool Checkpointer::should_checkpoint(std::int64_t step) {
  auto &m = *impl_;
  m.progress("step", step);
  const double t = mono();
  ++m.boundaries;
  m.history.record_boundary(t);
  // What this rank saw: signals and request_stop() (any rank), the clock (rank 0 only).
  int local = detail::stop_flags(detail::stop_signal());
  if (m.rank() == 0) {
    if (m.history.saves == 0 && (m.opts.every_auto || !std::isnan(m.end_time)))
      m.history.state_bytes = m.registered_bytes() * static_cast<std::uint64_t>(m.comm.size());
    local |= detail::clock_flags(m.opts, m.history, t, now(), m.end_time);
  }
  // The step agreement: the OR of every rank's flags, started here and completed at the
  // next boundary (so the common case waits for nothing). `agreed` holds the flags of the
  // boundary `from`.
  int agreed = m.carry_flags;
  std::int64_t from = m.carry_boundary;
  m.carry_flags = 0;
  m.carry_boundary = 0;
  if (m.req != MPI_REQUEST_NULL) {
    mpi::check(MPI_Wait(&m.req, MPI_STATUS_IGNORE), "completing the step agreement", m.rank());
    agreed |= m.recv_flags;
    from = m.req_boundary;
  }
  // An async save is committed once every rank reported at a boundary after it that its
  // background write is done. All ranks see the same flags: they commit together, and a
  // failed background write throws here on every rank.
  if (m.pending && from > m.pending->boundary && !(agreed & detail::flag_write_pending))
    m.complete_pending();
  if (m.pending && !m.worker.done())
    local |= detail::flag_write_pending;
  m.send_flags = local;
  m.req_boundary = m.boundaries;
  mpi::check(MPI_Iallreduce(&m.send_flags, &m.recv_flags, 1, MPI_INT, MPI_BOR, m.comm.get(), &m.req),
             "starting the step agreement", m.rank());
  // The same flags on every rank: the same decision (policy.hpp).
  const auto d = detail::decide(m.opts, step, agreed, m.saved_step, m.stopped);
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

std::optional<std::int64_t> Checkpointer::restored_step() const noexcept { return impl_->restored; }
const SaveStats &Checkpointer::stats() const noexcept { return impl_->stats; }
const Options &Checkpointer::options() const noexcept { return impl_->opts; }
int Checkpointer::rank() const noexcept { return impl_->comm.rank(); }
int Checkpointer::size() const noexcept { return impl_->comm.size(); }

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
  if (last || m.stopped != StopReason::none)
    wait(); // leaving the loop: the last checkpoint must be durable (async mode)
  m.history.last_boundary = mono();
  if (last) {
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

void Checkpointer::clear_fields() {
  impl_->fields.clear();
  impl_->frozen = false;
}

std::optional<std::int64_t> Checkpointer::saved_step() const noexcept {
  if (impl_->saved_step < 0)
    return std::nullopt;
  return impl_->saved_step;
}

std::optional<std::int64_t> Checkpointer::pending_step() const noexcept {
  return impl_->pending ? std::optional<std::int64_t>(impl_->pending->step) : std::nullopt;
}

} // namespace ckpt
