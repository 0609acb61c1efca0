#include "commit.hpp"
#include "async_writer.hpp"
#include "session.hpp"

#include <ckpt/catalog.hpp>
#include <ckpt/error.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

namespace fs = std::filesystem;

namespace ckpt::detail {

void fsync_path(const std::string &path, bool directory) {
  int fd = ::open(path.c_str(), (directory ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw Error(Errc::io, -1, fmt::format("cannot open {} to fsync it: {}", path, std::strerror(errno)));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0)
    throw Error(err == ENOSPC || err == EDQUOT ? Errc::no_space : Errc::io, -1,
                fmt::format("fsync of {} failed: {}", path, std::strerror(err)));
}

namespace {

void rename_into_place(const fs::path &tmp, const fs::path &final_path) {
  fault_point("rename", 0);
  if (::rename(tmp.c_str(), final_path.c_str()) != 0)
    throw Error(Errc::io, 0, fmt::format("cannot rename {} to {}: {}", tmp.string(), final_path.string(),
                                         std::strerror(errno)));
}

// Rewrites LATEST in place when it is a plain file of ours (one link): one open and one
// write, where a new file renamed over it costs ~0.2 ms on ext4 (a new inode, and the
// rename over an existing file flushes the new one's data). Returns false when it is not
// there or not a plain file, for the caller to write it the other way.
bool rewrite_latest(const fs::path &latest, const std::string &line) {
  const int fd = ::open(latest.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0)
    return false;
  struct stat st {};
  bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1;
  if (ok)
    ok = ::pwrite(fd, line.data(), line.size(), 0) == ssize_t(line.size()) &&
         (std::uint64_t(st.st_size) == line.size() || ::ftruncate(fd, off_t(line.size())) == 0);
  ::close(fd);
  return ok;
}

void move_latest(const fs::path &dir, const std::string &final_name) {
  fault_point("latest", 0);
  // LATEST is a hint (restore scans the directory and never trusts it), so it is not
  // fsynced: the checkpoint is durable with the rename, and a crash that loses this
  // update leaves LATEST stale, torn or empty, which readers handle. Two fsyncs per commit
  // fewer.
  const std::string line = final_name + "\n";
  const fs::path latest = dir / "LATEST";
  if (rewrite_latest(latest, line))
    return;
  // The first commit, or something else is there: a new file renamed over it.
  const fs::path latest_tmp = dir / ".LATEST.tmp";
  ::unlink(latest_tmp.c_str());
  // O_EXCL | O_NOFOLLOW: never write through a file or link planted there. The umask
  // decides the mode.
  const int fd = ::open(latest_tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
  if (fd < 0)
    throw Error(Errc::io, 0, fmt::format("cannot write {}: {}", latest_tmp.string(), std::strerror(errno)));
  const bool ok = ::write(fd, line.data(), line.size()) == ssize_t(line.size());
  ::close(fd);
  if (!ok || ::rename(latest_tmp.c_str(), latest.c_str()) != 0)
    throw Error(Errc::io, 0, fmt::format("cannot update {}: {}", latest.string(), std::strerror(errno)));
}

} // namespace

void publish(const fs::path &dir, const fs::path &tmp, const std::string &final_name) {
  rename_into_place(tmp, dir / final_name);
  fsync_path(dir.string(), true);
  move_latest(dir, final_name);
}

void commit_written(const fs::path &dir, int fd, const fs::path &tmp, const std::string &final_name,
                    bool rename_first, Fault f_fsync, Worker *dir_syncer) {
  const fs::path final_path = dir / final_name;
  const fs::path *named = &tmp; // where the file is now, removed on failure
  // The directory's fsync on `dir_syncer` (rename first only): its outcome, read once the
  // thread is done; waited for on every way out, error or not.
  std::exception_ptr dir_failure;
  struct Join {
    Worker *w = nullptr;
    ~Join() {
      if (w)
        w->wait();
    }
  } join;
  try {
    if (rename_first) {
      rename_into_place(tmp, final_path);
      named = &final_path;
      if (dir_syncer) {
        dir_syncer->submit([&dir, &dir_failure] {
          try {
            fsync_path(dir.string(), true);
          } catch (...) {
            dir_failure = std::current_exception();
          }
        });
        join.w = dir_syncer;
      }
    }
    if (::fsync(fd) != 0) {
      const int err = errno;
      throw Error(err == ENOSPC || err == EDQUOT ? Errc::no_space : Errc::io, 0,
                  fmt::format("fsync failed for {}: {}", named->string(), std::strerror(err)));
    }
    fault_apply(f_fsync, "fsync", 0);
    if (!rename_first) {
      rename_into_place(tmp, final_path);
      named = &final_path;
    }
    if (join.w) {
      join.w->wait();
      join.w = nullptr;
      if (dir_failure)
        std::rethrow_exception(dir_failure);
    } else {
      fsync_path(dir.string(), true);
    }
  } catch (...) {
    ::unlink(named->c_str());
    throw;
  }
  move_latest(dir, final_name);
}

std::vector<std::string> prune(const fs::path &dir, int keep, std::int64_t up_to_step, std::vector<int> *deferred) {
  std::vector<std::string> warnings;
  if (keep <= 0)
    return warnings;
  try {
    fault_point("prune", 0);
    // The deletions are not fsynced: one lost in a crash only brings back an old, complete
    // checkpoint, which the next save prunes again.
    int kept = 0;
    for (const auto &e : list_checkpoints(dir)) {
      if (e.step > up_to_step)
        continue; // a newer checkpoint from another timeline: not ours to delete
      if (++kept <= keep)
        continue;
      // O_NOFOLLOW: a link named like a checkpoint is removed as a link (nothing to defer).
      const int fd = deferred ? ::open(e.path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) : -1;
      std::error_code ec;
      fs::remove(e.path, ec);
      if (fd >= 0 && !ec)
        deferred->push_back(fd);
      else if (fd >= 0)
        ::close(fd);
      if (ec)
        warnings.push_back(fmt::format("could not delete old checkpoint {}: {}", e.path.string(), ec.message()));
    }
  } catch (const Error &e) {
    warnings.push_back(fmt::format("pruning old checkpoints: {}", e.detail()));
  }
  return warnings;
}

void append_stats_line(const fs::path &dir, const std::string &line) {
  const int fd = ::open((dir / "ckpt-stats.jsonl").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0666);
  if (fd < 0)
    return; // statistics are best effort; the checkpoint itself is committed
  const std::string text = line + "\n";
  [[maybe_unused]] const ssize_t n = ::write(fd, text.data(), text.size()); // one append: lines never interleave
  ::close(fd);
}

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\t': out += "\\t"; break;
    default:
      if (static_cast<unsigned char>(c) < 0x20)
        out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
      else
        out += c;
    }
  }
  return out + '"';
}

