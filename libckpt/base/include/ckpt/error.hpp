#pragma once
/// \file
/// The one exception type of ckpt and its error codes.

#include <stdexcept>
#include <string>

namespace ckpt {

/// What went wrong, in categories a caller can act on.
/// The numeric values are part of the C API (`ckpt_status`) and never change.
enum class Errc : int {
  ok = 0,
  invalid_argument = 1,    ///< bad name, shape, option or call order
  io = 2,                  ///< file system error (open, write, fsync, rename)
  no_space = 3,            ///< the file system is full (ENOSPC, EDQUOT)
  hdf5 = 4,                ///< the HDF5 library reported an error
  mpi = 5,                 ///< an MPI call failed
  corrupt = 6,             ///< checksum mismatch, truncated or unreadable checkpoint
  unsupported_version = 7, ///< checkpoint written by an unknown major format version
  mismatch = 8,            ///< dtype, shape or kind of a field differs from the checkpoint
  rank_count = 9,          ///< per-rank state saved on a different number of ranks
  missing_field = 10,      ///< a registered field is absent from the checkpoint
  no_valid_checkpoint = 11,///< checkpoints exist but none could be restored
  locked = 12,             ///< another job holds the checkpoint directory
  remote = 13,             ///< reserved: failure reported by another rank without a code
  internal = 14,           ///< a bug in ckpt
  restart_limit = 15,      ///< the job was restarted more often than allowed
};

/// Short stable name of an error code, e.g. "corrupt".
const char *errc_name(Errc code) noexcept;

/// The exception thrown by every ckpt call.
///
/// The message has the shape
/// `ckpt[rank 3] restore: checksum mismatch in field 'u' block 3 of run/ckpt-000000001200.h5`.
/// After a collective operation every rank throws the same code and message; `rank()` is
/// the rank where the failure happened first.
class Error : public std::runtime_error {
public:
  Error(Errc code, int rank, const std::string &message);

  /// The category of the failure.
  Errc code() const noexcept { return code_; }
  /// The rank where the failure originated (-1 when not known).
  int rank() const noexcept { return rank_; }
  /// The message without the `ckpt[rank N] ` prefix.
  const std::string &detail() const noexcept { return detail_; }

private:
  Errc code_;
  int rank_;
  std::string detail_;
};

} // namespace ckpt
