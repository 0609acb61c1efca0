#pragma once
/// \file
/// The checkpoints in a directory, and what one checkpoint file holds.
/// These calls are local (not collective) and need no MPI communicator.

#include <ckpt/formats/model.hpp> // CheckpointInfo, FieldInfo, BlockInfo
#include <ckpt/types.hpp>
#include <ckpt/version.hpp>  // library_version()

#include <cstdint>
#include <filesystem>
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
  /// For a node-local part (`*.part`, written with CKPT_LOCAL_DIR): what it is, e.g.
  /// "node-local part of step 100, rank 1 of 4"; its byte ranges count as blocks.
  std::string part;
};

/// Reads every block of every field and checks its checksum. Never throws for a bad file:
/// the reason is in the report. A node-local part file (`*.part`) is checked too: its
/// trailer, and every byte range it holds against the range's checksum.
VerifyReport verify(const std::filesystem::path &file);

} // namespace ckpt
