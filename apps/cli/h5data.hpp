#pragma once
// HDF5 for `ckpt diff` and `ckpt export`, on the format layer's pieces
// (<ckpt/formats/hdf5.hpp>: h5::Handle, h5::error_stack, h5::silence_errors and the HDF5
// types of dtypes), with failures as CliError naming what failed and the HDF5 detail.
// Checkpoint files are opened read-only, serially, with HDF5's default (sec2) driver; the
// parallel HDF5 build is only linked, never used with MPI-IO here.

#include "common.hpp"

#include <ckpt/formats/hdf5.hpp>
#include <ckpt/types.hpp>

#include <cstdint>
#include <filesystem>
#include <string>

namespace ckpt::cli {

/// Takes ownership of `id`. \throws CliError(code) "<what>: <HDF5 error stack>" when it is
/// negative.
h5::Handle own(hid_t id, const std::string &what, int code = exit_failed);
/// \throws CliError(exit_failed) "<what>: <HDF5 error stack>" when `rc` is negative.
void check(herr_t rc, const std::string &what);
/// Closes `h` now. \throws CliError(exit_failed) "<what>: <HDF5 detail>" on failure.
void close(h5::Handle &h, const std::string &what);

/// Opens an existing HDF5 file read-only. \throws CliError(exit_usage) naming the file.
h5::Handle open_file_readonly(const std::filesystem::path &file);

/// A root dataset opened for reading in slabs along its first dimension.
class DatasetReader {
public:
  /// \throws CliError when the dataset is missing or not a simple dataspace.
  DatasetReader(hid_t file, const std::string &name, const std::filesystem::path &file_path);

  const Shape &shape() const noexcept { return shape_; }
  /// Number of slabs along the first dimension (1 for a scalar).
  std::uint64_t rows() const noexcept { return shape_.empty() ? 1 : shape_[0]; }
  /// Elements in one slab.
  std::uint64_t row_elements() const noexcept;
  std::uint64_t elements() const noexcept { return volume(shape_); }

  /// Reads rows [first, first + count) converted to `memtype` into `buffer`.
  /// \throws CliError with the HDF5 detail.
  void read_rows(hid_t memtype, std::uint64_t first, std::uint64_t count, void *buffer) const;

private:
  std::string name_;
  std::filesystem::path file_path_;
  h5::Handle dset_;
  Shape shape_;
};

/// Writes rows [first, first + count) of `buffer` (of type `memtype`) into the dataset
/// `dset` along its first dimension (the whole dataset for a scalar, `shape` empty).
/// \throws CliError "<what>: <HDF5 error stack>".
void write_rows(hid_t dset, const Shape &shape, hid_t memtype, std::uint64_t first, std::uint64_t count,
                const void *buffer, const std::string &what);

} // namespace ckpt::cli
