#include <ckpt/formats/checkpoint_file.hpp>
#include <ckpt/formats/checksum.hpp>
#include <ckpt/formats/image_view.hpp>
#include <ckpt/formats/raw_writer.hpp>
#include <ckpt/version.hpp>

#include "image_spots.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <type_traits>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

// The checksum of HDF5 metadata (Jenkins' lookup3): exported by libhdf5 (since 1.8.7) but
// declared only in its private headers.
extern "C" std::uint32_t H5_checksum_metadata(const void *data, std::size_t len, std::uint32_t initval);

namespace ckpt::formats {

namespace {

// The dtype of a dataset's stored type; nothing for types ckpt does not write.
bool dtype_of_h5(hid_t type, Dtype &out) {
  const H5T_class_t cls = H5Tget_class(type);
  const std::size_t size = H5Tget_size(type);
  if (cls == H5T_INTEGER) {
    const bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
    switch (size) {
    case 1: out = is_signed ? Dtype::i8 : Dtype::u8; return true;
    case 2: out = is_signed ? Dtype::i16 : Dtype::u16; return true;
    case 4: out = is_signed ? Dtype::i32 : Dtype::u32; return true;
    case 8: out = is_signed ? Dtype::i64 : Dtype::u64; return true;
    default: return false;
    }
  }
  if (cls == H5T_FLOAT) {
    if (size == 4) { out = Dtype::f32; return true; }
    if (size == 8) { out = Dtype::f64; return true; }
  }
  return false;
}

std::vector<hsize_t> dims(const Shape &s) { return {s.begin(), s.end()}; }

h5::Handle make_space(const Shape &s) {
  if (s.empty())
    return h5::Handle(H5Screate(H5S_SCALAR), "creating a scalar dataspace");
  auto d = dims(s);
  return h5::Handle(H5Screate_simple(static_cast<int>(d.size()), d.data(), nullptr),
                    "creating a dataspace");
}

// Selects offset/count in `space` (or nothing when `none` or the count is empty).
void select(hid_t space, const Shape &offset, const Shape &count, bool none) {
  if (none || (!count.empty() && volume(count) == 0)) {
    h5::check(H5Sselect_none(space), "selecting nothing");
    return;
  }
  if (count.empty()) {
    h5::check(H5Sselect_all(space), "selecting a scalar");
    return;
  }
  auto o = dims(offset), c = dims(count);
  h5::check(H5Sselect_hyperslab(space, H5S_SELECT_SET, o.data(), nullptr, c.data(), nullptr),
            "selecting a hyperslab");
}

void write_attr_string(hid_t obj, const char *name, const std::string &value) {
  h5::Handle type(H5Tcopy(H5T_C_S1), "copying the string type");
  h5::check(H5Tset_size(type, H5T_VARIABLE), "making a variable-length string type");
  h5::check(H5Tset_cset(type, H5T_CSET_UTF8), "setting UTF-8");
  h5::Handle space(H5Screate(H5S_SCALAR), "creating a scalar dataspace");
  h5::Handle attr(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT),
                  fmt::format("creating attribute '{}'", name));
  const char *p = value.c_str();
  h5::check(H5Awrite(attr, type, &p), fmt::format("writing attribute '{}'", name));
}

template <class T> void write_attr(hid_t obj, const char *name, hid_t type, const T *v, hsize_t n) {
  h5::Handle space = n == 0 ? h5::Handle(H5Screate(H5S_SCALAR), "creating a scalar dataspace")
                            : h5::Handle(H5Screate_simple(1, &n, nullptr), "creating a dataspace");
  h5::Handle attr(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT),
                  fmt::format("creating attribute '{}'", name));
  h5::check(H5Awrite(attr, type, v), fmt::format("writing attribute '{}'", name));
}

bool has_attr(hid_t obj, const char *name) { return H5Aexists(obj, name) > 0; }

std::string read_attr_string(hid_t obj, const char *name) {
  h5::Handle attr(H5Aopen(obj, name, H5P_DEFAULT), fmt::format("opening attribute '{}'", name));
  h5::Handle ftype(H5Aget_type(attr), "getting an attribute type");
  if (H5Tget_class(ftype) != H5T_STRING)
    throw Error(Errc::corrupt, -1, fmt::format("attribute '{}' is not a string", name));
  if (H5Tis_variable_str(ftype) > 0) {
    h5::Handle mtype(H5Tcopy(H5T_C_S1), "copying the string type");
    H5Tset_size(mtype, H5T_VARIABLE);
    H5Tset_cset(mtype, H5Tget_cset(ftype));
    char *p = nullptr;
    h5::check(H5Aread(attr, mtype, &p), fmt::format("reading attribute '{}'", name));
    std::string s = p ? p : "";
    if (p)
      H5free_memory(p);
    return s;
  }
  std::size_t n = H5Tget_size(ftype);
  if (n == 0 || n > (1u << 16)) // ckpt writes variable-length strings; a huge fixed one is damage
    throw Error(Errc::corrupt, -1, fmt::format("attribute '{}' has a bad string size {}", name, n));
  std::string s(n, '\0');
  h5::check(H5Aread(attr, ftype, s.data()), fmt::format("reading attribute '{}'", name));
  s.resize(std::strlen(s.c_str()));
  return s;
}

template <class T> std::vector<T> read_attr(hid_t obj, const char *name, hid_t type) {
  h5::Handle attr(H5Aopen(obj, name, H5P_DEFAULT), fmt::format("opening attribute '{}'", name));
  h5::Handle space(H5Aget_space(attr), "getting an attribute dataspace");
  hssize_t n = H5Sget_simple_extent_npoints(space);
  if (n < 1 || n > 64)
    throw Error(Errc::corrupt, -1, fmt::format("attribute '{}' has {} values", name, n));
  std::vector<T> v(static_cast<std::size_t>(n));
  h5::check(H5Aread(attr, type, v.data()), fmt::format("reading attribute '{}'", name));
  return v;
}

std::string iso_utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Writes a 2-D int64 or 1-D uint64 table from rank 0; the other ranks select nothing.
void write_table(hid_t group, const char *name, hid_t type, const void *data, const Shape &shape,
                 bool mine, hid_t dxpl) {
  h5::Handle space = make_space(shape);
  h5::Handle ds(H5Dcreate2(group, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                fmt::format("creating table '{}'", name));
  h5::Handle fsel(H5Dget_space(ds), "getting a dataspace");
  h5::Handle msel = make_space(shape);
  select(fsel, Shape(shape.size(), 0), shape, !mine);
  select(msel, Shape(shape.size(), 0), shape, !mine);
  h5::check(H5Dwrite(ds, type, msel, fsel, dxpl, data), fmt::format("writing table '{}'", name));
}

std::vector<std::int64_t> block_table(const FieldInfo &f, std::size_t &width) {
  const std::size_t nd = f.shape.size();
  width = 1 + 2 * nd;
  std::vector<std::int64_t> t;
  t.reserve(f.blocks.size() * width);
  for (const auto &b : f.blocks) {
    t.push_back(b.rank);
    for (auto o : b.offset)
      t.push_back(static_cast<std::int64_t>(o));
    for (auto c : b.count)
      t.push_back(static_cast<std::int64_t>(c));
  }
  return t;
}

// A field's block checksums, in block order: its checksum table.
std::vector<std::uint64_t> block_checksums(const FieldWrite &f) {
  std::vector<std::uint64_t> sums;
  sums.reserve(f.blocks.size());
  for (const auto &b : f.blocks)
    sums.push_back(b.checksum);
  return sums;
}

// Writes a field's checksum table `ds` (an open dataset).
void write_checksums(hid_t ds, const FieldWrite &f) {
  const auto sums = block_checksums(f);
  h5::check(H5Dwrite(ds, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, sums.data()),
            fmt::format("writing the checksums of field '{}'", f.name));
}

} // namespace

