#pragma once
// Checkpoint file format v1: writing (collective, parallel HDF5) and reading.
// The layout is specified in docs/format.md.

#include <ckpt/formats/hdf5.hpp>
#include <ckpt/formats/model.hpp>
#include <ckpt/types.hpp>

#include <mpi.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ckpt::formats {

inline constexpr const char *format_name = "ckpt";
inline constexpr int format_major = 1;
inline constexpr int format_minor = 0;
/// Group that holds ckpt's own tables; not a valid field name.
inline constexpr const char *meta_group = "_ckpt";
/// Group of the VTKHDF ImageData view of the fields tagged with a grid; not a field name.
inline constexpr const char *image_group = "VTKHDF";

/// One field as the writer sees it on this rank. `blocks` (every rank's block, with
/// checksums) must be the same on all ranks.
struct FieldWrite {
  std::string name;
  Kind kind = Kind::replicated;
  Dtype dtype = Dtype::u8;
  Shape shape;                  ///< dataset shape
  std::vector<BlockInfo> blocks;
  /// A distributed field tagged with its grid is shown in the file's /VTKHDF image view.
  std::optional<Grid> grid;
  // This rank's part: its block `offset`/`count` in the dataset, read from `data`, an array
  // of shape `memory` at `memory_offset`. write == false selects nothing on this rank.
  bool write = false;
  const void *data = nullptr;
  Shape offset, count, memory, memory_offset;
};

/// Root attributes.
struct Header {
  std::int64_t step = 0;
  double time = 0;
  int nranks = 1;
  std::map<std::string, std::string> metadata;
};


/// Checksum over the header attributes and all block tables, stored in the file so that
/// damage to metadata (not only to data) is detected.
std::uint64_t header_checksum(const CheckpointInfo &info);

/// An open checkpoint file for reading.
class Reader {
public:
  /// Opens `path`; collective over comm when comm is not MPI_COMM_NULL (MPI-IO), else a
  /// plain serial open. Reads and checks all metadata.
  /// \throws Error(corrupt) for unreadable or inconsistent files, Error(unsupported_version).
  Reader(const std::string &path, MPI_Comm comm = MPI_COMM_NULL);

  const CheckpointInfo &info() const noexcept { return info_; }

  /// Reads the region offset/count of field `name` into `mem` (an array of shape `memory`,
  /// at `memory_offset`). When collective, every rank must call it (an empty count selects
  /// nothing).
  void read(const FieldInfo &field, const Shape &offset, const Shape &count, void *mem,
            const Shape &memory, const Shape &memory_offset, bool collective);

  /// Where the raw data of `field` starts in the file when it can be read directly (a
  /// contiguous, unfiltered, allocated dataset stored in the native type), else ~0.
  std::uint64_t raw_offset(const FieldInfo &field) const;

  /// Closes the file; throws on failure.
  void close();

private:
  h5::Handle file_;
  CheckpointInfo info_;
};

} // namespace ckpt::formats
