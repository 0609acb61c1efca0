#include "restore_fallback.hpp"

#include "levels.hpp"

#include <ckpt/catalog.hpp>
#include <ckpt/checkpointer.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;

namespace ckpt::detail {

namespace {

// Reads [off, off + len) of fd; the errno of the first failing call, or 0.
int read_range(int fd, std::uint64_t off, std::uint64_t len) {
  std::vector<char> buf(1u << 20);
  while (len > 0) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(len, buf.size()));
    const ssize_t r = ::pread(fd, buf.data(), want, static_cast<off_t>(off));
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    if (r == 0)
      return 0; // end of file: a short file is damage, not an I/O error
    off += static_cast<std::uint64_t>(r);
    len -= static_cast<std::uint64_t>(r);
  }
  return 0;
}

bool is_damage(Errc c) { return c == Errc::corrupt || c == Errc::hdf5; }

} // namespace

void probe_readable(const mpi::Comm &comm, const std::string &file) {
  std::string what;
  int err = 0;
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    err = errno;
    what = "open";
  } else {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      err = errno;
      what = "stat";
    } else {
      const auto size = static_cast<std::uint64_t>(st.st_size);
      const auto n = static_cast<std::uint64_t>(comm.size());
      const auto r = static_cast<std::uint64_t>(comm.rank());
      const std::uint64_t lo = size * r / n, hi = size * (r + 1) / n;
      err = read_range(fd, 0, std::min<std::uint64_t>(size, 64 * 1024));
      if (err == 0)
        err = read_range(fd, lo, hi - lo);
      what = "read";
    }
    ::close(fd);
  }
  // One rank's failure is everyone's: the lowest failing rank's errno is reported.
  const std::int64_t first = comm.allreduce_min(err ? comm.rank() : comm.size(), "probing a checkpoint file");
  if (first == comm.size())
    return;
  const std::int64_t code = comm.bcast(static_cast<std::int64_t>(err), static_cast<int>(first), "probing a checkpoint file");
  const std::string op = comm.bcast(what, static_cast<int>(first), "probing a checkpoint file");
  throw Error(Errc::io, static_cast<int>(first),
              fmt::format("restore: cannot {} {} on rank {}: {} (errno {}); this is a storage error, not "
                          "damage: no checkpoint was set aside; rerun when the file system is back",
                          op, file, first, std::strerror(static_cast<int>(code)), code));
}

std::vector<std::string> set_aside_files(const std::string &dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto &e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("ckpt-", 0) == 0 && n.size() > 11 && n.compare(n.size() - 11, 11, ".h5.corrupt") == 0)
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<std::int64_t> restore_with_fallback(
    const mpi::Comm &comm, const std::string &dir, bool fresh,
    const std::function<std::int64_t(const std::string &)> &restore_one,
    const std::function<void(const std::string &)> &warn, const std::string &local_dir,
    const std::function<void(const std::string &)> &log) {
  std::int64_t lost = -1; // a node-local checkpoint that could not be rebuilt
  if (!local_dir.empty())
    lost = rebuild_from_local(comm, dir, local_dir, warn, log ? log : warn).lost;
  // Rank 0 lists the directory; everyone walks the same list.
  std::string listing;
  mpi::agree(comm, mpi::capture(comm.rank(), [&] {
    if (comm.rank() == 0)
      for (const auto &e : list_checkpoints(dir))
        listing += e.path.string() + "\n";
  }));
  listing = comm.bcast(listing, 0, "broadcasting the checkpoint list");
  std::vector<std::string> files;
  for (std::size_t p = 0, q; (q = listing.find('\n', p)) != std::string::npos; p = q + 1)
    files.push_back(listing.substr(p, q - p));

  std::string reasons;
  for (const auto &file : files) {
    for (int attempt = 0;; ++attempt) {
      try {
        return restore_one(file);
      } catch (const Error &e) {
        // Anything the user must fix (a mismatch, a missing field, ...) is thrown at once.
        if (!is_damage(e.code()) && e.code() != Errc::io)
          throw;
        // Can every rank read the bytes? If not, this is the storage, not the file.
        probe_readable(comm, file);
        if (attempt == 0) {
          // The bytes read back now: a short outage, or damage. Once more to tell.
          warn(fmt::format("retrying {} after: {}", file, e.detail()));
          if (!is_damage(e.code()))
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
          continue;
        }
        if (!is_damage(e.code()))
          throw;
        warn(fmt::format("skipping {}: {}", file, e.detail()));
        reasons += fmt::format("\n  {}: {}", file, e.detail());
        // Set the damaged file aside so it is never listed, pruned against or used again.
        if (comm.rank() == 0) {
          std::error_code ec;
          fs::rename(file, file + ".corrupt", ec);
        }
        comm.barrier("setting a damaged checkpoint aside");
        break;
      }
    }
  }
  // Nothing could be restored. Starting from step 0 must be asked for.
  std::string aside;
  if (comm.rank() == 0)
    for (const auto &f : set_aside_files(dir))
      aside += "\n  " + f;
  aside = comm.bcast(aside, 0, "listing set-aside checkpoints");
  if (files.empty() && aside.empty() && lost < 0)
    return std::nullopt;
  if (fresh) {
    warn(fmt::format("no checkpoint in {} can be restored; starting from scratch as CKPT_FRESH=1 asks "
                     "(the set-aside files are kept){}",
                     dir, aside));
    return std::nullopt;
  }
  if (files.empty() && aside.empty())
    throw Error(Errc::no_valid_checkpoint, 0,
                fmt::format("restore: node-local checkpoints up to step {} were committed, but no node of this "
                            "allocation holds a complete set of their parts, and {} holds no checkpoint (none was "
                            "flushed): refusing to start from scratch; set CKPT_FRESH=1 (or Options::fresh) to do so",
                            lost, dir));
  if (files.empty())
    throw Error(Errc::no_valid_checkpoint, 0,
                fmt::format("restore: {} holds no valid checkpoint, only checkpoints set aside as damaged by "
                            "an earlier run:{}\nrefusing to start from scratch: set CKPT_FRESH=1 (or "
                            "Options::fresh) to do so",
                            dir, aside));
  throw Error(Errc::no_valid_checkpoint, 0,
              fmt::format("restore: none of the {} checkpoints in {} is valid (the registered fields may "
                          "have been partly overwritten); they were set aside as *.corrupt. Set "
                          "CKPT_FRESH=1 to start from scratch:{}",
                          files.size(), dir, reasons));
}

} // namespace ckpt::detail

namespace ckpt {

std::optional<std::int64_t> restore_newest(MPI_Comm comm, const std::string &dir,
                                           const std::function<std::int64_t(const std::string &)> &restore_one,
                                           std::optional<bool> fresh, std::optional<std::string> local_dir) {
  const mpi::Comm c(comm);
  const Options env = Options{}.with_env();
  const bool f = fresh ? *fresh : env.fresh;
  return detail::restore_with_fallback(
      c, dir, f, restore_one,
      [&](const std::string &msg) {
        if (c.rank() == 0)
          std::fprintf(stderr, "ckpt: warning: %s\n", msg.c_str());
      },
      local_dir ? *local_dir : env.local_dir,
      [&](const std::string &msg) {
        if (c.rank() == 0 && !env.quiet)
          std::fprintf(stderr, "ckpt: %s\n", msg.c_str());
      });
}

} // namespace ckpt