std::uint64_t header_checksum(const CheckpointInfo &info) {
  std::string s = fmt::format("{}|{}.{}|{}|{}|{:a}|{}|{}|{}", info.format, info.format_major,
                              info.format_minor, info.library_version, info.step, info.time,
                              info.nranks, info.created, info.checksum_algorithm);
  for (const auto &[k, v] : info.metadata)
    s += fmt::format("|m:{}={}", k, v);
  // Fields in name order: the order HDF5 lists them in, whatever order they were written.
  std::vector<const FieldInfo *> sorted;
  for (const auto &f : info.fields)
    sorted.push_back(&f);
  std::sort(sorted.begin(), sorted.end(), [](auto *a, auto *b) { return a->name < b->name; });
  for (const FieldInfo *fp : sorted) {
    const FieldInfo &f = *fp;
    s += fmt::format("|f:{}:{}:{}:{}", f.name, kind_name(f.kind), dtype_name(f.dtype),
                     fmt::join(f.shape, "x"));
    for (const auto &b : f.blocks)
      s += fmt::format("|b:{}:{}:{}:{}:{:x}", b.rank, fmt::join(b.offset, ","),
                       fmt::join(b.count, ","), fmt::join(b.local_shape, ","), b.checksum);
  }
  return checksum(s.data(), s.size());
}

// ---------------------------------------------------------------------------------------
// Fast path: rank 0 lays the file out serially, every rank writes its raw data with pwrite
// (raw_writer.cpp), rank 0 writes the checksums at the end.

namespace {

CheckpointInfo info_for(const Header &header, const std::vector<FieldWrite> &fields, const std::string &created) {
  CheckpointInfo info;
  info.format = format_name;
  info.format_major = format_major;
  info.format_minor = format_minor;
  info.library_version = library_version();
  info.step = header.step;
  info.time = header.time;
  info.nranks = header.nranks;
  info.created = created;
  info.checksum_algorithm = std::string(checksum_algorithm);
  info.metadata = header.metadata;
  for (const auto &f : fields)
    info.fields.push_back(FieldInfo{f.name, f.kind, f.dtype, f.shape, f.blocks});
  return info;
}

} // namespace

namespace {

// The file access properties of a checkpoint (both drivers): alignment, HDF5 1.8 structures.
h5::Handle checkpoint_fapl(const std::vector<FieldWrite> &fields) {
  h5::Handle fapl(H5Pcreate(H5P_FILE_ACCESS), "creating file access properties");
  // Datasets of 64 KiB or more start on a page (4 KiB) boundary, so that large ones are
  // written and read with O_DIRECT from their first byte; smaller objects are packed. The
  // file stays within a few KiB of the payload (a 1 MiB alignment made a 2 MiB state a
  // 3.15 MB file).
  h5::check(H5Pset_alignment(fapl, 64 << 10, direct_align), "setting alignment");
  // HDF5 1.8 file structures: the superblock, object headers and link/attribute heaps carry
  // checksums that HDF5 checks before decoding them, so damage there is refused instead of
  // parsed (HDF5 1.10 crashes on some damaged 1.6-style headers; tests/faults/).
  // The image view of a grid of fewer than 3 dimensions is a virtual dataset, the one
  // object that needs the HDF5 1.10 format; everything else stays at 1.8.
  bool virtual_view = false;
  for (const auto &f : fields)
    if (f.grid) {
      virtual_view = image_needs_virtual(f.shape);
      break;
    }
  h5::check(H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, virtual_view ? H5F_LIBVER_V110 : H5F_LIBVER_V18),
            "choosing the HDF5 file format (1.8; 1.10 for a virtual image view)");
  return fapl;
}

// The file creation properties: the root group keeps its attributes in its object header
// (compact storage) instead of a heap and B-tree once there are more than 8 of them, which
// makes rewriting them cheap (FileImage). Each compact attribute must stay under 64 KiB.
h5::Handle checkpoint_fcpl(const Header &header) {
  h5::Handle fcpl(H5Pcreate(H5P_FILE_CREATE), "creating file creation properties");
  bool small = header.metadata.size() < 200;
  for (const auto &[k, v] : header.metadata)
    small = small && k.size() + v.size() < (48u << 10) + 1024;
  if (small)
    h5::check(H5Pset_attr_phase_change(fcpl, 256, 200), "keeping the root attributes compact");
  return fcpl;
}

