#pragma once
// The lock that keeps two jobs from writing checkpoints into one directory at once.

#include <filesystem>
#include <string>

namespace ckpt::detail {

/// An exclusive lock on a checkpoint directory, held through the file `DIR/.lock` for the
/// lifetime of this object (move-only). It is an open-file-description lock (F_OFD_SETLK;
/// flock() where that is not supported), so the kernel drops it when the holder dies, even
/// by SIGKILL: a lock is never stale. It also conflicts between two Checkpointers of one
/// process. On NFS the kernel maps it to NFS byte-range locks (lockd or NFSv4); on a mount
/// without working locks (`nolock`, ENOLCK) the directory is used unlocked with a warning.
class DirLock {
public:
  DirLock() = default;
  /// Takes the lock of `dir` without waiting. Local (rank 0 calls it).
  /// \throws Error(locked) naming the holder when another Checkpointer holds it,
  ///         Error(io) when the lock file cannot be opened.
  static DirLock acquire(const std::filesystem::path &dir);
  ~DirLock();
  DirLock(DirLock &&o) noexcept;
  DirLock &operator=(DirLock &&o) noexcept;
  DirLock(const DirLock &) = delete;
  DirLock &operator=(const DirLock &) = delete;

  bool held() const noexcept { return fd_ >= 0; }
  /// Set when the file system refused locks and the directory is used unlocked.
  const std::string &warning() const noexcept { return warning_; }

private:
  int fd_ = -1;
  std::string warning_;
};

} // namespace ckpt::detail
