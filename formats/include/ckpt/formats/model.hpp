#pragma once
/// \file
/// What one checkpoint file holds: its root attributes, fields and blocks. The format
/// layer reads and writes these; `<ckpt/catalog.hpp>` gives them to users.

#include <ckpt/types.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace ckpt {

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

} // namespace ckpt