// Every attribute, dataset and table of format v1 in `file`, the raw data regions allocated
// early and not written. `final`: the block checksums (in `fields[i].blocks`) and the header
// checksum are written as they are; otherwise zeros, for finish_file to fill in.
Layout lay_out(hid_t file, const std::string &path, const CheckpointInfo &info, const std::vector<FieldWrite> &fields,
               bool final) {
  Layout layout;
  layout.created = info.created;
  std::vector<ImageArray> image;
  const Grid *grid = nullptr;
  for (const auto &f : fields)
    if (f.grid) {
      image.push_back({f.name, f.shape, f.dtype});
      grid = &*f.grid;
    }

  write_attr_string(file, "ckpt_format", info.format);
  const std::int32_t version[2] = {format_major, format_minor};
  write_attr(file, "ckpt_format_version", H5T_NATIVE_INT32, version, 2);
  write_attr_string(file, "ckpt_library_version", info.library_version);
  write_attr(file, "step", H5T_NATIVE_INT64, &info.step, 0);
  write_attr(file, "time", H5T_NATIVE_DOUBLE, &info.time, 0);
  const std::int32_t nranks = info.nranks;
  write_attr(file, "nranks", H5T_NATIVE_INT32, &nranks, 0);
  write_attr_string(file, "created", info.created);
  write_attr_string(file, "ckpt_checksum", info.checksum_algorithm);
  for (const auto &[k, v] : info.metadata)
    write_attr_string(file, ("meta." + k).c_str(), v);
  const std::uint64_t hsum = final ? header_checksum(info) : 0; // else finish_file writes it
  write_attr(file, "ckpt_header_checksum", H5T_NATIVE_UINT64, &hsum, 0);

  h5::Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), "creating dataset properties");
  h5::check(H5Pset_layout(dcpl, H5D_CONTIGUOUS), "choosing contiguous layout");
  h5::check(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER), "disabling fill values");
  h5::check(H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY), "choosing early allocation");

  h5::Handle meta(H5Gcreate2(file, meta_group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "creating the _ckpt group");
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const auto &f = fields[i];
    const std::string what = fmt::format("field '{}'", f.name);
    h5::Handle space = make_space(f.shape);
    h5::Handle ds(H5Dcreate2(file, f.name.c_str(), h5::native_type(f.dtype), space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
                  "creating dataset for " + what);
    write_attr_string(ds, "ckpt_kind", std::string(kind_name(f.kind)));
    const haddr_t addr = H5Dget_offset(ds);
    layout.data_offset.push_back(volume(f.shape) == 0 || addr == HADDR_UNDEF ? Layout::no_offset
                                                                               : static_cast<std::uint64_t>(addr));
    if (volume(f.shape) > 0 && addr == HADDR_UNDEF)
      throw Error(Errc::hdf5, -1, fmt::format("no raw data address for {} in {}", what, path));

    h5::Handle g(H5Gcreate2(meta, f.name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                 "creating the block tables of " + what);
    std::size_t width = 0;
    auto table = block_table(info.fields[i], width);
    const std::uint64_t nb = f.blocks.size();
    write_table(g, "blocks", H5T_NATIVE_INT64, table.data(), {nb, width}, true, H5P_DEFAULT);
    const std::vector<std::uint64_t> sums = final ? block_checksums(f) : std::vector<std::uint64_t>(nb, 0);
    write_table(g, "checksums", H5T_NATIVE_UINT64, sums.data(), {nb}, true, H5P_DEFAULT);
    if (f.kind == Kind::per_rank) {
      const std::uint64_t lnd = f.blocks.empty() ? 0 : f.blocks[0].local_shape.size();
      const std::int32_t lnd32 = static_cast<std::int32_t>(lnd);
      write_attr(ds, "ckpt_local_ndim", H5T_NATIVE_INT32, &lnd32, 0);
      if (lnd > 0) {
        std::vector<std::int64_t> ls;
        for (const auto &b : f.blocks)
          for (auto d : b.local_shape)
            ls.push_back(static_cast<std::int64_t>(d));
        write_table(g, "local_shapes", H5T_NATIVE_INT64, ls.data(), {nb, lnd}, true, H5P_DEFAULT);
      }
    }
  }
  meta.close();
  if (grid)
    write_image_view(file, image, image_geometry(*grid), "");
  return layout;
}

} // namespace

Layout create_file(const std::string &path, const Header &header, const std::vector<FieldWrite> &fields) {
  h5::silence_errors();
  const CheckpointInfo info = info_for(header, fields, iso_utc_now());
  h5::Handle fapl = checkpoint_fapl(fields);
  h5::check(H5Pset_fapl_sec2(fapl), "selecting the sec2 driver");
  h5::Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, checkpoint_fcpl(header), fapl), fmt::format("creating {}", path));
  Layout layout = lay_out(file, path, info, fields, false);
  file.close();
  return layout;
}

namespace {

// HDF5 1.10's H5Fget_file_image clears the superblock's "file open for write" flag in the
// image but leaves the checksum computed with the flag set, so HDF5 then refuses the file
// ("incorrect metadata checksum"). The superblock (version 2 or 3, 8-byte addresses): 12
// bytes of signature, versions, sizes and flags (the flags at byte 11), four addresses,
// then the checksum of those 44 bytes. This recomputes it, after checking that the stored
// one is what HDF5 computed with the flag set (an HDF5 that fixed this needs nothing).
void clear_open_flag(std::byte *image, std::uint64_t size) {
  constexpr std::size_t flags_at = 11, sum_at = 44;
  if (size < sum_at + 4 || std::memcmp(image, "\x89HDF\r\n\x1a\n", 8) != 0 || (image[8] != std::byte{2} && image[8] != std::byte{3}) ||
      image[9] != std::byte{8})
    throw Error(Errc::hdf5, -1, "the checkpoint image from HDF5 does not start with the expected superblock");
  std::uint32_t stored = 0;
  std::memcpy(&stored, image + sum_at, 4);
  if (H5_checksum_metadata(image, sum_at, 0) == stored)
    return;
  std::array<std::byte, sum_at> open{};
  std::memcpy(open.data(), image, sum_at);
  open[flags_at] |= std::byte{1};
  if (H5_checksum_metadata(open.data(), sum_at, 0) != stored)
    throw Error(Errc::hdf5, -1, "the superblock checksum of the checkpoint image from HDF5 is not the expected one");
  const std::uint32_t fixed = H5_checksum_metadata(image, sum_at, 0);
  std::memcpy(image + sum_at, &fixed, 4);
}

// What a reused image must share with the save: everything in the file but the step, the
// time, the creation time, the metadata values and the checksums. Kept as values and
// compared field by field (no formatting: this runs at every small save).
struct ImageKey {
  int nranks = 0;
  std::vector<std::string> meta_keys;
  std::vector<FieldWrite> fields; // name, kind, dtype, shape, grid and blocks; no data
};

ImageKey image_key(const Header &header, const std::vector<FieldWrite> &fields) {
  ImageKey k;
  k.nranks = header.nranks;
  for (const auto &[key, v] : header.metadata)
    k.meta_keys.push_back(key);
  for (const auto &f : fields) {
    FieldWrite c;
    c.name = f.name;
    c.kind = f.kind;
    c.dtype = f.dtype;
    c.shape = f.shape;
    c.grid = f.grid;
    c.blocks = f.blocks;
    k.fields.push_back(std::move(c));
  }
  return k;
}

bool same_grid(const std::optional<Grid> &a, const std::optional<Grid> &b) {
  return a.has_value() == b.has_value() && (!a || (a->origin == b->origin && a->spacing == b->spacing));
}

bool same_key(const ImageKey &k, const Header &header, const std::vector<FieldWrite> &fields) {
  if (k.nranks != header.nranks || k.meta_keys.size() != header.metadata.size() || k.fields.size() != fields.size())
    return false;
  std::size_t m = 0;
  for (const auto &[key, v] : header.metadata)
    if (k.meta_keys[m++] != key)
      return false;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const FieldWrite &a = k.fields[i], &b = fields[i];
    if (a.name != b.name || a.kind != b.kind || a.dtype != b.dtype || a.shape != b.shape || !same_grid(a.grid, b.grid) ||
        a.blocks.size() != b.blocks.size())
      return false;
    for (std::size_t j = 0; j < a.blocks.size(); ++j) {
      const BlockInfo &x = a.blocks[j], &y = b.blocks[j];
      if (x.rank != y.rank || x.offset != y.offset || x.count != y.count || x.local_shape != y.local_shape)
        return false;
    }
  }
  return true;
}

} // namespace

