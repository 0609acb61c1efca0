#pragma once
/// \file
/// A field set: the named arrays one save writes or one restore reads into.

#include <ckpt/types.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ckpt {

namespace detail {
/// The typed forms of the registration calls, shared by FieldSet and Checkpointer:
/// `distributed("u", u.data(), block)` for a `double *` registers Dtype::f64.
template <class Self> class TypedRegistration {
public:
  template <class T> void distributed(const std::string &name, T *data, const Block &block) {
    self().distributed(name, dtype_of<T>, static_cast<void *>(data), block);
  }
  template <class T> void replicated(const std::string &name, T *data, const Shape &shape = {}) {
    self().replicated(name, dtype_of<T>, static_cast<void *>(data), shape);
  }
  template <class T> void per_rank(const std::string &name, T *data, const Shape &shape = {}) {
    self().per_rank(name, dtype_of<T>, static_cast<void *>(data), shape);
  }
  /// A per-rank vector whose length may change (particle lists); restore resizes it.
  template <class T> void per_rank(const std::string &name, std::vector<T> &v) {
    self().per_rank_resizable(
        name, dtype_of<T>, [&v] { return std::make_pair(static_cast<void *>(v.data()), Shape{v.size()}); },
        [&v](const Shape &s) {
          v.resize(static_cast<std::size_t>(volume(s)));
          return static_cast<void *>(v.data());
        });
  }

private:
  Self &self() { return static_cast<Self &>(*this); }
};
} // namespace detail

/// The named arrays one save writes or one restore reads into: a value that holds pointers
/// to the caller's memory (never a copy of the data). Copy it, change it, and hand a
/// different set to each `Checkpointer::save(set, step)`: fields may be added, removed or
/// resized between saves. All ranks must hand sets with the same names, kinds and dtypes
/// in the same order (save checks it).
///
/// \code
/// ckpt::FieldSet s;
/// s.distributed("u", u.data(), {.global = {ny, nx}, .offset = {y0, x0}, .count = {my, mx}});
/// s.replicated("t", &t);
/// cp.save(s, step, t);
/// \endcode
///
/// The calls check their arguments locally and throw Error(invalid_argument) for a bad
/// name, a block outside the global shape, or a name already in the set.
class FieldSet : public detail::TypedRegistration<FieldSet> {
public:
  using detail::TypedRegistration<FieldSet>::distributed;
  using detail::TypedRegistration<FieldSet>::replicated;
  using detail::TypedRegistration<FieldSet>::per_rank;

  /// One field: its name, how it is stored, and where its data is.
  struct Field {
    std::string name;
    Kind kind = Kind::replicated;
    Dtype dtype = Dtype::u8;
    void *data = nullptr;
    Block block;   ///< distributed: global/offset/count/memory/memory_offset (memory filled in)
    Shape shape;   ///< replicated and fixed per-rank values
    std::function<std::pair<void *, Shape>()> get;  ///< resizable per-rank values
    std::function<void *(const Shape &)> resize;
    std::optional<Grid> grid; ///< distributed fields tagged with grid(): shown as an image
  };

  /// This rank's block of a distributed N-d array.
  void distributed(const std::string &name, Dtype dtype, void *data, const Block &block);
  /// A value that is the same on every rank (stored once); `shape` empty means a scalar.
  void replicated(const std::string &name, Dtype dtype, void *data, const Shape &shape = {});
  /// A value of fixed shape that differs per rank; restored to the same rank.
  void per_rank(const std::string &name, Dtype dtype, void *data, const Shape &shape = {});
  /// A per-rank value whose shape may change: `get` returns the current data and shape,
  /// `resize` is called on restore with the saved shape and returns where to read it.
  void per_rank_resizable(const std::string &name, Dtype dtype, std::function<std::pair<void *, Shape>()> get,
                          std::function<void *(const Shape &)> resize);

  /// Tags the distributed field `name` (1 to 3 dimensions) with the grid it is sampled on.
  /// Every later checkpoint of the set then carries a VTKHDF ImageData view of it (a
  /// `/VTKHDF` group that ParaView and VTK's vtkHDFReader open as an image) whose array is
  /// a link to the field's own dataset: no second copy. Fields tagged in one set must have
  /// the same global shape and grid (a VTKHDF image has one extent); save checks it.
  /// \throws Error(invalid_argument) for an unknown or non-distributed field, a field of
  /// more than 3 dimensions, a wrong count of numbers, or a spacing that is not > 0.
  void grid(const std::string &name, const Grid &grid);

  /// Removes a field; false when there is none of that name.
  bool remove(const std::string &name);
  /// Removes every field.
  void clear() noexcept { fields_.clear(); }
  bool empty() const noexcept { return fields_.empty(); }
  std::size_t size() const noexcept { return fields_.size(); }
  bool contains(const std::string &name) const noexcept;
  /// The fields in the order they were added (the order they are saved in).
  const std::vector<Field> &fields() const noexcept { return fields_; }
  /// This rank's bytes of the set (resizable values at their current size).
  std::uint64_t bytes() const;

private:
  std::vector<Field> fields_;
  void add(Field f);
};

/// Checks a field or metadata name: letters, digits, '_', '.' and '-', at most 255
/// characters. \throws Error(invalid_argument) naming `what` ("field", "metadata key").
void validate_name(const std::string &name, const char *what);

} // namespace ckpt