Fault fault_action(const char *point, int rank) {
  const char *spec = std::getenv("CKPT_TEST_FAULT");
  if (!spec)
    return Fault::none;
  std::string s(spec);
  const auto at = s.find('@');
  if (at == std::string::npos || s.substr(0, at) != point)
    return Fault::none;
  std::string who = s.substr(at + 1), action = "fail";
  if (auto colon = who.find(':'); colon != std::string::npos) {
    action = who.substr(colon + 1);
    who = who.substr(0, colon);
  }
  if (who != "*" && who != std::to_string(rank))
    return Fault::none;
  return action == "kill" ? Fault::kill : Fault::fail;
}

void fault_apply(Fault f, const char *point, int rank) {
  if (f == Fault::kill)
    ::kill(::getpid(), SIGKILL);
  if (f == Fault::fail)
    throw Error(Errc::io, rank, fmt::format("injected fault at '{}' (CKPT_TEST_FAULT)", point));
}

void fault_point(const char *point, int rank) { fault_apply(fault_action(point, rank), point, rank); }

} // namespace ckpt::detail

namespace ckpt {

// The collective commit of a save whose data every rank has written.
void Checkpointer::Impl::commit(Pending &p) {
  if (p.small) {
    commit_small(p);
    return;
  }
  const std::int64_t step = p.step;
  const std::string &final_name = p.final_name;
  const fs::path &tmp_path = p.tmp_path;
  const int n = comm.size();
  auto cleanup_tmp = [&] {
    if (rank() == 0 || levels) // node-local: every rank has a part of its own
      ::unlink(tmp_path.c_str());
  };

  // Every rank's data is durable (or its error is known). One gather tells every rank the
  // outcome everywhere, each rank's timings and its block checksums; a failure anywhere is
  // thrown on every rank.
  mpi::Status status = p.status;
  if (!status.ok() && (status.code == Errc::io || status.code == Errc::hdf5))
    status = no_space_or(status, p.payload);
  constexpr std::size_t head = 2; // seconds until this rank's data was durable; seconds save() blocked it
  std::vector<std::uint64_t> mine{std::bit_cast<std::uint64_t>(p.write_end - p.t0), std::bit_cast<std::uint64_t>(p.blocked)};
  for (std::size_t i = 0; i < p.writes.size(); ++i)
    mine.push_back(i < p.digests.size() ? p.digests[i] : 0);
  std::vector<std::uint64_t> starts, all;
  try {
    all = mpi::allgatherv_agreed(comm, status, mine, &starts, "gathering the outcome, timings and checksums of the save");
  } catch (...) {
    cleanup_tmp();
    throw;
  }
  double durable = 0, blocked = 0;
  for (int r = 0; r < n; ++r) {
    const std::size_t at = static_cast<std::size_t>(starts[static_cast<std::size_t>(r)]);
    durable = std::max(durable, std::bit_cast<double>(all[at]));
    blocked = std::max(blocked, std::bit_cast<double>(all[at + 1]));
  }
  for (std::size_t i = 0; i < p.writes.size(); ++i) {
    if (p.writes[i].kind == Kind::replicated) // the fields may have changed since the save
      continue;
    for (auto &b : p.writes[i].blocks)
      b.checksum = all[starts[static_cast<std::size_t>(b.rank)] + head + i];
  }

  // 6. Rank 0 commits: the checksums into the file, fsync, rename into place, fsync the
  //    directory, move the LATEST pointer; 7. then retention keeps the newest `keep`
  //    checkpoints up to this step (failures there only warn). The agreement that ends
  //    on_root returns once rank 0 is done, so when save (or the commit) returns every rank
  //    sees the directory as rank 0 left it.
  //    With node-local storage, the node-local commit instead (level_save.cpp).
  std::vector<std::string> prune_warnings;
  if (levels) {
    commit_local(p);
  } else {
    try {
      on_root([&] {
        formats::finish_file(tmp_path.string(), p.header, p.writes, p.layout);
        detail::fsync_path(tmp_path.string(), false);
        detail::publish(dir, tmp_path, final_name);
        durable_in_dir = true;
        prune_warnings = prune_in_background(step);
      });
    } catch (...) {
      cleanup_tmp();
      throw;
    }
  }
  for (const auto &w : prune_warnings)
    warn(w);
  committed(p, durable, blocked);
}

std::vector<std::string> Checkpointer::Impl::prune_in_background(std::int64_t step) {
  // Unlinked, still open: the last close, on the reaper, frees their blocks.
  return detail::prune(dir, opts.keep, step, &reap_fds);
}

void Checkpointer::Impl::reap_in_background(std::string stats_line) {
  if (reap_fds.empty() && stats_line.empty())
    return;
  reaper.submit([this, fds = std::exchange(reap_fds, {}), line = std::move(stats_line)] {
    if (!line.empty()) // first: a pruned file's last close may take milliseconds (discard)
      append_stats(line);
    for (const int fd : fds)
      ::close(fd);
  });
}

void Checkpointer::Impl::committed(const Pending &p, double durable, double blocked) {
  const std::int64_t step = p.step;
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
    if (!opts.quiet) {
      const std::string where = levels ? fmt::format("node-local{} in {}", levels->topo.partner >= 0 || levels->topo.partner_of >= 0 ? " + partner" : "",
                                                     levels->run_dir.string())
                                       : p.final_path.string();
      if (p.mode == Mode::sync)
        log(fmt::format("step {} saved: {} in {:.3f} s ({:.2f} GB/s) -> {}", step, human_bytes(p.payload), secs, gbps,
                        where));
      else
        log(fmt::format("step {} saved (async): {}, blocked {:.3f} s, durable after {:.3f} s ({:.2f} GB/s) -> {}", step,
                        human_bytes(p.payload), blocked, dur, gbps, where));
    }
    // A sync save's line: off the application's thread, with the pruned files' last close.
    // An async small save's line was written by its background writer; an async large
    // save's commit runs at a later call, off the solver's critical path already.
    std::string line = p.stats_appended ? std::string() : save_stats_line(p, dur, blocked);
    const bool sync = p.mode == Mode::sync;
    if (!sync && !line.empty())
      append_stats(line);
    reap_in_background(sync ? std::move(line) : std::string());
  }
}

std::string Checkpointer::Impl::save_stats_line(const Pending &p, double durable, double blocked) const {
  const double gbps = durable > 0 ? p.payload / durable / 1e9 : 0;
  const std::string iter = p.iterations > 0 ? fmt::format(",\"iterations\":{},\"iteration_seconds\":{:.9g}",
                                                          p.iterations, p.iteration_seconds)
                                            : std::string();
  return fmt::format("{{\"event\":\"save\",\"step\":{},\"time\":{:.17g},\"unix\":{:.3f},\"nranks\":{},"
                     "\"bytes\":{},\"blocked_seconds\":{:.6f},\"durable_seconds\":{:.6f},"
                     "\"gbps\":{:.4f},\"mode\":\"{}\"{}{},\"file\":{}}}",
                     p.step, p.time, now(), comm.size(), p.payload, blocked, durable, gbps,
                     p.mode == Mode::sync ? "sync" : "async", iter, levels ? ",\"level\":\"node-local\"" : "",
                     detail::json_string(p.final_name));
}

} // namespace ckpt
