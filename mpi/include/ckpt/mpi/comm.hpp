#pragma once
// The communicator ckpt works on, and collective agreement on success or failure.

#include <ckpt/error.hpp>

#include <mpi.h>

#include <cstdint>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace ckpt::mpi {

/// Throws Error(mpi) with the MPI error string when `rc` is not MPI_SUCCESS.
/// `what` says what ckpt was doing, e.g. "allreduce of save status".
void check(int rc, const char *what, int rank = -1);

/// A move-only handle that owns a duplicate of the user's communicator. Errors of calls on
/// it return (MPI_ERRORS_RETURN) and become ckpt::Error. Never frees WORLD or SELF.
class Comm {
public:
  Comm() = default;
  /// Duplicates `user`. Collective over user.
  explicit Comm(MPI_Comm user);
  ~Comm();
  Comm(Comm &&o) noexcept;
  Comm &operator=(Comm &&o) noexcept;
  Comm(const Comm &) = delete;
  Comm &operator=(const Comm &) = delete;

  MPI_Comm get() const noexcept { return comm_; }
  int rank() const noexcept { return rank_; }
  int size() const noexcept { return size_; }

  void barrier(const char *what) const;
  std::int64_t allreduce_max(std::int64_t v, const char *what) const;
  std::int64_t allreduce_min(std::int64_t v, const char *what) const;
  std::int64_t allreduce_sum(std::int64_t v, const char *what) const;
  double allreduce_max(double v, const char *what) const;
  std::int64_t bcast(std::int64_t v, int root, const char *what) const;
  double bcast(double v, int root, const char *what) const;
  std::string bcast(const std::string &s, int root, const char *what) const;
  /// Concatenation of every rank's vector (sizes may differ), plus each rank's start.
  std::vector<std::uint64_t> allgatherv(const std::vector<std::uint64_t> &v,
                                        std::vector<std::uint64_t> *starts,
                                        const char *what) const;
  /// Point to point: sends `out` to rank `dest` and receives what rank `source` sends
  /// (-1: no such partner). nullopt sent means "nothing: I failed", and is what the
  /// receiver gets then. Any size (sent in pieces of at most 1 GiB).
  std::optional<std::vector<std::byte>> exchange(const std::optional<std::vector<std::byte>> &out, int dest,
                                                 int source, const char *what) const;

private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
};

/// The outcome of one rank's part of a collective operation.
struct Status {
  Errc code = Errc::ok;
  std::string message; ///< without the "ckpt[rank N] " prefix
  bool ok() const noexcept { return code == Errc::ok; }
  static Status from_current_exception(int rank);
};

/// Agrees on the outcome across all ranks: when any rank failed, every rank throws the
/// same Error (the code and message of the lowest failing rank). Collective.
void agree(const Comm &comm, const Status &local);

/// Comm::allgatherv and agree() in the same two collectives: a rank whose `local` status
/// failed sends no vector, and then every rank throws the same Error as agree() would (the
/// failure path costs agree()'s collectives on top). Collective.
std::vector<std::uint64_t> allgatherv_agreed(const Comm &comm, const Status &local, const std::vector<std::uint64_t> &v,
                                             std::vector<std::uint64_t> *starts, const char *what);

/// Root's vector on every rank (Comm::bcast) and root's status in the same two broadcasts:
/// when `root_status` (meaningful on root only) failed, every rank throws root's Error
/// instead. Collective.
std::vector<std::uint64_t> bcast_agreed(const Comm &comm, const Status &root_status, const std::vector<std::uint64_t> &v,
                                        int root, const char *what);

/// Runs `body` and turns any exception into a Status (for agreement afterwards).
template <class F> Status capture(int rank, F &&body) {
  try {
    body();
    return {};
  } catch (...) {
    return Status::from_current_exception(rank);
  }
}

} // namespace ckpt::mpi
