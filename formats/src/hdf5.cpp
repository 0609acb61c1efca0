#include <ckpt/formats/hdf5.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <mutex>

namespace ckpt::h5 {

void silence_errors() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

namespace {
herr_t walk(unsigned n, const H5E_error2_t *e, void *data) {
  auto *out = static_cast<std::string *>(data);
  if (n > 0)
    *out += "; ";
  std::string desc = e->desc ? e->desc : "?";
  // Some descriptions carry a ctime() string with its newline: the stack stays one line.
  std::replace(desc.begin(), desc.end(), '\n', ' ');
  *out += fmt::format("{}(): {}", e->func_name ? e->func_name : "?", desc);
  return 0;
}
} // namespace

std::string error_stack() {
  std::string out;
  hid_t stack = H5Eget_current_stack();
  if (stack >= 0) {
    H5Ewalk2(stack, H5E_WALK_DOWNWARD, walk, &out);
    H5Eclose_stack(stack);
  }
  H5Eclear2(H5E_DEFAULT);
  return out.empty() ? "no HDF5 error detail" : out;
}

void check(herr_t rc, const std::string &what) {
  if (rc < 0)
    throw Error(Errc::hdf5, -1, fmt::format("{}: {}", what, error_stack()));
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
  throw Error(Errc::internal, -1, "unknown dtype");
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
  throw Error(Errc::internal, -1, "unknown dtype");
}

Handle::Handle(hid_t id, const std::string &what) : id_(id) {
  if (id < 0)
    throw Error(Errc::hdf5, -1, fmt::format("{}: {}", what, error_stack()));
}

static herr_t close_id(hid_t id) {
  switch (H5Iget_type(id)) {
  case H5I_FILE: return H5Fclose(id);
  case H5I_GROUP: return H5Gclose(id);
  case H5I_DATASET: return H5Dclose(id);
  case H5I_DATASPACE: return H5Sclose(id);
  case H5I_DATATYPE: return H5Tclose(id);
  case H5I_ATTR: return H5Aclose(id);
  case H5I_GENPROP_LST: return H5Pclose(id);
  default: return H5Idec_ref(id);
  }
}

Handle::~Handle() {
  if (id_ >= 0 && close_id(id_) < 0)
    std::fprintf(stderr, "ckpt: warning: closing an HDF5 object failed: %s\n", error_stack().c_str());
}

Handle &Handle::operator=(Handle &&o) noexcept {
  if (this != &o) {
    Handle tmp(std::move(*this));
    id_ = std::exchange(o.id_, H5I_INVALID_HID);
  }
  return *this;
}

void Handle::close() {
  if (id_ < 0)
    return;
  hid_t id = std::exchange(id_, H5I_INVALID_HID);
  check(close_id(id), "closing an HDF5 object");
}

} // namespace ckpt::h5
