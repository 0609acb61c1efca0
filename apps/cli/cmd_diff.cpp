// ckpt diff: which fields of two checkpoints differ, and by how much.

#include "commands.hpp"
#include "common.hpp"
#include "h5data.hpp"

#include <ckpt/catalog.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <set>
#include <vector>

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace ckpt::cli {

namespace {

/// Outcome of comparing the data of one field.
struct FieldDiff {
  std::uint64_t elements = 0;
  std::uint64_t differing = 0;  ///< elements whose bits differ and exceed the tolerance
  std::uint64_t bit_differing = 0;
  long double max_abs = 0;      ///< NaN when a NaN meets a number
  std::uint64_t max_index = 0;  ///< flat index of the largest difference
  bool nan_mismatch = false;
};

template <class T>
void compare_slab(const T *a, const T *b, std::uint64_t n, std::uint64_t base, long double tolerance, FieldDiff &d) {
  for (std::uint64_t i = 0; i < n; ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(T)) == 0) continue;
    ++d.bit_differing;
    long double x = static_cast<long double>(a[i]), y = static_cast<long double>(b[i]);
    if (std::isnan(x) || std::isnan(y)) {
      // NaN against a number (or NaNs with different payloads): always a difference.
      if (!d.nan_mismatch) d.max_index = base + i;
      d.nan_mismatch = true;
      ++d.differing;
      continue;
    }
    long double diff = std::fabs(x - y);
    if (diff > tolerance) ++d.differing;
    if (diff > d.max_abs && !d.nan_mismatch) {
      d.max_abs = diff;
      d.max_index = base + i;
    }
  }
}

template <class T>
void compare_field(const DatasetReader &ra, const DatasetReader &rb, Dtype dtype, long double tolerance,
                   FieldDiff &d, Progress &progress) {
  const std::uint64_t row = std::max<std::uint64_t>(1, ra.row_elements());
  // Slabs of about 4 Mi elements per side keep memory bounded for large fields.
  const std::uint64_t rows_per_slab = std::max<std::uint64_t>(1, (std::uint64_t{1} << 22) / row);
  std::vector<T> a, b;
  d.elements = ra.elements();
  for (std::uint64_t r = 0; r < ra.rows(); r += rows_per_slab) {
    std::uint64_t nrows = std::min(rows_per_slab, ra.rows() - r);
    std::uint64_t n = ra.shape().empty() ? 1 : nrows * row;
    if (ra.elements() == 0) n = 0;
    a.resize(n);
    b.resize(n);
    if (n) {
      ra.read_rows(h5::native_type(dtype), r, nrows, a.data());
      rb.read_rows(h5::native_type(dtype), r, nrows, b.data());
      compare_slab(a.data(), b.data(), n, r * row, tolerance, d);
    }
    progress.advance(n * sizeof(T) * 2);
  }
}

void compare_dispatch(const DatasetReader &ra, const DatasetReader &rb, Dtype dtype, long double tolerance,
                      FieldDiff &d, Progress &progress) {
  switch (dtype) {
  case Dtype::u8: return compare_field<std::uint8_t>(ra, rb, dtype, tolerance, d, progress);
  case Dtype::i8: return compare_field<std::int8_t>(ra, rb, dtype, tolerance, d, progress);
  case Dtype::u16: return compare_field<std::uint16_t>(ra, rb, dtype, tolerance, d, progress);
  case Dtype::i16: return compare_field<std::int16_t>(ra, rb, dtype, tolerance, d, progress);
  case Dtype::u32: return compare_field<std::uint32_t>(ra, rb, dtype, tolerance, d, progress);
  case Dtype::i32: return compare_field<std::int32_t>(ra, rb, dtype, tolerance, d, progress);
  case Dtype::u64: return compare_field<std::uint64_t>(ra, rb, dtype, tolerance, d, progress);
  case Dtype::i64: return compare_field<std::int64_t>(ra, rb, dtype, tolerance, d, progress);
  case Dtype::f32: return compare_field<float>(ra, rb, dtype, tolerance, d, progress);
  case Dtype::f64: return compare_field<double>(ra, rb, dtype, tolerance, d, progress);
  }
}

std::string index_text(std::uint64_t flat, const Shape &shape) {
  if (shape.size() <= 1) return std::to_string(flat);
  Shape idx(shape.size());
  for (std::size_t i = shape.size(); i-- > 0;) {
    idx[i] = shape[i] ? flat % shape[i] : 0;
    flat = shape[i] ? flat / shape[i] : 0;
  }
  return shape_text(idx);
}

} // namespace