struct FileImage::Open {
  ImageKey key;
  Layout layout;
  std::uint64_t data_end = 0;   // end of the last raw data region
  std::uint64_t fresh_size = 0; // the image's size when it was built
  std::uint64_t size = 0;       // the image's size now
  h5::Handle file, step, time, created, header_sum;
  std::vector<h5::Handle> meta; // the metadata attributes, in key order
  std::vector<h5::Handle> sums; // per field: its checksum table (invalid when it has no blocks)
  // Where the changing values lie in the image (image_spots.hpp), for patch(): step, time,
  // created, header checksum, then the metadata values in key order. Empty: not patchable.
  std::vector<detail::Spot> spots;
  std::vector<std::uint64_t> sums_at; // per field: its checksum table in the image
};

namespace {

constexpr std::size_t spot_step = 0, spot_time = 1, spot_created = 2, spot_header_sum = 3, spot_meta = 4;

void put(std::byte *image, const detail::Spot &s, const void *value) { std::memcpy(image + s.at, value, s.bytes); }

// The checksum tables' bytes in the image (`sums[i]` open, its values written).
std::uint64_t table_at(hid_t ds) {
  const haddr_t a = ds < 0 ? HADDR_UNDEF : H5Dget_offset(ds);
  return a == HADDR_UNDEF ? Layout::no_offset : static_cast<std::uint64_t>(a);
}

// Finds where the changing values lie in the image just copied from HDF5 (which holds
// `info`'s values), and checks that each holds what HDF5 wrote there: a value found
// anywhere else leaves the image to be rebuilt by HDF5 at every save instead.
// `sums`: the open checksum tables (Open::sums); fills `spots_out` and `sums_at_out`, or
// leaves both empty.
void find_spots(const CheckpointInfo &info, const std::vector<FieldWrite> &fields, const std::vector<h5::Handle> &sums,
                const std::byte *image, std::uint64_t size, std::vector<detail::Spot> &spots_out,
                std::vector<std::uint64_t> &sums_at_out) {
  spots_out.clear();
  sums_at_out.clear();
  std::vector<std::string> names{"step", "time", "created", "ckpt_header_checksum"};
  for (const auto &[k, v] : info.metadata)
    names.push_back("meta." + k);
  auto spots = detail::find_root_attributes(image, size, names);
  if (!spots)
    return;
  auto holds = [&](const detail::Spot &s, const void *value, std::uint64_t bytes) {
    return s.bytes == bytes && s.at + bytes <= size && std::memcmp(image + s.at, value, bytes) == 0;
  };
  const std::uint64_t hsum = header_checksum(info);
  bool ok = holds((*spots)[spot_step], &info.step, 8) && holds((*spots)[spot_time], &info.time, 8) &&
            holds((*spots)[spot_created], info.created.data(), info.created.size()) &&
            holds((*spots)[spot_header_sum], &hsum, 8);
  std::size_t m = spot_meta;
  for (const auto &[k, v] : info.metadata)
    ok = ok && holds((*spots)[m++], v.data(), v.size());
  std::vector<std::uint64_t> sums_at;
  for (std::size_t i = 0; i < fields.size() && ok; ++i) {
    sums_at.push_back(sums[i].valid() ? table_at(sums[i]) : Layout::no_offset);
    if (sums[i].valid()) {
      const auto values = block_checksums(fields[i]);
      ok = sums_at.back() != Layout::no_offset && sums_at.back() + 8 * values.size() <= size &&
           std::memcmp(image + sums_at.back(), values.data(), 8 * values.size()) == 0;
    }
  }
  if (ok) {
    spots_out = std::move(*spots);
    sums_at_out = std::move(sums_at);
  }
}

} // namespace

FileImage::FileImage() = default;

FileImage::~FileImage() = default;

void FileImage::close() noexcept { open_.reset(); }

std::uint64_t FileImage::build(const Header &header, const std::vector<FieldWrite> &fields, Staging &image,
                               Layout &layout) {
  h5::silence_errors();
  const CheckpointInfo info = info_for(header, fields, iso_utc_now());
  if (open_ && !same_key(open_->key, header, fields))
    open_.reset();
  try {
    if (!open_) {
      auto o = std::make_unique<Open>();
      std::uint64_t payload = 0;
      for (const auto &f : fields)
        payload += volume(f.shape) * dtype_size(f.dtype);
      h5::Handle fapl = checkpoint_fapl(fields);
      // In memory only (no backing store): the file grows in steps of the payload + 64 KiB.
      h5::check(H5Pset_fapl_core(fapl, static_cast<std::size_t>(payload + (64 << 10)), false),
                "selecting the core driver");
      // A name unique in this process: HDF5 refuses to create a file that is open.
      static std::atomic<std::uint64_t> images{0};
      const std::string name = fmt::format("ckpt-image-{}-{}", ::getpid(), images++);
      o->file = h5::Handle(H5Fcreate(name.c_str(), H5F_ACC_TRUNC, checkpoint_fcpl(header), fapl),
                           "creating a checkpoint image in memory");
      o->layout = lay_out(o->file, name, info, fields, true);
      for (std::size_t i = 0; i < fields.size(); ++i)
        if (o->layout.data_offset[i] != Layout::no_offset)
          o->data_end = std::max(o->data_end, o->layout.data_offset[i] + volume(fields[i].shape) * dtype_size(fields[i].dtype));
      auto attr = [&](const char *n) { return h5::Handle(H5Aopen(o->file, n, H5P_DEFAULT), fmt::format("opening attribute '{}'", n)); };
      o->step = attr("step");
      o->time = attr("time");
      o->created = attr("created");
      o->header_sum = attr("ckpt_header_checksum");
      for (const auto &[k, v] : info.metadata)
        o->meta.push_back(attr(("meta." + k).c_str()));
      for (const auto &f : fields)
        o->sums.push_back(f.blocks.empty() ? h5::Handle()
                                           : h5::Handle(H5Dopen2(o->file, fmt::format("{}/{}/checksums", meta_group, f.name).c_str(), H5P_DEFAULT),
                                                        fmt::format("opening the checksums of field '{}'", f.name)));
      o->key = image_key(header, fields);
      open_ = std::move(o);
    } else {
      // The same file but for the values that change from one save to the next.
      Open &o = *open_;
      h5::check(H5Awrite(o.step, H5T_NATIVE_INT64, &info.step), "writing the step");
      h5::check(H5Awrite(o.time, H5T_NATIVE_DOUBLE, &info.time), "writing the time");
      // Variable-length strings (the creation time, the metadata): a value of another length
      // takes new space in HDF5's global heap, so the image grows (rebuilt below).
      auto write_string = [](hid_t attr, const std::string &value, const char *what) {
        h5::Handle vtype(H5Aget_type(attr), fmt::format("getting the type of {}", what));
        const char *c = value.c_str();
        h5::check(H5Awrite(attr, vtype, &c), fmt::format("writing {}", what));
      };
      write_string(o.created, info.created, "the creation time");
      std::size_t m = 0;
      for (const auto &[k, v] : info.metadata)
        write_string(o.meta[m++], v, "metadata");
      const std::uint64_t hsum = header_checksum(info);
      h5::check(H5Awrite(o.header_sum, H5T_NATIVE_UINT64, &hsum), "writing the header checksum");
      for (std::size_t i = 0; i < fields.size(); ++i)
        if (o.sums[i].valid())
          write_checksums(o.sums[i], fields[i]);
    }
    Open &o = *open_;
    o.layout.created = info.created;
    h5::check(H5Fflush(o.file, H5F_SCOPE_LOCAL), "flushing the checkpoint image");
    const ssize_t n = H5Fget_file_image(o.file, nullptr, 0);
    if (n < 0)
      throw Error(Errc::hdf5, -1, "cannot get the size of the checkpoint image");
    // The raw data regions end the file; the image HDF5 returns may stop before the last one
    // (never written), so the size is the larger of both.
    if (o.fresh_size == 0) {
      o.fresh_size = static_cast<std::uint64_t>(n);
    } else if (static_cast<std::uint64_t>(n) > o.fresh_size + (8 << 10)) {
      open_.reset(); // grown by rewritten strings: built anew, at its first size again
      return build(header, fields, image, layout);
    }
    const std::uint64_t size = std::max(static_cast<std::uint64_t>(n), o.data_end);
    image.reserve(std::max<std::uint64_t>(size, 1));
    if (H5Fget_file_image(o.file, image.data(), static_cast<std::size_t>(n)) != n)
      throw Error(Errc::hdf5, -1, "cannot copy the checkpoint image");
    clear_open_flag(image.data(), static_cast<std::uint64_t>(n));
    // Alignment gaps and unwritten data regions: zeros, so that a file is a function of its contents.
    std::memset(image.data() + n, 0, static_cast<std::size_t>(size - static_cast<std::uint64_t>(n)));
    find_spots(info, fields, o.sums, image.data(), static_cast<std::uint64_t>(n), o.spots, o.sums_at);
    o.size = size;
    layout = o.layout;
    return size;
  } catch (...) {
    open_.reset(); // built anew next time
    throw;
  }
}

