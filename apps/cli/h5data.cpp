#include "h5data.hpp"

#include "common.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <vector>

namespace ckpt::cli {

void silence_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

H5Handle &H5Handle::operator=(H5Handle &&o) noexcept {
  if (this != &o) {
    if (id_ >= 0 && close_) close_(id_);
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

H5Handle::~H5Handle() {
  if (id_ >= 0 && close_ && close_(id_) < 0)
    std::fprintf(stderr, "ckpt: warning: closing an HDF5 object failed: %s\n", hdf5_error_detail().c_str());
}

namespace {
herr_t collect_innermost(unsigned n, const H5E_error2_t *err, void *data) {
  auto *out = static_cast<std::string *>(data);
  // The walk goes from the innermost call outwards; the first entry is the root cause.
  if (n == 0 && err->desc) *out = err->desc;
  return 0;
}
} // namespace

std::string hdf5_error_detail() {
  std::string detail;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_innermost, &detail);
  H5Eclear2(H5E_DEFAULT);
  return detail;
}

hid_t native_type(Dtype t) {
  switch (t) {
  case Dtype::u8: return H5T_NATIVE_UINT8;
  case Dtype::i8: return H5T_NATIVE_INT8;
  case Dtype::u16: return H5T_NATIVE_UINT16;
  case Dtype::i16: return H5T_NATIVE_INT16;
  case Dtype::u32: return H5T_NATIVE_UINT32;
  case Dtype::i32: return H5T_NATIVE_INT32;
  case Dtype::u64: return H5T_NATIVE_UINT64;
  case Dtype::i64: return H5T_NATIVE_INT64;
  case Dtype::f32: return H5T_NATIVE_FLOAT;
  case Dtype::f64: return H5T_NATIVE_DOUBLE;
  }
  return H5T_NATIVE_UINT8;
}

hid_t file_type(Dtype t) {
  switch (t) {
  case Dtype::u8: return H5T_STD_U8LE;
  case Dtype::i8: return H5T_STD_I8LE;
  case Dtype::u16: return H5T_STD_U16LE;
  case Dtype::i16: return H5T_STD_I16LE;
  case Dtype::u32: return H5T_STD_U32LE;
  case Dtype::i32: return H5T_STD_I32LE;
  case Dtype::u64: return H5T_STD_U64LE;
  case Dtype::i64: return H5T_STD_I64LE;
  case Dtype::f32: return H5T_IEEE_F32LE;
  case Dtype::f64: return H5T_IEEE_F64LE;
  }
  return H5T_STD_U8LE;
}

H5Handle open_file_readonly(const std::filesystem::path &file) {
  silence_hdf5();
  hid_t id = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0)
    throw CliError(exit_usage, fmt::format("cannot open {} as HDF5: {}", file.string(), hdf5_error_detail()));
  return H5Handle(id, H5Fclose);
}

DatasetReader::DatasetReader(hid_t file, const std::string &name, const std::filesystem::path &file_path)
    : name_(name), file_path_(file_path) {
  hid_t d = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  if (d < 0)
    throw CliError(exit_failed, fmt::format("{}: no dataset '{}' ({})", file_path.string(), name,
                                            hdf5_error_detail()));
  dset_ = H5Handle(d, H5Dclose);
  H5Handle space(H5Dget_space(d), H5Sclose);
  int nd = H5Sget_simple_extent_ndims(space.get());
  if (nd < 0)
    throw CliError(exit_failed, fmt::format("{}: dataset '{}' has no simple dataspace", file_path.string(), name));
  std::vector<hsize_t> dims(static_cast<std::size_t>(nd));
  if (nd > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  shape_.assign(dims.begin(), dims.end());
}

std::uint64_t DatasetReader::row_elements() const noexcept {
  std::uint64_t n = 1;
  for (std::size_t i = 1; i < shape_.size(); ++i) n *= shape_[i];
  return n;
}

void DatasetReader::read_rows(hid_t memtype, std::uint64_t first, std::uint64_t count, void *buffer) const {
  herr_t rc;
  if (shape_.empty()) {
    rc = H5Dread(dset_.get(), memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer);
  } else {
    std::vector<hsize_t> start(shape_.size(), 0), cnt(shape_.begin(), shape_.end());
    start[0] = first;
    cnt[0] = count;
    H5Handle fspace(H5Dget_space(dset_.get()), H5Sclose);
    H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, cnt.data(), nullptr);
    H5Handle mspace(H5Screate_simple(static_cast<int>(cnt.size()), cnt.data(), nullptr), H5Sclose);
    rc = H5Dread(dset_.get(), memtype, mspace.get(), fspace.get(), H5P_DEFAULT, buffer);
  }
  if (rc < 0)
    throw CliError(exit_failed, fmt::format("{}: reading dataset '{}' failed: {}", file_path_.string(), name_,
                                            hdf5_error_detail()));
}

} // namespace ckpt::cli