int cmd_diff(const Args &args) {
  po::options_description opts("options");
  opts.add_options()
      ("a", po::value<std::string>()->required(), "first checkpoint (file, or directory: its newest)")
      ("b", po::value<std::string>()->required(), "second checkpoint (file, or directory: its newest)")
      ("field,f", po::value<std::vector<std::string>>(), "compare only this field (repeatable)")
      ("tolerance,t", po::value<double>()->default_value(0.0),
       "treat elements whose absolute difference is at most this as equal");
  po::positional_options_description pos;
  pos.add("a", 1).add("b", 1);
  po::variables_map vm;
  if (!parse_args("diff", "A B [--field F]... [--tolerance X]",
                  "Compares two checkpoints field by field: fields present in only one, kind,\n"
                  "dtype or shape changes, and the data (bitwise; the number of differing\n"
                  "elements and the maximum absolute difference with its index). A and B are\n"
                  "checkpoint files or directories (a directory means its newest checkpoint).\n"
                  "Exit status 0 when every compared field is equal, 1 when one differs.\n"
                  "Differences in step, time or metadata are shown but do not change the status.",
                  args, opts, pos, vm))
    return exit_ok;
  double tolerance = vm["tolerance"].as<double>();
  if (!(tolerance >= 0)) throw CliError(exit_usage, "--tolerance must be a number >= 0");
  fs::path fa = resolve_checkpoint(vm["a"].as<std::string>(), std::nullopt);
  fs::path fb = resolve_checkpoint(vm["b"].as<std::string>(), std::nullopt);
  CheckpointInfo ia = inspect_or_fail(fa), ib = inspect_or_fail(fb);
  std::cout << fmt::format("A: {} (step {}, time {}, {} ranks)\n", fa.string(), ia.step, number_text(ia.time), ia.nranks);
  std::cout << fmt::format("B: {} (step {}, time {}, {} ranks)\n", fb.string(), ib.step, number_text(ib.time), ib.nranks);
  if (ia.step != ib.step) std::cout << fmt::format("note: steps differ: {} vs {}\n", ia.step, ib.step);
  if (ia.time != ib.time)
    std::cout << fmt::format("note: times differ: {} vs {}\n", number_text(ia.time), number_text(ib.time));
  for (const auto &[k, v] : ia.metadata) {
    auto it = ib.metadata.find(k);
    if (it == ib.metadata.end())
      std::cout << fmt::format("note: metadata '{}' only in A\n", k);
    else if (it->second != v)
      std::cout << fmt::format("note: metadata '{}' differs: '{}' vs '{}'\n", k, v, it->second);
  }
  for (const auto &[k, v] : ib.metadata)
    if (!ia.metadata.count(k)) std::cout << fmt::format("note: metadata '{}' only in B\n", k);

  std::vector<std::string> names;
  if (vm.count("field")) {
    names = vm["field"].as<std::vector<std::string>>();
    for (const auto &n : names)
      if (!ia.field(n) && !ib.field(n))
        throw CliError(exit_usage, fmt::format("no field '{}' in either checkpoint", n));
  } else {
    std::set<std::string> seen;
    for (const auto &f : ia.fields)
      if (seen.insert(f.name).second) names.push_back(f.name);
    for (const auto &f : ib.fields)
      if (seen.insert(f.name).second) names.push_back(f.name);
  }

  std::uint64_t total = 0;
  for (const auto &n : names) {
    const FieldInfo *a = ia.field(n), *b = ib.field(n);
    if (a && b && a->dtype == b->dtype && a->shape == b->shape) total += 2 * volume(a->shape) * dtype_size(a->dtype);
  }
  h5::Handle ha = open_file_readonly(fa), hb = open_file_readonly(fb);
  Progress progress(want_progress(vm), "comparing", total);
  std::size_t differing_fields = 0;
  for (const auto &n : names) {
    const FieldInfo *a = ia.field(n), *b = ib.field(n);
    if (!a || !b) {
      ++differing_fields;
      std::cout << fmt::format("{}: only in {}\n", n, a ? "A" : "B");
      continue;
    }
    if (a->dtype != b->dtype || a->shape != b->shape || a->kind != b->kind) {
      ++differing_fields;
      std::cout << fmt::format("{}: differs in type: {} {} {} vs {} {} {}\n", n, kind_name(a->kind),
                               dtype_name(a->dtype), shape_text(a->shape), kind_name(b->kind), dtype_name(b->dtype),
                               shape_text(b->shape));
      continue;
    }
    DatasetReader ra(ha, n, fa), rb(hb, n, fb);
    if (ra.shape() != a->shape || rb.shape() != b->shape)
      throw CliError(exit_failed, fmt::format("dataset '{}' does not have the shape its block table states", n));
    FieldDiff d;
    compare_dispatch(ra, rb, a->dtype, tolerance, d, progress);
    if (d.bit_differing == 0) {
      std::cout << fmt::format("{}: identical ({} elements)\n", n, d.elements);
      continue;
    }
    std::string maxtext = d.nan_mismatch ? "nan (a NaN meets a number)" : number_text(static_cast<double>(d.max_abs));
    if (d.differing == 0) {
      std::cout << fmt::format("{}: equal within tolerance {} ({} of {} elements differ bitwise, max abs "
                               "difference {} at {})\n",
                               n, number_text(tolerance), d.bit_differing, d.elements, maxtext,
                               index_text(d.max_index, a->shape));
      continue;
    }
    ++differing_fields;
    std::cout << fmt::format("{}: DIFFERS: {} of {} elements, max abs difference {} at {}\n", n, d.differing,
                             d.elements, maxtext, index_text(d.max_index, a->shape));
  }
  progress.finish();
  if (differing_fields == 0) {
    std::cout << fmt::format("checkpoints are equal ({} field(s) compared)\n", names.size());
    return exit_ok;
  }
  std::cout << fmt::format("{} of {} field(s) differ\n", differing_fields, names.size());
  return exit_failed;
}

} // namespace ckpt::cli
