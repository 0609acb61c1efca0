#include "dir_lock.hpp"

#include <ckpt/error.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <utility>

namespace ckpt::detail {

namespace {

// Who holds the lock, as its holder wrote it ("host pid"), for the error message.
std::string read_holder(int fd) {
  char buf[256] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  std::string s(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\0'))
    s.pop_back();
  for (char &c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      c = '?';
  return s.empty() ? std::string("unknown") : s;
}

// 0 when locked, else the errno of the attempt.
int try_lock(int fd) {
#ifdef F_OFD_SETLK
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;
  if (::fcntl(fd, F_OFD_SETLK, &fl) == 0)
    return 0;
  if (errno != EINVAL)
    return errno;
#endif
  // Kernels or file systems without OFD locks.
  return ::flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno;
}

} // namespace

DirLock DirLock::acquire(const std::filesystem::path &dir) {
  const std::string path = (dir / ".lock").string();
  // O_NOFOLLOW: a symlink planted at .lock is refused, never followed.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
  if (fd < 0)
    throw Error(Errc::io, 0, fmt::format("cannot open the lock file {}: {}", path, std::strerror(errno)));
  DirLock lock;
  const int err = try_lock(fd);
  if (err == EAGAIN || err == EACCES || err == EWOULDBLOCK) {
    const std::string holder = read_holder(fd);
    ::close(fd);
    throw Error(Errc::locked, 0,
                fmt::format("checkpoint directory {} is in use by another job (lock {} held by {}); "
                            "wait for that job to end or give this one a different directory",
                            dir.string(), path, holder));
  }
  if (err != 0) {
    // ENOLCK and friends: the file system (NFS mounted with nolock) cannot lock.
    lock.warning_ = fmt::format("cannot lock {} ({}): the directory is used without a lock; "
                                "make sure no other job writes checkpoints into it",
                                path, std::strerror(err));
    ::close(fd);
    return lock;
  }
  char host[128] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string who = fmt::format("{} pid {}\n", host, static_cast<long>(::getpid()));
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, who.data(), who.size(), 0) != static_cast<ssize_t>(who.size())) {
    // The holder note is only for messages; the lock itself is what counts.
  }
  lock.fd_ = fd;
  return lock;
}

DirLock::~DirLock() {
  if (fd_ >= 0)
    ::close(fd_); // releases the lock; the file stays (removing it would race a new holder)
}

DirLock::DirLock(DirLock &&o) noexcept : fd_(std::exchange(o.fd_, -1)), warning_(std::move(o.warning_)) {}

DirLock &DirLock::operator=(DirLock &&o) noexcept {
  if (this != &o) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    warning_ = std::move(o.warning_);
  }
  return *this;
}

} // namespace ckpt::detail
