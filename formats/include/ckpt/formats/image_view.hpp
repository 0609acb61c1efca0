#pragma once
// The VTKHDF 1.0 ImageData view of fields on a regular grid: a `/VTKHDF` group whose
// PointData arrays are HDF5 links to the fields' datasets, so ParaView (reader "VTKHDF")
// and VTK's vtkHDFReader open a checkpoint as an image without a copy of the data.
// Written inside a checkpoint for fields tagged with a grid (create_file), or as a small
// separate file of external links by `ckpt export --vtkhdf`. docs/format.md, "The image view".

#include <ckpt/types.hpp>

#include <hdf5.h>

#include <array>
#include <string>
#include <vector>

namespace ckpt::formats {

/// One array of the image: a dataset at the root of the source file.
struct ImageArray {
  std::string name;
  Shape shape; ///< 1 to 3 dimensions, the same for every array of one image
  Dtype dtype = Dtype::f64;
};

/// Where the image sits in space, per axis in VTK's order (x = the last, fastest index of
/// the arrays; missing axes of 1- and 2-D arrays have origin 0 and spacing 1).
struct ImageGeometry {
  std::array<double, 3> origin{0.0, 0.0, 0.0};
  std::array<double, 3> spacing{1.0, 1.0, 1.0};
};

/// The geometry of a Grid given in array order (slowest first), as VTK orders it.
ImageGeometry image_geometry(const Grid &grid);

/// Whether the view of an array of this shape is an HDF5 virtual dataset (fewer than 3
/// dimensions, or an axis of 1 point), which needs the HDF5 1.10 file format for that
/// dataset; a 3-D array with at least 2 points per axis is a plain link.
bool image_needs_virtual(const Shape &shape);

/// Writes the group `/VTKHDF` into `file` with one PointData array per entry of `arrays`.
/// `source` empty: the arrays are datasets of `file` itself (soft links, or virtual
/// datasets with source "."). Else the path of the file that holds them, as the view
/// should store it (external links, or virtual datasets of that file).
///
/// VTK 9.1's vtkHDFReader (Debian 12) reads only 3-D point data correctly, so arrays of
/// fewer than 3 dimensions are shown padded to 3-D, with every axis of 1 point shown as
/// two identical layers (both layers map to the same bytes).
/// \throws Error(hdf5) when HDF5 refuses a step, Error(invalid_argument) for a shape that
/// is no image or arrays of different shapes.
void write_image_view(hid_t file, const std::vector<ImageArray> &arrays, const ImageGeometry &geometry,
                      const std::string &source);

} // namespace ckpt::formats
