#include "h5data.hpp"

#include <fmt/format.h>

#include <vector>

namespace ckpt::cli {

h5::Handle own(hid_t id, const std::string &what, int code) {
  if (id < 0)
    throw CliError(code, fmt::format("{}: {}", what, h5::error_stack()));
  return h5::Handle(id, what);
}

void check(herr_t rc, const std::string &what) {
  if (rc < 0)
    throw CliError(exit_failed, fmt::format("{}: {}", what, h5::error_stack()));
}

void close(h5::Handle &h, const std::string &what) {
  try {
    h.close();
  } catch (const Error &e) {
    throw CliError(exit_failed, fmt::format("{}: {}", what, e.detail()));
  }
}

h5::Handle open_file_readonly(const std::filesystem::path &file) {
  h5::silence_errors();
  return own(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT),
             fmt::format("cannot open {} as HDF5", file.string()), exit_usage);
}

DatasetReader::DatasetReader(hid_t file, const std::string &name, const std::filesystem::path &file_path)
    : name_(name), file_path_(file_path) {
  dset_ = own(H5Dopen2(file, name.c_str(), H5P_DEFAULT), fmt::format("{}: no dataset '{}'", file_path.string(), name));
  const std::string no_space = fmt::format("{}: dataset '{}' has no simple dataspace", file_path.string(), name);
  h5::Handle space = own(H5Dget_space(dset_), no_space);
  const int nd = H5Sget_simple_extent_ndims(space);
  check(nd, no_space);
  std::vector<hsize_t> dims(static_cast<std::size_t>(nd));
  if (nd > 0)
    check(H5Sget_simple_extent_dims(space, dims.data(), nullptr), no_space);
  shape_.assign(dims.begin(), dims.end());
}

std::uint64_t DatasetReader::row_elements() const noexcept {
  std::uint64_t n = 1;
  for (std::size_t i = 1; i < shape_.size(); ++i) n *= shape_[i];
  return n;
}

namespace {
// The file and memory dataspaces of rows [first, first + count) of a dataset of `shape`
// (H5S_ALL for a scalar).
struct RowSelection {
  h5::Handle file, mem;
  RowSelection(hid_t dset, const Shape &shape, std::uint64_t first, std::uint64_t count, const std::string &what) {
    if (shape.empty())
      return;
    std::vector<hsize_t> start(shape.size(), 0), cnt(shape.begin(), shape.end());
    start[0] = first;
    cnt[0] = count;
    file = own(H5Dget_space(dset), what);
    check(H5Sselect_hyperslab(file, H5S_SELECT_SET, start.data(), nullptr, cnt.data(), nullptr), what);
    mem = own(H5Screate_simple(static_cast<int>(cnt.size()), cnt.data(), nullptr), what);
  }
  hid_t file_space() const { return file.valid() ? file.get() : H5S_ALL; }
  hid_t mem_space() const { return mem.valid() ? mem.get() : H5S_ALL; }
};
} // namespace

void DatasetReader::read_rows(hid_t memtype, std::uint64_t first, std::uint64_t count, void *buffer) const {
  const std::string what = fmt::format("{}: reading dataset '{}' failed", file_path_.string(), name_);
  RowSelection sel(dset_, shape_, first, count, what);
  check(H5Dread(dset_, memtype, sel.mem_space(), sel.file_space(), H5P_DEFAULT, buffer), what);
}

void write_rows(hid_t dset, const Shape &shape, hid_t memtype, std::uint64_t first, std::uint64_t count,
                const void *buffer, const std::string &what) {
  RowSelection sel(dset, shape, first, count, what);
  check(H5Dwrite(dset, memtype, sel.mem_space(), sel.file_space(), H5P_DEFAULT, buffer), what);
}

} // namespace ckpt::cli