bool FileImage::patchable(const Header &header, const std::vector<FieldWrite> &fields) const {
  if (!open_ || open_->spots.empty())
    return false;
  const Open &o = *open_;
  std::size_t m = spot_meta;
  for (const auto &[k, v] : header.metadata)
    if (m >= o.spots.size() || o.spots[m++].bytes != v.size())
      return false; // a value of another length: HDF5 allocates it anew
  return same_key(o.key, header, fields);
}

std::uint64_t FileImage::patch(const Header &header, const std::vector<FieldWrite> &fields, Staging &image,
                               Layout &layout) {
  Open &o = *open_;
  const CheckpointInfo info = info_for(header, fields, iso_utc_now());
  if (info.created.size() != o.spots[spot_created].bytes)
    throw Error(Errc::internal, -1, fmt::format("the creation time '{}' does not fit the checkpoint image", info.created));
  std::byte *p = image.data();
  put(p, o.spots[spot_step], &info.step);
  put(p, o.spots[spot_time], &info.time);
  put(p, o.spots[spot_created], info.created.data());
  const std::uint64_t hsum = header_checksum(info);
  put(p, o.spots[spot_header_sum], &hsum);
  std::size_t m = spot_meta;
  for (const auto &[k, v] : info.metadata)
    put(p, o.spots[m++], v.data());
  for (const auto &s : o.spots) // after every value of a chunk is in place
    detail::update_chunk_checksum(p, s);
  for (std::size_t i = 0; i < fields.size(); ++i)
    if (o.sums_at[i] != Layout::no_offset) {
      const auto sums = block_checksums(fields[i]);
      std::memcpy(p + o.sums_at[i], sums.data(), 8 * sums.size());
    }
  o.layout.created = info.created;
  layout = o.layout;
  return o.size;
}

void finish_file(const std::string &path, const Header &header, const std::vector<FieldWrite> &fields,
                 const Layout &layout) {
  h5::silence_errors();
  const CheckpointInfo info = info_for(header, fields, layout.created);
  h5::Handle file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), fmt::format("opening {} to finish it", path));
  h5::Handle meta(H5Gopen2(file, meta_group, H5P_DEFAULT), "opening the _ckpt group");
  for (const auto &f : fields) {
    if (f.blocks.empty())
      continue;
    h5::Handle g(H5Gopen2(meta, f.name.c_str(), H5P_DEFAULT), fmt::format("opening the tables of field '{}'", f.name));
    h5::Handle ds(H5Dopen2(g, "checksums", H5P_DEFAULT), fmt::format("opening the checksums of field '{}'", f.name));
    write_checksums(ds, f);
  }
  const std::uint64_t hsum = header_checksum(info);
  h5::Handle attr(H5Aopen(file, "ckpt_header_checksum", H5P_DEFAULT), "opening the header checksum");
  h5::check(H5Awrite(attr, H5T_NATIVE_UINT64, &hsum), "writing the header checksum");
  attr.close();
  meta.close();
  file.close();
}

// ---------------------------------------------------------------------------------------

namespace {

bool is_group(hid_t file, const std::string &name) {
  H5O_info_t info;
  return H5Oget_info_by_name2(file, name.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) >= 0 &&
         info.type == H5O_TYPE_GROUP;
}

struct LinkList {
  std::vector<std::string> names;
};

herr_t collect_link(hid_t, const char *name, const H5L_info_t *, void *data) {
  static_cast<LinkList *>(data)->names.emplace_back(name);
  return 0;
}

template <class T = std::int64_t>
std::vector<T> read_table(hid_t group, const char *name, std::uint64_t rows, std::uint64_t cols,
                          const std::string &field) {
  h5::Handle ds(H5Dopen2(group, name, H5P_DEFAULT),
                fmt::format("opening table '{}' of field '{}'", name, field));
  h5::Handle space(H5Dget_space(ds), "getting a dataspace");
  const int nd = H5Sget_simple_extent_ndims(space);
  hsize_t d[2] = {0, 0};
  H5Sget_simple_extent_dims(space, d, nullptr);
  const bool ok = cols == 0 ? (nd == 1 && d[0] == rows) : (nd == 2 && d[0] == rows && d[1] == cols);
  if (!ok)
    throw Error(Errc::corrupt, -1,
                fmt::format("table '{}' of field '{}' has the wrong shape", name, field));
  std::vector<T> v(static_cast<std::size_t>(rows * (cols ? cols : 1)));
  const hid_t mtype = std::is_same_v<T, std::uint64_t> ? H5T_NATIVE_UINT64 : H5T_NATIVE_INT64;
  if (!v.empty())
    h5::check(H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()),
              fmt::format("reading table '{}' of field '{}'", name, field));
  return v;
}

