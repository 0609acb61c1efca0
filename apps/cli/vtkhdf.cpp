// `ckpt export --vtkhdf`: a VTKHDF 1.0 ImageData file of HDF5 links into a checkpoint.

#include "vtkhdf.hpp"

#include "common.hpp"
#include "h5data.hpp"

#include <fmt/format.h>

#include <system_error>

namespace fs = std::filesystem;

namespace ckpt::cli {

namespace {

/// The checkpoint's path as the view file should store it: relative to the view's folder
/// (HDF5 resolves relative link targets against the linking file's folder), else absolute.
std::string link_target(const fs::path &checkpoint, const fs::path &out) {
  std::error_code ec;
  fs::path target = fs::absolute(checkpoint, ec);
  fs::path rel = fs::relative(target, fs::absolute(out, ec).parent_path(), ec);
  return (ec || rel.empty() ? target : rel).string();
}

} // namespace

void write_vtkhdf_view(const fs::path &checkpoint, const std::string &field, const Shape &shape, Dtype dtype,
                       const GridGeometry &grid, const fs::path &out) {
  if (shape.empty() || shape.size() > 3)
    throw CliError(exit_usage, fmt::format("'{}' is {}; a VTKHDF image needs 1 to 3 dimensions", field,
                                           shape.empty() ? "a scalar" : "more than 3-dimensional"));
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
    formats::write_image_view(f, {{field, shape, dtype}}, grid, link_target(checkpoint, out));
    const std::string closing = fmt::format("closing {} failed", tmp.string());
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
