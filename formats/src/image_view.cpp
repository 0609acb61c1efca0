// The VTKHDF ImageData view: attributes, and per array a link or a virtual dataset.
#include <ckpt/formats/hdf5.hpp>
#include <ckpt/formats/image_view.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdint>

namespace ckpt::formats {

namespace {

template <class T>
void write_array_attribute(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, const std::vector<T> &v) {
  const std::string what = fmt::format("writing the image attribute '{}'", name);
  const hsize_t n = v.size();
  h5::Handle space(H5Screate_simple(1, &n, nullptr), what);
  h5::Handle a(H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT), what);
  h5::check(H5Awrite(a, mem_type, v.data()), what);
}

// A fixed-length ASCII string: VTK's reader expects `Type` in that form.
void write_ascii_attribute(hid_t obj, const char *name, const std::string &v) {
  const std::string what = fmt::format("writing the image attribute '{}'", name);
  h5::Handle type(H5Tcopy(H5T_C_S1), what);
  h5::check(H5Tset_size(type, v.size()), what);
  h5::check(H5Tset_strpad(type, H5T_STR_NULLPAD), what);
  h5::check(H5Tset_cset(type, H5T_CSET_ASCII), what);
  h5::Handle space(H5Screate(H5S_SCALAR), what);
  h5::Handle a(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT), what);
  h5::check(H5Awrite(a, type, v.data()), what);
}

// C order (z, y, x) padded to 3-D.
std::vector<hsize_t> dims3_of(const Shape &shape) {
  std::vector<hsize_t> d(3 - shape.size(), 1);
  d.insert(d.end(), shape.begin(), shape.end());
  return d;
}

// The shape VTK sees: every axis of 1 point shown as 2.
std::vector<hsize_t> view_dims_of(const Shape &shape) {
  std::vector<hsize_t> d = dims3_of(shape);
  for (auto &n : d)
    if (n == 1)
      n = 2;
  return d;
}

// The array as a virtual dataset of the view's shape whose every layer along the doubled
// axes maps to the whole source dataset.
void create_virtual(hid_t group, const ImageArray &a, const std::string &source_file) {
  const std::vector<hsize_t> dims3 = dims3_of(a.shape), vdims = view_dims_of(a.shape);
  const std::vector<hsize_t> sdims(a.shape.begin(), a.shape.end());
  const std::string what = fmt::format("creating the image view of '{}'", a.name);
  h5::Handle src(H5Screate_simple(static_cast<int>(sdims.size()), sdims.data(), nullptr), what);
  h5::Handle vspace(H5Screate_simple(3, vdims.data(), nullptr), what);
  h5::Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), what);
  h5::check(H5Sselect_all(src), what);
  const std::string dataset = "/" + a.name;
  for (unsigned layer = 0; layer < 8; ++layer) {
    std::vector<hsize_t> start(3, 0);
    bool used = true;
    for (int i = 0; i < 3; ++i) {
      const unsigned bit = (layer >> i) & 1u;
      if (bit && vdims[i] == dims3[i])
        used = false; // only doubled axes have a second layer
      start[i] = bit;
    }
    if (!used)
      continue;
    h5::check(H5Sselect_hyperslab(vspace, H5S_SELECT_SET, start.data(), nullptr, dims3.data(), nullptr), what);
    h5::check(H5Pset_virtual(dcpl, vspace, source_file.c_str(), dataset.c_str(), src), what);
  }
  h5::Handle all(H5Screate_simple(3, vdims.data(), nullptr), what);
  h5::Handle d(H5Dcreate2(group, a.name.c_str(), h5::file_type(a.dtype), all, H5P_DEFAULT, dcpl, H5P_DEFAULT), what);
}

} // namespace

ImageGeometry image_geometry(const Grid &grid) {
  ImageGeometry g;
  const std::size_t nd = grid.spacing.size();
  for (std::size_t i = 0; i < nd && i < 3; ++i) {
    g.origin[i] = grid.origin[nd - 1 - i];
    g.spacing[i] = grid.spacing[nd - 1 - i];
  }
  return g;
}

bool image_needs_virtual(const Shape &shape) {
  if (shape.size() != 3)
    return true;
  for (auto n : shape)
    if (n == 1)
      return true;
  return false;
}

void write_image_view(hid_t file, const std::vector<ImageArray> &arrays, const ImageGeometry &geometry,
                      const std::string &source) {
  if (arrays.empty())
    return;
  const Shape &shape = arrays.front().shape;
  for (const auto &a : arrays) {
    if (a.shape.empty() || a.shape.size() > 3)
      throw Error(Errc::invalid_argument, -1,
                  fmt::format("'{}' is {}; an image needs 1 to 3 dimensions", a.name,
                              a.shape.empty() ? "a scalar" : "more than 3-dimensional"));
    if (a.shape != shape)
      throw Error(Errc::invalid_argument, -1,
                  fmt::format("'{}' has shape [{}] and '{}' [{}]; the arrays of an image share one shape",
                              arrays.front().name, fmt::join(shape, ","), a.name, fmt::join(a.shape, ",")));
  }
  const std::vector<hsize_t> vdims = view_dims_of(shape);
  h5::Handle g(H5Gcreate2(file, "VTKHDF", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "creating the /VTKHDF group");
  write_array_attribute<std::int32_t>(g, "Version", H5T_STD_I32LE, H5T_NATIVE_INT32, {1, 0});
  write_ascii_attribute(g, "Type", "ImageData");
  write_array_attribute<std::int64_t>(g, "WholeExtent", H5T_STD_I64LE, H5T_NATIVE_INT64,
                                      {0, static_cast<std::int64_t>(vdims[2]) - 1, 0,
                                       static_cast<std::int64_t>(vdims[1]) - 1, 0,
                                       static_cast<std::int64_t>(vdims[0]) - 1});
  write_array_attribute<double>(g, "Origin", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                                {geometry.origin.begin(), geometry.origin.end()});
  write_array_attribute<double>(g, "Spacing", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                                {geometry.spacing.begin(), geometry.spacing.end()});
  write_array_attribute<double>(g, "Direction", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {1, 0, 0, 0, 1, 0, 0, 0, 1});
  h5::Handle pd(H5Gcreate2(g, "PointData", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "creating /VTKHDF/PointData");
  for (const auto &a : arrays) {
    const std::string dataset = "/" + a.name, what = fmt::format("linking the image array '{}'", a.name);
    if (image_needs_virtual(a.shape))
      create_virtual(pd, a, source.empty() ? std::string(".") : source);
    else if (source.empty())
      h5::check(H5Lcreate_soft(dataset.c_str(), pd, a.name.c_str(), H5P_DEFAULT, H5P_DEFAULT), what);
    else
      h5::check(H5Lcreate_external(source.c_str(), dataset.c_str(), pd, a.name.c_str(), H5P_DEFAULT, H5P_DEFAULT),
                what);
  }
  pd.close();
  g.close();
}

} // namespace ckpt::formats
