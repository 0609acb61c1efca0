#pragma once
/// \file
/// The checkpoints in a directory, and what one checkpoint file holds.
/// These calls are local (not collective) and need no MPI communicator.

#include <ckpt/types.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ckpt {

/// A committed checkpoint file found in a directory.
struct CatalogEntry {
  std::int64_t step = 0;
  std::filesystem::path path;
};

/// Committed checkpoints in `dir`, newest (highest step) first. Temp files of unfinished
/// saves are never listed. An empty or missing directory gives an empty list.
/// \throws Error(io) when `dir` exists but cannot be read.
std::vector<CatalogEntry> list_checkpoints(const std::filesystem::path &dir);

/// File name of the checkpoint of `step`: "ckpt-000000001200.h5".
std::string checkpoint_file_name(std::int64_t step);

/// The step named by the LATEST pointer in `dir`, if it is present and well formed.
/// The pointer is a hint: restore scans the directory and does not trust it alone.
std::optional<std::int64_t> read_latest(const std::filesystem::path &dir);

/// One block of a field as saved: which rank wrote it, where it lies, its checksum.
struct BlockInfo {
  int rank = 0;
  Shape offset;         ///< in the dataset (the global array for distributed fields)
  Shape count;          ///< extent in the dataset
  Shape local_shape;    ///< the rank's own shape (per-rank fields), else equal to count
  std::uint64_t checksum = 0;
};

/// A field of a checkpoint.
struct FieldInfo {
  std::string name;
  Kind kind = Kind::replicated;
  Dtype dtype = Dtype::u8;
  Shape shape; ///< dataset shape: global shape, value shape, or concatenated per-rank length
  std::vector<BlockInfo> blocks;
};

/// Root attributes and fields of a checkpoint file.
struct CheckpointInfo {
  std::filesystem::path path;
  std::string format;           ///< "ckpt"
  int format_major = 0;
  int format_minor = 0;
  std::string library_version;
  std::int64_t step = 0;
  double time = 0;
  int nranks = 0;
  std::string created;          ///< ISO 8601, UTC
  std::string checksum_algorithm;
  std::map<std::string, std::string> metadata;
  std::vector<FieldInfo> fields;
  std::uint64_t file_bytes = 0;

  /// The field called `name`, or nullptr.
  const FieldInfo *field(const std::string &name) const;
};

/// Reads the metadata of a checkpoint file (no field data).
/// \throws Error(corrupt) for a file that is not a readable ckpt checkpoint,
///         Error(unsupported_version) for an unknown major format version.
CheckpointInfo inspect(const std::filesystem::path &file);

/// Result of verifying a checkpoint file.
struct VerifyReport {
  bool ok = false;
  std::string reason;           ///< empty when ok, else e.g. "checksum mismatch in field 'u' block 3"
  std::uint64_t blocks_checked = 0;
  std::uint64_t bytes_checked = 0;
};

/// Reads every block of every field and checks its checksum. Never throws for a bad file:
/// the reason is in the report.
VerifyReport verify(const std::filesystem::path &file);

/// Library version, e.g. "0.1.0".
const char *library_version() noexcept;

} // namespace ckpt
