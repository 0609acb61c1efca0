#pragma once
// `ckpt export --vtkhdf`: a VTKHDF ImageData view of one field of a checkpoint, written as a
// small separate file whose array is a link into the checkpoint (no copy of the data).

#include <ckpt/formats/image_view.hpp>
#include <ckpt/types.hpp>

#include <filesystem>
#include <string>

namespace ckpt::cli {

/// Where a field's grid sits in space, per axis in VTK's order (x = the last index).
using GridGeometry = formats::ImageGeometry;

/// Writes `out` (created under a temporary name, then renamed): a VTKHDF 1.0 file with a
/// `/VTKHDF` ImageData group whose PointData array `field` refers to the dataset `field` of
/// `checkpoint` by a path relative to `out`'s folder, so the two move together.
///
/// A 3-D field with at least 2 points on every axis is an HDF5 external link to the
/// dataset. Other fields (1-D, 2-D, or an axis of 1 point) are an HDF5 virtual dataset of
/// the field padded to 3-D, where every axis of 1 point is shown twice (both layers map to
/// the same bytes of the checkpoint): VTK 9.1's vtkHDFReader (Debian 12) overruns a buffer
/// for images of fewer than 3 dimensions, and reads cell data with point counts.
///
/// \throws CliError when the shape has no grid (scalar, more than 3-D), when a file
/// cannot be written, with the HDF5 detail.
void write_vtkhdf_view(const std::filesystem::path &checkpoint, const std::string &field, const Shape &shape,
                       Dtype dtype, const GridGeometry &grid, const std::filesystem::path &out);

} // namespace ckpt::cli
