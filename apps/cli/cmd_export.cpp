// ckpt export: one field of a checkpoint as .npy (numpy), a small HDF5 file and an XDMF
// description of its grid, so numpy, h5py, ParaView and VisIt read it without ckpt.

#include "commands.hpp"
#include "common.hpp"
#include "h5data.hpp"
#include "vtkhdf.hpp"

#include <ckpt/catalog.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <vector>

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace ckpt::cli {

namespace {

/// numpy's dtype string for the little-endian data written.
std::string npy_descr(Dtype t) {
  switch (t) {
  case Dtype::u8: return "|u1";
  case Dtype::i8: return "|i1";
  case Dtype::u16: return "<u2";
  case Dtype::i16: return "<i2";
  case Dtype::u32: return "<u4";
  case Dtype::i32: return "<i4";
  case Dtype::u64: return "<u8";
  case Dtype::i64: return "<i8";
  case Dtype::f32: return "<f4";
  case Dtype::f64: return "<f8";
  }
  return "|u1";
}

/// The .npy (format 1.0) header: magic, version, length, and a dict padded so that the
/// data starts at a multiple of 64 bytes.
std::string npy_header(Dtype t, const Shape &shape) {
  std::string dims;
  if (shape.size() == 1)
    dims = std::to_string(shape[0]) + ",";
  else
    dims = join_numbers(shape, ", ");
  std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", npy_descr(t), dims);
  std::size_t unpadded = 10 + dict.size() + 1;
  std::size_t padded = (unpadded + 63) / 64 * 64;
  dict.append(padded - unpadded, ' ');
  dict += '\n';
  if (dict.size() > 65535) throw CliError(exit_failed, "array has too many dimensions for a .npy header");
  std::string h = "\x93NUMPY";
  h += '\x01';
  h += '\x00';
  h += static_cast<char>(dict.size() & 0xff);
  h += static_cast<char>((dict.size() >> 8) & 0xff);
  return h + dict;
}

/// XDMF's NumberType and Precision of a dtype.
std::pair<const char *, int> xdmf_type(Dtype t) {
  switch (t) {
  case Dtype::u8: return {"UChar", 1};
  case Dtype::i8: return {"Char", 1};
  case Dtype::u16: return {"UInt", 2};
  case Dtype::i16: return {"Int", 2};
  case Dtype::u32: return {"UInt", 4};
  case Dtype::i32: return {"Int", 4};
  case Dtype::u64: return {"UInt", 8};
  case Dtype::i64: return {"Int", 8};
  case Dtype::f32: return {"Float", 4};
  case Dtype::f64: return {"Float", 8};
  }
  return {"UChar", 1};
}

std::string xml_escape(const std::string &s) {
  std::string out;
  for (char c : s) switch (c) {
    case '&': out += "&amp;"; break;
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '"': out += "&quot;"; break;
    case '\'': out += "&apos;"; break;
    default: out += c;
    }
  return out;
}

std::string dims_text(const Shape &s) { return join_numbers(s, " "); }

/// The XDMF 2 document of a node-centred field on a uniform grid (CoRectMesh). A 1-D field
/// becomes a 1 x n grid. `data_ref` is "file.h5:/dataset".
std::string xdmf_document(const std::string &field, const Shape &shape, Dtype dtype, std::int64_t step, double time,
                          double spacing, const std::string &data_ref) {
  Shape grid = shape.size() == 1 ? Shape{1, shape[0]} : shape;
  bool three = grid.size() == 3;
  auto [ntype, prec] = xdmf_type(dtype);
  std::string zeros = three ? "0 0 0" : "0 0";
  std::string sp = number_text(spacing);
  std::string spacing_text = three ? fmt::format("{0} {0} {0}", sp) : fmt::format("{0} {0}", sp);
  std::string out;
  out += "<?xml version=\"1.0\" ?>\n";
  out += "<!DOCTYPE Xdmf SYSTEM \"Xdmf.dtd\" []>\n";
  out += "<Xdmf Version=\"2.0\">\n  <Domain>\n";
  out += fmt::format("    <Grid Name=\"{} step {}\" GridType=\"Uniform\">\n", xml_escape(field), step);
  out += fmt::format("      <Time Value=\"{}\"/>\n", fmt::format("{:.17g}", time));
  out += fmt::format("      <Topology TopologyType=\"{}\" Dimensions=\"{}\"/>\n", three ? "3DCoRectMesh" : "2DCoRectMesh",
                     dims_text(grid));
  out += fmt::format("      <Geometry GeometryType=\"{}\">\n", three ? "ORIGIN_DXDYDZ" : "ORIGIN_DXDY");
  out += fmt::format("        <DataItem Name=\"Origin\" Dimensions=\"{}\" NumberType=\"Float\" Precision=\"8\" "
                     "Format=\"XML\">{}</DataItem>\n",
                     grid.size(), zeros);
  out += fmt::format("        <DataItem Name=\"Spacing\" Dimensions=\"{}\" NumberType=\"Float\" Precision=\"8\" "
                     "Format=\"XML\">{}</DataItem>\n",
                     grid.size(), spacing_text);
  out += "      </Geometry>\n";
  out += fmt::format("      <Attribute Name=\"{}\" AttributeType=\"Scalar\" Center=\"Node\">\n", xml_escape(field));
  out += fmt::format("        <DataItem Dimensions=\"{}\" NumberType=\"{}\" Precision=\"{}\" Format=\"HDF\">{}</DataItem>\n",
                     dims_text(shape), ntype, prec, xml_escape(data_ref));
  out += "      </Attribute>\n    </Grid>\n  </Domain>\n</Xdmf>\n";
  return out;
}

void write_attribute_double(hid_t obj, const char *name, double v) {
  const std::string what = fmt::format("writing attribute '{}' failed", name);
  h5::Handle space = own(H5Screate(H5S_SCALAR), what);
  h5::Handle a = own(H5Acreate2(obj, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT), what);
  check(H5Awrite(a, H5T_NATIVE_DOUBLE, &v), what);
}

void write_attribute_int64(hid_t obj, const char *name, std::int64_t v) {
  const std::string what = fmt::format("writing attribute '{}' failed", name);
  h5::Handle space = own(H5Screate(H5S_SCALAR), what);
  h5::Handle a = own(H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT), what);
  check(H5Awrite(a, H5T_NATIVE_INT64, &v), what);
}

void write_attribute_string(hid_t obj, const char *name, const std::string &v) {
  const std::string what = fmt::format("writing attribute '{}' failed", name);
  h5::Handle type = own(H5Tcopy(H5T_C_S1), what);
  check(H5Tset_size(type, std::max<std::size_t>(1, v.size())), what);
  check(H5Tset_strpad(type, H5T_STR_NULLPAD), what);
  h5::Handle space = own(H5Screate(H5S_SCALAR), what);
  h5::Handle a = own(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT), what);
  std::string buf = v.empty() ? std::string(1, '\0') : v;
  check(H5Awrite(a, type, buf.data()), what);
}

