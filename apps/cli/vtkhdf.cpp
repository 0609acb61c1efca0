// `ckpt export --vtkhdf`: a VTKHDF 1.0 ImageData file of HDF5 links into a checkpoint.

#include "vtkhdf.hpp"

#include "common.hpp"
#include "h5data.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <system_error>
#include <vector>

namespace fs = std::filesystem;

namespace ckpt::cli {

namespace {

template <class T>
void write_array_attribute(hid_t obj, const char *name, hid_t file_type, hid_t mem_type,
                           const std::vector<T> &v) {
  const std::string what = fmt::format("writing attribute '{}' failed", name);
  hsize_t n = v.size();
  h5::Handle space = own(H5Screate_simple(1, &n, nullptr), what);
  h5::Handle a = own(H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT), what);
  check(H5Awrite(a, mem_type, v.data()), what);
}

/// A fixed-length ASCII string attribute: VTK readers expect `Type` in that form.
void write_ascii_attribute(hid_t obj, const char *name, const std::string &v) {
  const std::string what = fmt::format("writing attribute '{}' failed", name);
  h5::Handle type = own(H5Tcopy(H5T_C_S1), what);
  check(H5Tset_size(type, v.size()), what);
  check(H5Tset_strpad(type, H5T_STR_NULLPAD), what);
  check(H5Tset_cset(type, H5T_CSET_ASCII), what);
  h5::Handle space = own(H5Screate(H5S_SCALAR), what);
  h5::Handle a = own(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT), what);
  check(H5Awrite(a, type, v.data()), what);
}

/// The checkpoint's path as the view file should store it: relative to the view's folder
/// (HDF5 resolves relative link targets against the linking file's folder), else absolute.
std::string link_target(const fs::path &checkpoint, const fs::path &out) {
  std::error_code ec;
  fs::path target = fs::absolute(checkpoint, ec);
  fs::path rel = fs::relative(target, fs::absolute(out, ec).parent_path(), ec);
  return (ec || rel.empty() ? target : rel).string();
}

/// The PointData array `field` as a virtual dataset of shape `vdims` whose every layer
/// along the doubled axes maps to the whole source dataset.
void create_virtual(hid_t group, const std::string &field, const Shape &shape,
                    const std::vector<hsize_t> &dims3, const std::vector<hsize_t> &vdims, Dtype dtype,
                    const std::string &target) {
  std::vector<hsize_t> sdims(shape.begin(), shape.end());
  const std::string preparing = fmt::format("preparing the view of '{}' failed", field);
  h5::Handle src = own(H5Screate_simple(static_cast<int>(sdims.size()), sdims.data(), nullptr), preparing);
  h5::Handle vspace = own(H5Screate_simple(3, vdims.data(), nullptr), preparing);
  h5::Handle dcpl = own(H5Pcreate(H5P_DATASET_CREATE), preparing);
  check(H5Sselect_all(src), preparing);
  const std::string source = "/" + field;
  for (unsigned layer = 0; layer < 8; ++layer) {
    std::vector<hsize_t> start(3, 0);
    bool used = true;
    for (int i = 0; i < 3; ++i) {
      unsigned bit = (layer >> i) & 1u;
      if (bit && vdims[i] == dims3[i])
        used = false; // only doubled axes have a second layer
      start[i] = bit;
    }
    if (!used)
      continue;
    const std::string mapping = fmt::format("mapping the view of '{}' failed", field);
    check(H5Sselect_hyperslab(vspace, H5S_SELECT_SET, start.data(), nullptr, dims3.data(), nullptr), mapping);
    check(H5Pset_virtual(dcpl, vspace, target.c_str(), source.c_str(), src), mapping);
  }
  const std::string creating = fmt::format("creating the view of '{}' failed", field);
  h5::Handle all = own(H5Screate_simple(3, vdims.data(), nullptr), creating);
  h5::Handle d = own(
      H5Dcreate2(group, field.c_str(), h5::file_type(dtype), all, H5P_DEFAULT, dcpl, H5P_DEFAULT), creating);
}

} // namespace

void write_vtkhdf_view(const fs::path &checkpoint, const std::string &field, const Shape &shape, Dtype dtype,
                       const GridGeometry &grid, const fs::path &out) {
  if (shape.empty() || shape.size() > 3)
    throw CliError(exit_usage, fmt::format("'{}' is {}; a VTKHDF image needs 1 to 3 dimensions", field,
                                           shape.empty() ? "a scalar" : "more than 3-dimensional"));
  // C order (z, y, x) padded to 3-D; VTK 9.1 reads only 3-D point data correctly, so an
  // axis of one point is shown as two identical layers.
  std::vector<hsize_t> dims3(3 - shape.size(), 1);
  dims3.insert(dims3.end(), shape.begin(), shape.end());
  std::vector<hsize_t> vdims(dims3);
  bool link = true;
  for (auto &d : vdims) {
    if (d == 1) {
      d = 2;
      link = false;
    }
  }
  if (shape.size() != 3)
    link = false;

  h5::silence_errors();
  const fs::path tmp = out.string() + ".part";
  struct RemoveOnError {
    const fs::path &path;
    bool done = false;
    ~RemoveOnError() {
      std::error_code ec;
      if (!done)
        fs::remove(path, ec);
    }
  } cleanup{tmp};
  {
    h5::Handle f = own(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                       fmt::format("cannot create {}", tmp.string()));
    h5::Handle g = own(H5Gcreate2(f, "VTKHDF", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                       fmt::format("creating /VTKHDF in {} failed", tmp.string()));
    write_array_attribute<std::int32_t>(g, "Version", H5T_STD_I32LE, H5T_NATIVE_INT32, {1, 0});
    write_ascii_attribute(g, "Type", "ImageData");
    write_array_attribute<std::int64_t>(g, "WholeExtent", H5T_STD_I64LE, H5T_NATIVE_INT64,
                                        {0, static_cast<std::int64_t>(vdims[2]) - 1, 0,
                                         static_cast<std::int64_t>(vdims[1]) - 1, 0,
                                         static_cast<std::int64_t>(vdims[0]) - 1});
    write_array_attribute<double>(g, "Origin", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                                  {grid.origin.begin(), grid.origin.end()});
    write_array_attribute<double>(g, "Spacing", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                                  {grid.spacing.begin(), grid.spacing.end()});
    write_array_attribute<double>(g, "Direction", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                                  {1, 0, 0, 0, 1, 0, 0, 0, 1});
    h5::Handle pd = own(H5Gcreate2(g, "PointData", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                        fmt::format("creating PointData in {} failed", tmp.string()));
    const std::string target = link_target(checkpoint, out);
    if (link) {
      check(H5Lcreate_external(target.c_str(), ("/" + field).c_str(), pd, field.c_str(), H5P_DEFAULT, H5P_DEFAULT),
            fmt::format("linking '{}' failed", field));
    } else {
      create_virtual(pd, field, shape, dims3, vdims, dtype, target);
    }
    const std::string closing = fmt::format("closing {} failed", tmp.string());
    close(pd, closing);
    close(g, closing);
    close(f, closing);
  }
  std::error_code ec;
  fs::rename(tmp, out, ec);
  if (ec)
    throw CliError(exit_failed,
                   fmt::format("cannot rename {} to {}: {}", tmp.string(), out.string(), ec.message()));
  cleanup.done = true;
}

} // namespace ckpt::cli
