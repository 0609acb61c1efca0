// FieldSet: the argument checks of registration, and the set's bookkeeping. Local.
#include <ckpt/error.hpp>
#include <ckpt/field_set.hpp>

#include <ckpt/formats/checkpoint_file.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cmath>

namespace ckpt {

// Field names become HDF5 dataset names and file-system-safe table names.
void validate_name(const std::string &name, const char *what) {
  auto fail = [&](const char *why) {
    throw Error(Errc::invalid_argument, -1, fmt::format("invalid {} name '{}': {}", what, name, why));
  };
  if (name.empty())
    fail("empty");
  if (name.size() > 255)
    fail("longer than 255 characters");
  if (name == "." || name == ".." || name.find("..") != std::string::npos)
    fail("'..' is not allowed");
  if (name == formats::meta_group)
    fail("reserved for ckpt's own tables");
  if (name == formats::image_group)
    fail("reserved for the image view of fields tagged with a grid");
  for (unsigned char c : name) {
    if (c == '/')
      fail("'/' is not allowed");
    if (c < 0x20 || c == 0x7f)
      fail("control characters are not allowed");
    if (!(std::isalnum(c) || c == '_' || c == '.' || c == '-'))
      fail("use letters, digits, '_', '.' and '-'");
  }
}

void FieldSet::add(Field f) {
  validate_name(f.name, "field");
  if (contains(f.name))
    throw Error(Errc::invalid_argument, -1, fmt::format("field '{}' is already registered", f.name));
  fields_.push_back(std::move(f));
}

void FieldSet::distributed(const std::string &name, Dtype dtype, void *data, const Block &block) {
  validate_name(name, "field");
  Block b = block;
  const std::size_t nd = b.global.size();
  auto fail = [&](const std::string &why) {
    throw Error(Errc::invalid_argument, -1, fmt::format("distributed field '{}': {}", name, why));
  };
  if (nd == 0)
    fail("the global shape is empty (use replicated() for scalars)");
  if (b.offset.size() != nd || b.count.size() != nd)
    fail(fmt::format("global shape has {} dimensions but offset has {} and count {}", nd, b.offset.size(), b.count.size()));
  for (std::size_t d = 0; d < nd; ++d)
    if (b.offset[d] + b.count[d] > b.global[d])
      fail(fmt::format("block [{}] + [{}] lies outside the global shape [{}] in dimension {}",
                       fmt::join(b.offset, ","), fmt::join(b.count, ","), fmt::join(b.global, ","), d));
  if (b.memory.empty()) {
    b.memory = b.count;
    b.memory_offset.assign(nd, 0);
  }
  if (b.memory_offset.empty())
    b.memory_offset.assign(nd, 0);
  if (b.memory.size() != nd || b.memory_offset.size() != nd)
    fail("memory and memory_offset must have as many dimensions as the global shape");
  for (std::size_t d = 0; d < nd; ++d)
    if (b.memory_offset[d] + b.count[d] > b.memory[d])
      fail(fmt::format("block does not fit its memory layout in dimension {}", d));
  if (!data && volume(b.count) > 0)
    fail("data is a null pointer");
  add(Field{name, Kind::distributed, dtype, data, b, {}, {}, {}, {}});
}

void FieldSet::replicated(const std::string &name, Dtype dtype, void *data, const Shape &shape) {
  if (!data && volume(shape) > 0)
    throw Error(Errc::invalid_argument, -1, fmt::format("replicated field '{}': data is a null pointer", name));
  add(Field{name, Kind::replicated, dtype, data, {}, shape, {}, {}, {}});
}

void FieldSet::per_rank(const std::string &name, Dtype dtype, void *data, const Shape &shape) {
  if (!data && volume(shape) > 0)
    throw Error(Errc::invalid_argument, -1, fmt::format("per-rank field '{}': data is a null pointer", name));
  add(Field{name, Kind::per_rank, dtype, data, {}, shape, {}, {}, {}});
}

void FieldSet::per_rank_resizable(const std::string &name, Dtype dtype, std::function<std::pair<void *, Shape>()> get,
                                  std::function<void *(const Shape &)> resize) {
  if (!get || !resize)
    throw Error(Errc::invalid_argument, -1, fmt::format("per-rank field '{}': get and resize are required", name));
  add(Field{name, Kind::per_rank, dtype, nullptr, {}, {}, std::move(get), std::move(resize), {}});
}

void FieldSet::grid(const std::string &name, const Grid &grid) {
  const auto it = std::find_if(fields_.begin(), fields_.end(), [&](const Field &f) { return f.name == name; });
  auto fail = [&](const std::string &why) {
    throw Error(Errc::invalid_argument, -1, fmt::format("grid of field '{}': {}", name, why));
  };
  if (it == fields_.end())
    fail("no such field (register it first)");
  if (it->kind != Kind::distributed)
    fail(fmt::format("the field is {}; only distributed fields are images", kind_name(it->kind)));
  const std::size_t nd = it->block.global.size();
  if (nd < 1 || nd > 3)
    fail(fmt::format("the field has {} dimensions; an image has 1 to 3", nd));
  Grid g = grid;
  if (g.origin.empty())
    g.origin.assign(nd, 0.0);
  if (g.spacing.empty())
    g.spacing.assign(nd, 1.0);
  if (g.origin.size() != nd || g.spacing.size() != nd)
    fail(fmt::format("the field has {} dimensions but the origin has {} numbers and the spacing {}", nd,
                     g.origin.size(), g.spacing.size()));
  for (std::size_t d = 0; d < nd; ++d) {
    if (!std::isfinite(g.origin[d]))
      fail(fmt::format("origin [{}] is not a finite number", fmt::join(g.origin, ",")));
    if (!(std::isfinite(g.spacing[d]) && g.spacing[d] > 0))
      fail(fmt::format("spacing [{}] is not all finite numbers > 0", fmt::join(g.spacing, ",")));
  }
  it->grid = std::move(g);
}

bool FieldSet::remove(const std::string &name) {
  const auto it = std::find_if(fields_.begin(), fields_.end(), [&](const Field &f) { return f.name == name; });
  if (it == fields_.end())
    return false;
  fields_.erase(it);
  return true;
}

bool FieldSet::contains(const std::string &name) const noexcept {
  return std::any_of(fields_.begin(), fields_.end(), [&](const Field &f) { return f.name == name; });
}

std::uint64_t FieldSet::bytes() const {
  std::uint64_t b = 0;
  for (const auto &f : fields_) {
    if (f.kind == Kind::distributed)
      b += volume(f.block.count) * dtype_size(f.dtype);
    else if (f.kind == Kind::per_rank && f.get)
      b += volume(f.get().second) * dtype_size(f.dtype);
    else
      b += volume(f.shape) * dtype_size(f.dtype);
  }
  return b;
}

} // namespace ckpt