std::uint64_t table_rows(hid_t group, const char *name, const std::string &field) {
  h5::Handle ds(H5Dopen2(group, name, H5P_DEFAULT),
                fmt::format("opening table '{}' of field '{}'", name, field));
  h5::Handle space(H5Dget_space(ds), "getting a dataspace");
  hsize_t d[2] = {0, 0};
  if (H5Sget_simple_extent_ndims(space) < 1)
    throw Error(Errc::corrupt, -1, fmt::format("table '{}' of field '{}' is malformed", name, field));
  H5Sget_simple_extent_dims(space, d, nullptr);
  return d[0];
}

FieldInfo read_field(hid_t file, hid_t meta, const std::string &name, int nranks, std::uint64_t file_bytes) {
  FieldInfo f;
  f.name = name;
  h5::Handle ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), fmt::format("opening field '{}'", name));
  const std::string kind = read_attr_string(ds, "ckpt_kind");
  if (kind == "distributed")
    f.kind = Kind::distributed;
  else if (kind == "replicated")
    f.kind = Kind::replicated;
  else if (kind == "per_rank")
    f.kind = Kind::per_rank;
  else
    throw Error(Errc::corrupt, -1, fmt::format("field '{}' has unknown kind '{}'", name, kind));
  h5::Handle type(H5Dget_type(ds), "getting a dataset type");
  if (!dtype_of_h5(type, f.dtype))
    throw Error(Errc::corrupt, -1, fmt::format("field '{}' has an unsupported element type", name));
  h5::Handle space(H5Dget_space(ds), "getting a dataspace");
  const int nd = H5Sget_simple_extent_ndims(space);
  if (nd < 0 || nd > 32)
    throw Error(Errc::corrupt, -1, fmt::format("field '{}' has a bad dataspace", name));
  std::vector<hsize_t> d(static_cast<std::size_t>(nd));
  if (nd > 0)
    H5Sget_simple_extent_dims(space, d.data(), nullptr);
  f.shape.assign(d.begin(), d.end());
  // Sizes come from the file: a dataset cannot hold more bytes than the file, so a damaged
  // header cannot make a reader allocate terabytes (found by the fuzzer).
  {
    const bool empty = std::find(f.shape.begin(), f.shape.end(), std::uint64_t(0)) != f.shape.end();
    std::uint64_t bytes = dtype_size(f.dtype); // saturates at file_bytes + 1
    for (std::uint64_t y : f.shape)
      bytes = empty ? 0 : bytes > file_bytes / y ? file_bytes + 1 : bytes * y;
    if (bytes > file_bytes)
      throw Error(Errc::corrupt, -1, fmt::format("field '{}' claims more data than the file holds", name));
  }

  h5::Handle g(H5Gopen2(meta, name.c_str(), H5P_DEFAULT),
               fmt::format("opening the block tables of field '{}'", name));
  const std::uint64_t nb = table_rows(g, "checksums", name);
  if (nb > (1u << 24))
    throw Error(Errc::corrupt, -1, fmt::format("field '{}' claims {} blocks", name, nb));
  const std::uint64_t width = 1 + 2 * f.shape.size();
  if (nb * width * 8 > file_bytes)
    throw Error(Errc::corrupt, -1, fmt::format("field '{}' claims more blocks than the file holds", name));
  auto table = read_table(g, "blocks", nb, width, name);
  auto sums = read_table<std::uint64_t>(g, "checksums", nb, 0, name);
  std::uint64_t lnd = 0;
  std::vector<std::int64_t> local;
  if (f.kind == Kind::per_rank) {
    lnd = static_cast<std::uint64_t>(read_attr<std::int32_t>(ds, "ckpt_local_ndim", H5T_NATIVE_INT32)[0]);
    if (lnd > 32)
      throw Error(Errc::corrupt, -1, fmt::format("field '{}' has a bad local rank", name));
    if (lnd > 0)
      local = read_table(g, "local_shapes", nb, lnd, name);
  }
  const std::uint64_t total = volume(f.shape);
  std::uint64_t covered = 0;
  for (std::uint64_t i = 0; i < nb; ++i) {
    BlockInfo b;
    const std::int64_t *row = &table[i * width];
    b.rank = static_cast<int>(row[0]);
    if (row[0] < 0 || row[0] >= nranks)
      throw Error(Errc::corrupt, -1, fmt::format("field '{}' block {} names rank {}", name, i, row[0]));
    for (std::size_t k = 0; k < f.shape.size(); ++k) {
      const std::int64_t o = row[1 + k], c = row[1 + f.shape.size() + k];
      if (o < 0 || c < 0 || static_cast<std::uint64_t>(o + c) > f.shape[k])
        throw Error(Errc::corrupt, -1,
                    fmt::format("field '{}' block {} lies outside the dataset", name, i));
      b.offset.push_back(static_cast<std::uint64_t>(o));
      b.count.push_back(static_cast<std::uint64_t>(c));
    }
    if (f.kind == Kind::per_rank) {
      for (std::uint64_t k = 0; k < lnd; ++k) {
        if (local[i * lnd + k] < 0)
          throw Error(Errc::corrupt, -1, fmt::format("field '{}' block {} has a bad shape", name, i));
        b.local_shape.push_back(static_cast<std::uint64_t>(local[i * lnd + k]));
      }
      if (volume(b.local_shape) != volume(b.count))
        throw Error(Errc::corrupt, -1,
                    fmt::format("field '{}' block {} size does not match its shape", name, i));
    } else {
      b.local_shape = b.count;
    }
    b.checksum = sums[i];
    covered += volume(b.count);
    f.blocks.push_back(std::move(b));
  }
  if (covered != total)
    throw Error(Errc::corrupt, -1,
                fmt::format("field '{}': blocks cover {} of {} elements", name, covered, total));
  if (f.kind == Kind::per_rank && nb != static_cast<std::uint64_t>(nranks))
    throw Error(Errc::corrupt, -1, fmt::format("field '{}' has {} blocks for {} ranks", name, nb, nranks));
  return f;
}

// HDF5 1.10 loops forever when it loads a global heap collection whose objects do not
// advance (a free-space object of size 0), and ckpt's string attributes live in such a
// collection (found by the fuzzer: tests/faults/fuzz/regressions/). Before HDF5 reads any
// string, every collection outside the datasets' raw data is walked the way HDF5 walks it.
struct Extent {
  std::uint64_t begin, end;
};

// The datasets' raw data, found by a walk of the hard links that goes at most as deep as a
// checkpoint's structure (root datasets, /_ckpt/<field>/<tables>) and visits each object
// once. Not H5Ovisit: on a file whose damaged group links back to itself with a reference
// count of 1, HDF5 1.10's visit recurses without end (found by the fuzzer:
// tests/faults/fuzz/regressions/group-cycle-visit.h5).
struct ExtentWalk {
  std::vector<Extent> raw;
  std::vector<haddr_t> seen;
  int depth = 0;
};
constexpr int max_walk_depth = 3;