/// "X,Y,Z" (1 to 3 numbers, the rest 0) as a VTKHDF origin.
std::array<double, 3> parse_origin(const std::string &text) {
  std::array<double, 3> o{0.0, 0.0, 0.0};
  std::size_t i = 0, pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    std::string part = text.substr(pos, end - pos);
    std::size_t used = 0;
    double v = 0;
    try {
      v = std::stod(part, &used);
    } catch (const std::exception &) {
      used = 0;
    }
    if (i >= 3 || part.empty() || used != part.size())
      throw CliError(exit_usage, fmt::format("--origin '{}' is not 1 to 3 numbers X,Y,Z", text));
    o[i++] = v;
    pos = end + 1;
  }
  return o;
}

} // namespace

int cmd_export(const Args &args) {
  po::options_description opts("options");
  opts.add_options()
      ("where", po::value<std::string>()->required(), "checkpoint directory or checkpoint file")
      ("step", po::value<std::string>(), "step (default: the newest checkpoint)")
      ("field,f", po::value<std::string>()->required(), "the field to export")
      ("output,o", po::value<std::string>(),
       "output path prefix (default: FIELD-STEP in the current directory); writes PREFIX.npy, PREFIX.h5 "
       "and PREFIX.xdmf")
      ("link", "do not write PREFIX.h5: the XDMF file refers to the dataset inside the checkpoint file "
               "(it breaks when the checkpoint is pruned)")
      ("spacing", po::value<double>()->default_value(1.0), "grid spacing written to the XDMF or VTKHDF geometry")
      ("vtkhdf", "write only PREFIX.hdf: a VTKHDF ImageData view (ParaView, VTK) whose array links to the "
                 "field in the checkpoint (no copy; keep the two files together)")
      ("origin", po::value<std::string>(), "VTKHDF grid origin X,Y,Z (default 0,0,0)");
  po::positional_options_description pos;
  pos.add("where", 1).add("step", 1);
  po::variables_map vm;
  if (!parse_args("export", "DIR [STEP] --field F [-o PREFIX] [--link | --vtkhdf] [--spacing H] [--origin X,Y,Z]",
                  "Writes one field of a checkpoint as PREFIX.npy (numpy: np.load), PREFIX.h5 (a\n"
                  "plain HDF5 file with dataset /F and attributes step and time) and PREFIX.xdmf,\n"
                  "an XDMF 2 description of a uniform grid with the field as node data, which\n"
                  "ParaView and VisIt open directly. Arrays of 1 to 3 dimensions get an XDMF file;\n"
                  "other fields are written as .npy and .h5 only. Distributed fields are exported\n"
                  "at their global shape; per-rank fields as the concatenation of all ranks' values.\n"
                  "With --vtkhdf, writes only PREFIX.hdf, a few KiB of VTKHDF 1.0 ImageData whose\n"
                  "point array is an HDF5 link into the checkpoint (vtkHDFReader, ParaView's VTKHDF\n"
                  "reader); the last index of the field is x.",
                  args, opts, pos, vm))
    return exit_ok;
  std::optional<std::int64_t> step;
  if (vm.count("step")) step = parse_step(vm["step"].as<std::string>());
  fs::path file = resolve_checkpoint(vm["where"].as<std::string>(), step);
  CheckpointInfo info = inspect_or_fail(file);
  std::string name = vm["field"].as<std::string>();
  const FieldInfo *field = info.field(name);
  if (!field) {
    std::string have;
    for (const auto &f : info.fields) {
      if (!have.empty()) have += ", ";
      have += f.name;
    }
    throw CliError(exit_usage, fmt::format("no field '{}' in {} (fields: {})", name, file.string(), have));
  }
  double spacing = vm["spacing"].as<double>();
  if (!(spacing > 0)) throw CliError(exit_usage, "--spacing must be a number > 0");
  bool link = vm.count("link") > 0;
  if (vm.count("vtkhdf")) {
    if (link) throw CliError(exit_usage, "--link and --vtkhdf do not go together (a VTKHDF view is always linked)");
    GridGeometry grid;
    grid.spacing = {spacing, spacing, spacing};
    if (vm.count("origin")) grid.origin = parse_origin(vm["origin"].as<std::string>());
    std::string out = vm.count("output") ? vm["output"].as<std::string>() + ".hdf"
                                         : fmt::format("{}-{:012d}.hdf", name, info.step);
    write_vtkhdf_view(file, name, field->shape, field->dtype, grid, out);
    std::cout << fmt::format("wrote {} (VTKHDF ImageData, grid {}, linked to {}:/{})\n", out,
                             shape_text(field->shape), file.string(), name);
    return exit_ok;
  }
  std::string prefix = vm.count("output") ? vm["output"].as<std::string>()
                                          : fmt::format("{}-{:012d}", name, info.step);
  fs::path npy_path = prefix + ".npy", h5_path = prefix + ".h5", xdmf_path = prefix + ".xdmf";
  if (npy_path.has_parent_path()) {
    std::error_code ec;
    if (!fs::is_directory(npy_path.parent_path(), ec))
      throw CliError(exit_usage, fmt::format("output directory {} does not exist", npy_path.parent_path().string()));
  }

  h5::Handle src = open_file_readonly(file);
  DatasetReader reader(src, name, file);
  if (reader.shape() != field->shape)
    throw CliError(exit_failed, fmt::format("dataset '{}' does not have the shape its block table states", name));
  const Dtype dtype = field->dtype;
  const std::size_t esize = dtype_size(dtype);

  // Written under temporary names and renamed when complete, so an interrupted export
  // never leaves a truncated file under the final name.
  const fs::path npy_tmp = prefix + ".npy.part", h5_tmp = prefix + ".h5.part";
  struct RemoveOnError {
    std::vector<fs::path> paths;
    bool done = false;
    ~RemoveOnError() {
      if (done) return;
      std::error_code ec;
      for (const auto &p : paths) fs::remove(p, ec);
    }
  } cleanup{{npy_tmp, h5_tmp}};
  std::ofstream npy(npy_tmp, std::ios::binary | std::ios::trunc);
  if (!npy) throw CliError(exit_failed, fmt::format("cannot create {}", npy_tmp.string()));
  npy << npy_header(dtype, field->shape);

  h5::Handle out, out_dset, out_space;
  if (!link) {
    h5::silence_errors();
    out = own(H5Fcreate(h5_tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
              fmt::format("cannot create {}", h5_path.string()));
    std::vector<hsize_t> dims(field->shape.begin(), field->shape.end());
    const std::string what = fmt::format("cannot create dataset '{}' in {}", name, h5_path.string());
    out_space = own(field->shape.empty() ? H5Screate(H5S_SCALAR)
                                         : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                    what);
    out_dset = own(H5Dcreate2(out, name.c_str(), h5::file_type(dtype), out_space, H5P_DEFAULT, H5P_DEFAULT,
                              H5P_DEFAULT),
                   what);
    write_attribute_int64(out, "step", info.step);
    write_attribute_double(out, "time", info.time);
    write_attribute_string(out, "source", fs::absolute(file).string());
    write_attribute_string(out, "field_kind", std::string(kind_name(field->kind)));
  }

  const std::uint64_t row = std::max<std::uint64_t>(1, reader.row_elements());
  const std::uint64_t rows_per_slab = std::max<std::uint64_t>(1, (std::uint64_t{1} << 23) / row);
  Progress progress(want_progress(vm), "exporting", volume(field->shape) * esize);
  std::vector<unsigned char> buf;
  for (std::uint64_t r = 0; r < reader.rows() && reader.elements() > 0; r += rows_per_slab) {
    std::uint64_t nrows = std::min(rows_per_slab, reader.rows() - r);
    std::uint64_t n = field->shape.empty() ? 1 : nrows * row;
    buf.resize(n * esize);
    // Little-endian in memory, so the bytes go to the .npy file as they are.
    reader.read_rows(h5::file_type(dtype), r, nrows, buf.data());
    npy.write(reinterpret_cast<const char *>(buf.data()), static_cast<std::streamsize>(buf.size()));
    if (!link)
      write_rows(out_dset, field->shape, h5::file_type(dtype), r, nrows, buf.data(),
                 fmt::format("writing {} failed", h5_path.string()));
    progress.advance(n * esize);
  }
  progress.finish();
  npy.close();
  if (!npy) throw CliError(exit_failed, fmt::format("writing {} failed", npy_tmp.string()));
  if (!link) {
    const std::string what = fmt::format("closing {} failed", h5_tmp.string());
    close(out_dset, what);
    close(out_space, what);
    close(out, what);
  }
  std::error_code rename_ec;
  if (!link) {
    fs::rename(h5_tmp, h5_path, rename_ec);
    if (rename_ec)
      throw CliError(exit_failed, fmt::format("cannot rename {} to {}: {}", h5_tmp.string(), h5_path.string(),
                                              rename_ec.message()));
    std::cout << fmt::format("wrote {}\n", h5_path.string());
  }
  fs::rename(npy_tmp, npy_path, rename_ec);
  if (rename_ec)
    throw CliError(exit_failed, fmt::format("cannot rename {} to {}: {}", npy_tmp.string(), npy_path.string(),
                                            rename_ec.message()));
  cleanup.done = true;
  std::cout << fmt::format("wrote {} ({} {} {})\n", npy_path.string(), kind_name(field->kind), dtype_name(dtype),
                           shape_text(field->shape));

  if (field->shape.empty() || field->shape.size() > 3) {
    std::cout << fmt::format("no XDMF file: '{}' is {}; XDMF grids need 1 to 3 dimensions\n", name,
                             field->shape.empty() ? "a scalar" : "more than 3-dimensional");
    return exit_ok;
  }
  // XDMF resolves a relative HDF5 path against the directory of the .xdmf file.
  std::string ref = link ? fs::absolute(file).string() + ":/" + name : h5_path.filename().string() + ":/" + name;
  std::ofstream xdmf(xdmf_path, std::ios::trunc);
  xdmf << xdmf_document(name, field->shape, dtype, info.step, info.time, spacing, ref);
  xdmf.close();
  if (!xdmf) throw CliError(exit_failed, fmt::format("writing {} failed", xdmf_path.string()));
  std::cout << fmt::format("wrote {} (grid {}, data {})\n", xdmf_path.string(), shape_text(field->shape), ref);
  return exit_ok;
}

} // namespace ckpt::cli
