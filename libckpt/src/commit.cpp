#include "commit.hpp"

#include <ckpt/catalog.hpp>
#include <ckpt/error.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

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

void publish(const fs::path &dir, const fs::path &tmp, const std::string &final_name) {
  const fs::path final_path = dir / final_name;
  fault_point("rename", 0);
  if (::rename(tmp.c_str(), final_path.c_str()) != 0)
    throw Error(Errc::io, 0, fmt::format("cannot rename {} to {}: {}", tmp.string(), final_path.string(),
                                         std::strerror(errno)));
  fsync_path(dir.string(), true);
  fault_point("latest", 0);
  const fs::path latest_tmp = dir / ".LATEST.tmp";
  ::unlink(latest_tmp.c_str());
  // O_EXCL | O_NOFOLLOW: never write through a file or link planted there. The umask
  // decides the mode.
  const int fd = ::open(latest_tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
  if (fd < 0)
    throw Error(Errc::io, 0, fmt::format("cannot write {}: {}", latest_tmp.string(), std::strerror(errno)));
  const std::string line = final_name + "\n";
  const bool ok = ::write(fd, line.data(), line.size()) == ssize_t(line.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(latest_tmp.c_str(), (dir / "LATEST").c_str()) != 0)
    throw Error(Errc::io, 0, fmt::format("cannot update {}: {}", (dir / "LATEST").string(), std::strerror(errno)));
  fsync_path(dir.string(), true);
}

std::vector<std::string> prune(const fs::path &dir, int keep, std::int64_t up_to_step) {
  std::vector<std::string> warnings;
  if (keep <= 0)
    return warnings;
  try {
    fault_point("prune", 0);
    int kept = 0;
    bool removed = false;
    for (const auto &e : list_checkpoints(dir)) {
      if (e.step > up_to_step)
        continue; // a newer checkpoint from another timeline: not ours to delete
      if (++kept <= keep)
        continue;
      std::error_code ec;
      fs::remove(e.path, ec);
      if (ec)
        warnings.push_back(fmt::format("could not delete old checkpoint {}: {}", e.path.string(), ec.message()));
      removed = true;
    }
    if (removed)
      fsync_path(dir.string(), true);
  } catch (const Error &e) {
    warnings.push_back(fmt::format("pruning old checkpoints: {}", e.detail()));
  }
  return warnings;
}

void append_stats_line(const fs::path &dir, const std::string &line) {
  const int fd = ::open((dir / "ckpt-stats.jsonl").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0666);
  std::FILE *f = fd >= 0 ? ::fdopen(fd, "a") : nullptr;
  if (!f) {
    if (fd >= 0)
      ::close(fd);
    return; // statistics are best effort; the checkpoint itself is committed
  }
  std::fprintf(f, "%s\n", line.c_str());
  std::fclose(f);
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
