#pragma once
// Storage levels (CKPT_LOCAL_DIR): checkpoints go to node-local storage first, each rank's
// part with a copy on a partner node, and are flushed to the shared CKPT_DIR now and then.
//
// A node-local checkpoint is a set of *parts*, one per rank. A part is a sparse image of
// the format v1 file that the save would have written to CKPT_DIR: this rank's bytes at
// their offsets in that file (rank 0's part also holds every byte outside the datasets'
// data: the HDF5 metadata), followed by a trailer that lists those byte ranges with a
// checksum each, the step, the save's id and the node of every rank. Overlaying the parts of
// all ranks gives the v1 file byte for byte: that is what a flush and a rebuild write to
// CKPT_DIR. The parts of a rank and its partner copy are the same bytes under the same name,
// on two different nodes.
//
//   level_parts.cpp    the part file: trailer, listing, copying ranges with checks (no MPI)
//   level_save.cpp     the session's side: topology and partners, the node-local commit,
//                      background and final flushes, clean-up
//   level_rebuild.cpp  restore's side: which node-local set can be rebuilt from the parts
//                      the new allocation holds, and writing it into CKPT_DIR

#include <ckpt/mpi/comm.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace ckpt::detail {

/// A byte range of the v1 file held by a part, with the XXH3-64 of its bytes.
struct PartRange {
  std::uint64_t offset = 0, bytes = 0, checksum = 0;
};

/// What a part's trailer says.
struct PartInfo {
  std::int64_t step = 0;
  std::uint64_t id = 0;           ///< the save's id (its creation time and step, hashed): parts of one save share it
  int nranks = 0, rank = 0;       ///< ranks of the save, and whose part this is
  std::uint64_t image_size = 0;   ///< size of the whole v1 file (rank 0's part; 0 in the others)
  std::vector<PartRange> ranges;  ///< in offset order, each at most part_range_max bytes
  std::vector<std::string> nodes; ///< the node of every rank at the save
  std::string path;               ///< where it was read from (not stored)
};

/// Writes all `bytes` of `data` at offset `off` of `fd` (short writes continued, EINTR
/// retried). \throws Error(no_space) for ENOSPC/EDQUOT, else Error(io), naming `path`.
void pwrite_all(int fd, const void *data, std::uint64_t bytes, std::uint64_t off, const std::string &path);

/// Ranges longer than this are split, so that a range is checked in bounded memory.
inline constexpr std::uint64_t part_range_max = 8u << 20;

/// `ckpt-<step>-r<rank>-<id>.part`, the same for a rank's own part and its partner copy.
std::string part_name(std::int64_t step, int rank, std::uint64_t id);

/// Splits [offset, offset + bytes) into ranges of at most part_range_max (checksums unset).
void add_ranges(std::vector<PartRange> &out, std::uint64_t offset, std::uint64_t bytes);

/// Computes the checksum of every range from the bytes in the open file `fd`, then appends
/// the trailer after the image (or after the last range, if later), truncating anything
/// after it. Does not fsync. With `packed`, also returns the part packed for the partner
/// (see unpack_part), from the same one read.
/// \throws Error(io) naming `path`.
void seal_part(int fd, const std::string &path, PartInfo &info, std::vector<std::byte> *packed = nullptr);

/// Reads and checks the trailer of the part file at `path`.
/// \throws Error(corrupt) when it is missing or damaged, Error(io) when unreadable.
PartInfo read_part(const std::string &path);

/// The committed parts in `dir` (temp files and unreadable trailers are skipped; the latter
/// are reported through `warn`).
std::vector<PartInfo> list_parts(const std::filesystem::path &dir, const std::function<void(const std::string &)> &warn);

/// Copies the ranges of `part` into the open file `fd` at their offsets, checking each
/// range's checksum first. With `verify_after`, reads every range back from `fd` and checks
/// it again. \throws Error(corrupt) on a checksum mismatch, Error(io/no_space) on I/O errors.
void copy_part(const PartInfo &part, int fd, const std::string &fd_path, bool verify_after);

/// Reads every range of `part` and checks its checksum. \throws Error(corrupt/io).
void verify_part(const PartInfo &part);

/// Writes a part in its packed form (seal_part's: a length word, the trailer, the ranges'
/// bytes; what goes to the partner) as a part file at `path`, checking every range, and
/// fsyncs it.
PartInfo unpack_part(const std::vector<std::byte> &packed, const std::string &path);

/// A string as words of a message: its length, then its bytes (8 per word); and back,
/// advancing `at`.
void append_string(std::vector<std::uint64_t> &w, const std::string &s);
std::string read_string(const std::vector<std::uint64_t> &w, std::size_t &at);

/// The node this process runs on: SLURMD_NODENAME, else the host name.
std::string node_name();

/// Where each rank runs and whose part it keeps a copy of. Collective (one all-gather).
struct Topology {
  std::vector<std::string> nodes; ///< per rank
  int partner = -1;               ///< the rank that keeps the copy of this rank's part (-1: none)
  int partner_of = -1;            ///< the rank whose part this rank keeps (-1: none)
  int node_count() const;
};
Topology make_topology(const mpi::Comm &comm);

/// The node-local directory of the run of the shared directory `shared`:
/// LOCAL/ckpt-run-<id>, where id is recorded in shared/.ckpt-run-id.
std::filesystem::path local_run_dir(const std::filesystem::path &local, const std::string &run_id);

/// Restore's side. When a node-local set newer than the newest checkpoint in `shared` can be
/// rebuilt from the parts that the ranks' nodes hold (own parts and partner copies), writes
/// it into `shared` as a committed checkpoint and returns its path. `origin` tells where the
/// newest restorable checkpoint comes from ("node-local + partner copies (node2 lost)", or
/// "the shared copy"). Collective.
struct RebuildResult {
  std::optional<std::string> file;
  std::string origin;
  /// A node-local checkpoint newer than anything in `shared` was committed (ckpt-stats.jsonl
  /// says so) but none newer could be rebuilt: its step, else -1.
  std::int64_t lost = -1;
};
RebuildResult rebuild_from_local(const mpi::Comm &comm, const std::filesystem::path &shared,
                                 const std::filesystem::path &local,
                                 const std::function<void(const std::string &)> &warn,
                                 const std::function<void(const std::string &)> &log);

/// The run id of `shared` (rank 0 reads shared/.ckpt-run-id, creating it when missing).
/// Local; throws Error(io).
std::string run_id(const std::filesystem::path &shared, bool create);

/// Where a checkpoint file about to be restored came from, for the log line (set by the
/// rebuild; "" when unknown).
void note_origin(const std::string &file, const std::string &origin);
std::string origin_of(const std::string &file);

} // namespace ckpt::detail
