#pragma once
// Restore with fallback: which checkpoint of a directory to load, and what a failed load
// means. Shared by the C++ Checkpointer (and through it the C API) and the Python bindings.
//
// Only verified content damage sets a file aside (renamed to <file>.corrupt): a checksum
// mismatch, a truncated file, or a structure ckpt cannot parse in bytes that read back
// fine. An I/O error (EIO, EACCES, EMFILE, ENOMEM, a failed open, or an HDF5 error caused
// by one) fails the restore on every rank with the same error and renames nothing, so a
// file-server outage at restart never costs the checkpoints. A directory that holds
// checkpoints, set-aside ones included, never starts from scratch silently: that needs
// Options::fresh (CKPT_FRESH=1).

#include <ckpt/error.hpp>
#include <ckpt/mpi/comm.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace ckpt::detail {

/// Collective. Every rank reads its share of `file` (and its first block) with plain POSIX
/// calls. Throws Error(io) on every rank, naming the file, the rank and errno, when any
/// rank cannot open or read it; returns when every rank read its share.
void probe_readable(const mpi::Comm &comm, const std::string &file);

/// Collective. Loads the newest loadable checkpoint of `dir` (rank 0 lists it) with
/// `restore_one` (collective; throws Error, agreed on all ranks). Damaged files are set
/// aside and the next older one is tried; an I/O error is retried once, then thrown.
/// Returns the restored step, or nothing when the directory holds no checkpoint, set-aside
/// ones included (or `fresh` allows starting from scratch).
/// `warn` and `log` are called on every rank with messages for rank 0 to print.
/// With `local_dir` (node-local storage), a node-local checkpoint newer than the newest
/// in `dir` that can be rebuilt from the parts the ranks' nodes hold is first written into
/// `dir` (levels.hpp, rebuild_from_local).
std::optional<std::int64_t> restore_with_fallback(
    const mpi::Comm &comm, const std::string &dir, bool fresh,
    const std::function<std::int64_t(const std::string &)> &restore_one,
    const std::function<void(const std::string &)> &warn, const std::string &local_dir = {},
    const std::function<void(const std::string &)> &log = {});

/// Rank 0's list of set-aside checkpoint files (<name>.h5.corrupt) in dir (local).
std::vector<std::string> set_aside_files(const std::string &dir);

} // namespace ckpt::detail
