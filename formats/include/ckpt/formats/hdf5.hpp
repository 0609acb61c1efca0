#pragma once
// Move-only RAII handles for HDF5 identifiers, HDF5 error reporting, and the HDF5 types
// of ckpt dtypes.
// Destructors never throw (a failed close is logged); close() throws.

#include <ckpt/error.hpp>
#include <ckpt/types.hpp>

#include <hdf5.h>

#include <string>
#include <utility>

namespace ckpt::h5 {

/// Silences HDF5's automatic error printing (once per process); ckpt reports errors itself.
void silence_errors();

/// The current HDF5 error stack as one line, then cleared.
std::string error_stack();

/// Throws Error(hdf5) with `what` and the HDF5 error stack when `rc` is negative.
void check(herr_t rc, const std::string &what);

/// The HDF5 memory type of a dtype (native byte order). \throws Error(internal) for none.
hid_t native_type(Dtype t);
/// The little-endian HDF5 file type of a dtype. \throws Error(internal) for none.
hid_t file_type(Dtype t);

/// One HDF5 identifier of any type, closed with the matching H5?close.
class Handle {
public:
  Handle() = default;
  /// Takes ownership of `id`; throws Error(hdf5) with `what` when id is negative.
  Handle(hid_t id, const std::string &what);
  ~Handle();
  Handle(Handle &&o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)) {}
  Handle &operator=(Handle &&o) noexcept;
  Handle(const Handle &) = delete;
  Handle &operator=(const Handle &) = delete;

  hid_t get() const noexcept { return id_; }
  operator hid_t() const noexcept { return id_; }
  bool valid() const noexcept { return id_ >= 0; }
  /// Closes now; throws Error(hdf5) on failure.
  void close();

private:
  hid_t id_ = H5I_INVALID_HID;
};

} // namespace ckpt::h5
