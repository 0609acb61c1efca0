#pragma once
// Reading and writing whole datasets with HDF5 for `ckpt diff` and `ckpt export`.
// Checkpoint files are opened read-only, serially, with HDF5's default (sec2) driver; the
// parallel HDF5 build is only linked, never used with MPI-IO here.

#include <ckpt/types.hpp>

#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <string>

namespace ckpt::cli {

/// Turns off HDF5's automatic error printing; errors are reported through CliError.
void silence_hdf5();

/// A move-only HDF5 identifier closed by the function given at construction.
class H5Handle {
public:
  using Closer = herr_t (*)(hid_t);
  H5Handle() = default;
  H5Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  H5Handle(H5Handle &&o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = H5I_INVALID_HID; }
  H5Handle &operator=(H5Handle &&o) noexcept;
  H5Handle(const H5Handle &) = delete;
  H5Handle &operator=(const H5Handle &) = delete;
  ~H5Handle();
  hid_t get() const noexcept { return id_; }
  /// Closes now; returns the close function's status (negative on failure).
  herr_t close() noexcept {
    herr_t rc = 0;
    if (id_ >= 0 && close_) rc = close_(id_);
    id_ = H5I_INVALID_HID;
    return rc;
  }
  bool valid() const noexcept { return id_ >= 0; }

private:
  hid_t id_ = H5I_INVALID_HID;
  Closer close_ = nullptr;
};

/// The HDF5 memory type of a ckpt dtype (native byte order).
hid_t native_type(Dtype t);
/// The little-endian HDF5 file type of a ckpt dtype.
hid_t file_type(Dtype t);

/// Opens an existing HDF5 file read-only. \throws CliError naming the file.
H5Handle open_file_readonly(const std::filesystem::path &file);

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
  H5Handle dset_;
  Shape shape_;
};

/// The innermost message of HDF5's current error stack (empty when none), then clears it.
std::string hdf5_error_detail();

} // namespace ckpt::cli
