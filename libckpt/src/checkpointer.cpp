// The public C++ API of a session: opening it (directory, lock, job environment, stop
// handlers), registering fields, and the accessors. The stages are in the files named in
// session.hpp.
#include "session.hpp"

#include "job_env.hpp"
#include "signals.hpp"

#include <ckpt/formats/checkpoint_file.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cctype>
#include <cmath>
#include <cstring>
#include <hdf5.h>
#include <mutex>
#include <unistd.h>
#include <vector>

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

namespace detail {

std::string human_bytes(std::uint64_t b) {
  if (b >= (1ull << 30))
    return fmt::format("{:.2f} GiB", b / double(1ull << 30));
  if (b >= (1ull << 20))
    return fmt::format("{:.1f} MiB", b / double(1ull << 20));
  if (b >= (1ull << 10))
    return fmt::format("{:.1f} KiB", b / double(1ull << 10));
  return fmt::format("{} B", b);
}

} // namespace detail

namespace {

// Sessions still open when MPI_Finalize is called: a Checkpointer declared in main() after
// MPI_Init is destroyed at `return`, after the MPI_Finalize before it, when no collective
// may run (Open MPI aborts the process, and the last async checkpoint would be lost) and
// parallel HDF5 has shut down. MPI_Finalize first deletes the attributes of MPI_COMM_SELF,
// newest first, while MPI still works (the MPI standard, "Allowing User Functions at
// Process Termination"): the callback of ours closes those sessions there, newest first,
// as their destructors would. It is set after
// HDF5 started (HDF5 sets its own there to shut itself down), so it runs before HDF5's.
std::mutex open_mu;
std::vector<Checkpointer::Impl *> open_sessions; // in the order they were opened
int finalize_key = MPI_KEYVAL_INVALID;

int close_at_finalize(MPI_Comm, int, void *, void *) {
  std::vector<Checkpointer::Impl *> open;
  {
    std::lock_guard lk(open_mu);
    open.swap(open_sessions);
  }
  for (auto it = open.rbegin(); it != open.rend(); ++it)
    (*it)->shut_down();
  return MPI_SUCCESS;
}

void watch_finalize(Checkpointer::Impl *m) {
  std::lock_guard lk(open_mu);
  if (finalize_key == MPI_KEYVAL_INVALID) {
    H5open();
    if (MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, close_at_finalize, &finalize_key, nullptr) != MPI_SUCCESS ||
        MPI_Comm_set_attr(MPI_COMM_SELF, finalize_key, nullptr) != MPI_SUCCESS)
      return; // best effort: without it, close every Checkpointer before MPI_Finalize
  }
  open_sessions.push_back(m);
}

void unwatch_finalize(Checkpointer::Impl *m) {
  std::lock_guard lk(open_mu);
  open_sessions.erase(std::remove(open_sessions.begin(), open_sessions.end(), m), open_sessions.end());
}

} // namespace

Checkpointer::Checkpointer(MPI_Comm comm, Options options) : impl_(std::make_unique<Impl>()) {
  auto &m = *impl_;
  m.comm = mpi::Comm(comm);
  // The environment is read on every rank; an error there is agreed on like any other.
  m.collective([&] { m.opts = options.with_env(); });
  m.dir = m.opts.dir;
  m.worker.any_cpu(m.opts.writer_any_cpu);
  m.reaper.any_cpu(m.opts.writer_any_cpu);
  m.dir_syncer.any_cpu(m.opts.writer_any_cpu);
  // Their jobs (an fsync, closing files) take far longer than waking them: they sleep.
  m.reaper.naps(false);
  m.dir_syncer.naps(false);
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
  m.open_levels();
  m.history.last_checkpoint = mono();
  watch_finalize(&m);
}