herr_t collect_extent(hid_t group, const char *name, const H5L_info_t *link, void *data) {
  auto &w = *static_cast<ExtentWalk *>(data);
  if (link->type != H5L_TYPE_HARD)
    return 0;
  H5O_info_t info;
  if (H5Oget_info_by_name2(group, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
    return 0; // the damage is reported with a proper message later
  if (std::find(w.seen.begin(), w.seen.end(), info.addr) != w.seen.end())
    return 0; // a second link to an object, or a cycle
  w.seen.push_back(info.addr);
  if (info.type == H5O_TYPE_DATASET) {
    const hid_t ds = H5Dopen2(group, name, H5P_DEFAULT);
    if (ds < 0)
      return 0;
    const haddr_t off = H5Dget_offset(ds);
    const hsize_t n = H5Dget_storage_size(ds);
    if (off != HADDR_UNDEF && n > 0)
      w.raw.push_back({off, off + n});
    H5Dclose(ds);
  } else if (info.type == H5O_TYPE_GROUP && w.depth < max_walk_depth) {
    const hid_t g = H5Gopen2(group, name, H5P_DEFAULT);
    if (g < 0)
      return 0;
    ++w.depth;
    hsize_t idx = 0;
    H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_extent, &w);
    --w.depth;
    H5Gclose(g);
  }
  return 0;
}

std::uint64_t le(const unsigned char *p, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i)
    v |= std::uint64_t(p[i]) << (8 * i);
  return v;
}

void check_global_heaps(hid_t file, const std::string &path, std::uint64_t file_bytes) {
  std::size_t sizeof_addr = 8, sizeof_size = 8;
  {
    h5::Handle fcpl(H5Fget_create_plist(file), "getting the file creation properties");
    h5::check(H5Pget_sizes(fcpl, &sizeof_addr, &sizeof_size), "getting the file's offset sizes");
  }
  if (sizeof_size == 0 || sizeof_size > 8)
    throw Error(Errc::corrupt, -1, fmt::format("{} has a bad size of lengths", path));
  ExtentWalk walk;
  hsize_t idx = 0;
  H5Literate(file, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_extent, &walk);
  H5Eclear2(H5E_DEFAULT);
  std::vector<Extent> &raw = walk.raw;
  std::sort(raw.begin(), raw.end(), [](const Extent &a, const Extent &b) { return a.begin < b.begin; });
  auto in_raw = [&](std::uint64_t off) {
    for (const auto &e : raw)
      if (off >= e.begin && off < e.end)
        return true;
    return false;
  };
  std::FILE *f = std::fopen(path.c_str(), "rb");
  if (!f)
    throw Error(Errc::io, -1, fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  struct Closer {
    std::FILE *f;
    ~Closer() { std::fclose(f); }
  } closer{f};
  auto read_at = [&](std::uint64_t off, std::size_t n, std::vector<unsigned char> &buf) {
    buf.resize(n);
    if (std::fseek(f, static_cast<long>(off), SEEK_SET) != 0)
      return std::size_t(0);
    return std::fread(buf.data(), 1, n, f);
  };
  const std::size_t hdr = 2 + 2 + 4 + sizeof_size; // index, references, reserved, size
  std::vector<unsigned char> chunk, heap;
  constexpr std::size_t step = 1 << 20;
  std::uint64_t pos = 0;
  while (pos < file_bytes) {
    // Skip the datasets' raw data: user bytes are never parsed as heaps.
    bool skipped = false;
    for (const auto &e : raw)
      if (pos >= e.begin && pos < e.end) {
        pos = e.end;
        skipped = true;
      }
    if (skipped)
      continue;
    std::uint64_t next_raw = file_bytes;
    for (const auto &e : raw)
      if (e.begin > pos && e.begin < next_raw)
        next_raw = e.begin;
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(step + 3, next_raw - pos));
    const std::size_t got = read_at(pos, n, chunk);
    for (std::size_t i = 0; i + 4 <= got; ++i) {
      if (std::memcmp(&chunk[i], "GCOL", 4) != 0 || in_raw(pos + i))
        continue;
      const std::uint64_t at = pos + i;
      std::vector<unsigned char> head;
      if (read_at(at, 8 + sizeof_size, head) != 8 + sizeof_size || head[4] != 1)
        continue; // not a version-1 collection: HDF5 refuses it cleanly
      const std::uint64_t size = le(&head[8], sizeof_size);
      if (size > file_bytes - at || size < 8 + sizeof_size)
        continue; // HDF5 refuses a collection that does not fit the file
      if (read_at(at, static_cast<std::size_t>(size), heap) != size)
        continue;
      for (std::uint64_t p = 8 + sizeof_size; p < size;) {
        if (p + hdr > size)
          break; // a tail too small for an object is free space
        const std::uint64_t idx = le(&heap[p], 2);
        const std::uint64_t osize = le(&heap[p + 8], sizeof_size);
        const std::uint64_t need = idx > 0 ? hdr + ((osize + 7) & ~std::uint64_t(7)) : osize;
        if (need == 0 || osize > size || need > size - p)
          throw Error(Errc::corrupt, -1,
                      fmt::format("{} is damaged: the string heap at byte {} has a malformed object at byte {}",
                                  path, at, at + p));
        p += need;
      }
    }
    pos += got > 3 ? got - 3 : (got ? got : 1);
    if (got == 0)
      break;
  }
}

// MPI_File_open is collective, and a rank whose open fails leaves the others inside
// HDF5's collective open. So every rank first opens the file and reads its first block
// with POSIX calls, and all agree: when one rank cannot (EIO, EACCES, EMFILE, ...), every
// rank throws the same Error(io) naming that rank and errno, and nobody enters MPI-IO.
void check_openable_everywhere(const std::string &path, MPI_Comm comm) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  int err = 0, op = 0; // op 0: open, 1: read
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    err = errno;
  } else {
    char buf[512];
    ssize_t r;
    do
      r = ::pread(fd, buf, sizeof buf, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      err = errno;
      op = 1;
    }
    ::close(fd);
  }
  int first = err ? rank : size;
  MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, comm);
  if (first == size)
    return;
  int what[2] = {err, op};
  MPI_Bcast(what, 2, MPI_INT, first, comm);
  throw Error(Errc::io, first,
              fmt::format("cannot {} {} on rank {}: {} (errno {})", what[1] ? "read" : "open", path, first,
                          std::strerror(what[0]), what[0]));
}

} // namespace