void Checkpointer::Impl::shut_down() noexcept {
  if (shut)
    return;
  shut = true;
  try {
    finish_pending();
  } catch (...) {
  }
  // The last async checkpoint becomes durable and committed (collective, like wait()).
  try {
    complete_pending();
  } catch (const Error &e) {
    warn(fmt::format("the last asynchronous checkpoint was not committed: {}", e.detail()));
  } catch (...) {
  }
  // With node-local storage, the newest checkpoint goes to CKPT_DIR (collective too).
  try {
    flush_final();
  } catch (const Error &e) {
    warn(fmt::format("the newest node-local checkpoint was not flushed to {}: {}", dir.string(), e.detail()));
  } catch (...) {
  }
  close_levels();
  reap_in_background(); // then the reaper's destructor waits for it
  small_image.close();
  if (handlers) {
    detail::uninstall_stop_handlers();
    handlers = false;
  }
}

Checkpointer::~Checkpointer() {
  if (!impl_)
    return;
  unwatch_finalize(impl_.get());
  impl_->shut_down(); // nothing left to do when MPI_Finalize closed the session
}

Checkpointer::Checkpointer(Checkpointer &&) noexcept = default;
// Collective when this one holds a session: it is closed as the destructor closes it.
Checkpointer &Checkpointer::operator=(Checkpointer &&other) noexcept {
  if (this != &other) {
    if (impl_) {
      unwatch_finalize(impl_.get());
      impl_->shut_down();
    }
    impl_ = std::move(other.impl_);
  }
  return *this;
}

// ------------------------------------------------------------------------------------------
// Registration (local)

// The register-once API: the session's own field set, closed once restored into.
template <class F> static void register_field(Checkpointer::Impl &m, const std::string &name, F &&add) {
  if (m.frozen)
    throw Error(Errc::invalid_argument, m.rank(),
                fmt::format("field '{}' registered after restore(): register all fields first (or "
                            "clear_fields() and register the new set)",
                            name));
  try {
    add(m.fields);
  } catch (const Error &e) {
    throw Error(e.code(), m.rank(), e.detail()); // the same message, with this rank's number
  }
}

void Checkpointer::distributed(const std::string &name, Dtype dtype, void *data, const Block &block) {
  register_field(*impl_, name, [&](FieldSet &s) { s.distributed(name, dtype, data, block); });
}

void Checkpointer::replicated(const std::string &name, Dtype dtype, void *data, const Shape &shape) {
  register_field(*impl_, name, [&](FieldSet &s) { s.replicated(name, dtype, data, shape); });
}

void Checkpointer::per_rank(const std::string &name, Dtype dtype, void *data, const Shape &shape) {
  register_field(*impl_, name, [&](FieldSet &s) { s.per_rank(name, dtype, data, shape); });
}

void Checkpointer::per_rank_resizable(const std::string &name, Dtype dtype,
                                      std::function<std::pair<void *, Shape>()> get,
                                      std::function<void *(const Shape &)> resize) {
  register_field(*impl_, name, [&](FieldSet &s) { s.per_rank_resizable(name, dtype, std::move(get), std::move(resize)); });
}

void Checkpointer::grid(const std::string &name, const Grid &grid) {
  try {
    impl_->fields.grid(name, grid);
  } catch (const Error &e) {
    throw Error(e.code(), impl_->rank(), e.detail());
  }
}

const FieldSet &Checkpointer::fields() const noexcept { return impl_->fields; }

void Checkpointer::metadata(const std::string &key, const std::string &value) {
  validate_name(key, "metadata key");
  impl_->metadata[key] = value;
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

std::optional<std::int64_t> Checkpointer::restored_step() const noexcept { return impl_->restored; }
const SaveStats &Checkpointer::stats() const noexcept { return impl_->stats; }
const Options &Checkpointer::options() const noexcept { return impl_->opts; }
int Checkpointer::rank() const noexcept { return impl_->comm.rank(); }
int Checkpointer::size() const noexcept { return impl_->comm.size(); }

} // namespace ckpt