Reader::Reader(const std::string &path, MPI_Comm comm) {
  h5::silence_errors();
  info_.path = path;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw Error(Errc::io, -1, fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  info_.file_bytes = static_cast<std::uint64_t>(st.st_size);
  if (comm != MPI_COMM_NULL)
    check_openable_everywhere(path, comm);
  h5::Handle fapl(H5Pcreate(H5P_FILE_ACCESS), "creating file access properties");
  if (comm != MPI_COMM_NULL)
    h5::check(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL), "selecting the MPI-IO driver");
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl);
  if (id < 0)
    throw Error(Errc::corrupt, -1,
                fmt::format("{} is not a readable HDF5 file ({})", path, h5::error_stack()));
  file_ = h5::Handle(id, "opening " + path);
  try {
    check_global_heaps(file_, path, info_.file_bytes);
    if (!has_attr(file_, "ckpt_format") || read_attr_string(file_, "ckpt_format") != format_name)
      throw Error(Errc::corrupt, -1, fmt::format("{} is not a ckpt checkpoint (no ckpt_format attribute)", path));
    info_.format = format_name;
    auto v = read_attr<std::int32_t>(file_, "ckpt_format_version", H5T_NATIVE_INT32);
    if (v.size() != 2)
      throw Error(Errc::corrupt, -1, fmt::format("{} has a malformed format version", path));
    info_.format_major = v[0];
    info_.format_minor = v[1];
    if (v[0] != format_major)
      throw Error(Errc::unsupported_version, -1,
                  fmt::format("{} has format version {}.{}; this ckpt {} reads version {}.x only: "
                              "use a ckpt release that supports it, or move the file away",
                              path, v[0], v[1], library_version(), format_major));
    info_.library_version = read_attr_string(file_, "ckpt_library_version");
    info_.step = read_attr<std::int64_t>(file_, "step", H5T_NATIVE_INT64)[0];
    info_.time = read_attr<double>(file_, "time", H5T_NATIVE_DOUBLE)[0];
    info_.nranks = read_attr<std::int32_t>(file_, "nranks", H5T_NATIVE_INT32)[0];
    if (info_.nranks < 1)
      throw Error(Errc::corrupt, -1, fmt::format("{} has a bad rank count", path));
    info_.created = read_attr_string(file_, "created");
    info_.checksum_algorithm = read_attr_string(file_, "ckpt_checksum");
    if (info_.checksum_algorithm != checksum_algorithm)
      throw Error(Errc::unsupported_version, -1,
                  fmt::format("{} uses checksum '{}', unknown to this ckpt", path, info_.checksum_algorithm));
    const auto stored_sum = read_attr<std::uint64_t>(file_, "ckpt_header_checksum", H5T_NATIVE_UINT64)[0];

    // Root attributes named meta.<key> are user metadata.
    H5O_info_t oinfo{};
    h5::check(H5Oget_info2(file_, &oinfo, H5O_INFO_NUM_ATTRS), "counting root attributes");
    for (hsize_t i = 0; i < oinfo.num_attrs; ++i) {
      h5::Handle a(H5Aopen_by_idx(file_, ".", H5_INDEX_NAME, H5_ITER_INC, i, H5P_DEFAULT, H5P_DEFAULT),
                   "opening a root attribute");
      ssize_t n = H5Aget_name(a, 0, nullptr);
      std::string an(static_cast<std::size_t>(n < 0 ? 0 : n), '\0');
      H5Aget_name(a, an.size() + 1, an.data());
      if (an.rfind("meta.", 0) == 0)
        info_.metadata[an.substr(5)] = read_attr_string(file_, an.c_str());
    }

    LinkList links;
    hsize_t idx = 0;
    h5::check(H5Literate(file_, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_link, &links),
              "listing the fields");
    if (H5Lexists(file_, meta_group, H5P_DEFAULT) <= 0)
      throw Error(Errc::corrupt, -1, fmt::format("{} has no _ckpt group", path));
    h5::Handle meta(H5Gopen2(file_, meta_group, H5P_DEFAULT), "opening the _ckpt group");
    for (const auto &name : links.names) {
      if (name == meta_group || (name == image_group && is_group(file_, name)))
        continue; // ckpt's tables; the image view of the fields tagged with a grid
      info_.fields.push_back(read_field(file_, meta, name, info_.nranks, info_.file_bytes));
    }
    if (header_checksum(info_) != stored_sum)
      throw Error(Errc::corrupt, -1,
                  fmt::format("{}: header checksum mismatch (attributes or block tables damaged)", path));
  } catch (const Error &e) {
    if (e.code() == Errc::hdf5)
      throw Error(Errc::corrupt, -1, fmt::format("{} is damaged: {}", path, e.detail()));
    throw;
  }
}

void Reader::read(const FieldInfo &field, const Shape &offset, const Shape &count, void *mem,
                  const Shape &memory, const Shape &memory_offset, bool collective) {
  const std::string what = fmt::format("field '{}' of {}", field.name, info_.path.string());
  // A dataset without elements has no storage address; there is nothing to read (all ranks
  // see the same shape, so all skip the collective read together).
  if (!field.shape.empty() && volume(field.shape) == 0)
    return;
  try {
    h5::Handle ds(H5Dopen2(file_, field.name.c_str(), H5P_DEFAULT), "opening " + what);
    h5::Handle fsel(H5Dget_space(ds), "getting a dataspace");
    const bool none = mem == nullptr;
    select(fsel, offset, count, none);
    h5::Handle msel = make_space(memory);
    select(msel, memory_offset, count, none);
    h5::Handle dxpl(H5Pcreate(H5P_DATASET_XFER), "creating transfer properties");
    if (collective)
      h5::check(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE), "selecting collective transfers");
    std::uint64_t nothing = 0; // HDF5 wants a buffer even for empty selections
    h5::check(H5Dread(ds, h5::native_type(field.dtype), msel, fsel, dxpl, none ? &nothing : mem),
              "reading " + what);
  } catch (const Error &e) {
    throw Error(Errc::corrupt, -1, e.detail());
  }
}

std::uint64_t Reader::raw_offset(const FieldInfo &field) const {
  const std::uint64_t none = ~std::uint64_t(0);
  if (volume(field.shape) == 0)
    return none;
  hid_t ds = H5Dopen2(file_, field.name.c_str(), H5P_DEFAULT);
  if (ds < 0) {
    h5::error_stack(); // clears it
    return none;
  }
  std::uint64_t off = none;
  hid_t dcpl = H5Dget_create_plist(ds);
  hid_t type = H5Dget_type(ds);
  if (dcpl >= 0 && type >= 0 && H5Pget_layout(dcpl) == H5D_CONTIGUOUS && H5Pget_nfilters(dcpl) == 0 &&
      H5Tequal(type, h5::native_type(field.dtype)) > 0) {
    const haddr_t a = H5Dget_offset(ds);
    if (a != HADDR_UNDEF)
      off = static_cast<std::uint64_t>(a);
  }
  if (type >= 0)
    H5Tclose(type);
  if (dcpl >= 0)
    H5Pclose(dcpl);
  H5Dclose(ds);
  h5::error_stack();
  return off;
}

void Reader::close() { file_.close(); }

} // namespace ckpt::formats
