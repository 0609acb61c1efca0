#pragma once
/// \file
/// Element types and shapes of protected state.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace ckpt {

/// Element type of a protected array. Stored in files as the little-endian HDF5 type.
/// The numeric values are part of the C API and never change.
enum class Dtype : int {
  u8 = 0,
  i8 = 1,
  u16 = 2,
  i16 = 3,
  u32 = 4,
  i32 = 5,
  u64 = 6,
  i64 = 7,
  f32 = 8,
  f64 = 9,
};

/// Size in bytes of one element.
std::size_t dtype_size(Dtype t) noexcept;
/// numpy-style name: "uint8", "int32", "float64", ...
std::string_view dtype_name(Dtype t) noexcept;

/// Maps a C++ element type to its Dtype at compile time: `dtype_of<double>` is `Dtype::f64`.
template <class T> struct dtype_traits;
template <> struct dtype_traits<std::uint8_t> { static constexpr Dtype value = Dtype::u8; };
template <> struct dtype_traits<std::int8_t> { static constexpr Dtype value = Dtype::i8; };
template <> struct dtype_traits<std::uint16_t> { static constexpr Dtype value = Dtype::u16; };
template <> struct dtype_traits<std::int16_t> { static constexpr Dtype value = Dtype::i16; };
template <> struct dtype_traits<std::uint32_t> { static constexpr Dtype value = Dtype::u32; };
template <> struct dtype_traits<std::int32_t> { static constexpr Dtype value = Dtype::i32; };
template <> struct dtype_traits<std::uint64_t> { static constexpr Dtype value = Dtype::u64; };
template <> struct dtype_traits<std::int64_t> { static constexpr Dtype value = Dtype::i64; };
template <> struct dtype_traits<float> { static constexpr Dtype value = Dtype::f32; };
template <> struct dtype_traits<double> { static constexpr Dtype value = Dtype::f64; };
template <> struct dtype_traits<char> { static constexpr Dtype value = Dtype::u8; };
template <> struct dtype_traits<bool> { static constexpr Dtype value = Dtype::u8; };
template <class T> inline constexpr Dtype dtype_of = dtype_traits<T>::value;

/// Extents of an N-d array, slowest dimension first (C order).
using Shape = std::vector<std::uint64_t>;

/// Number of elements of a shape (1 for the empty shape of a scalar).
std::uint64_t volume(const Shape &s) noexcept;

/// How a field is stored. See docs/format.md.
enum class Kind : int {
  distributed = 0, ///< each rank owns a block of a global array; stored at global shape
  replicated = 1,  ///< the same value on every rank; stored once
  per_rank = 2,    ///< a different value on each rank; restored to the same rank
};

/// "distributed", "replicated" or "per_rank".
std::string_view kind_name(Kind k) noexcept;

/// Where one rank's block of a distributed array lies, in the global array and in memory.
///
/// `offset` and `count` place the block in the global array of shape `global`.
/// By default the block is contiguous in memory (C order, shape `count`). For arrays with
/// ghost cells, `memory` gives the shape of the local allocation and `memory_offset` the
/// position of the block inside it, e.g. memory {ny+2, nx+2}, memory_offset {1, 1}.
struct Block {
  Shape global;
  Shape offset;
  Shape count;
  Shape memory = {};
  Shape memory_offset = {};
};

/// The regular grid a distributed field of 1 to 3 dimensions is sampled on: one number per
/// dimension, in the order of the global shape (slowest first, so for `u[ny][nx]` the
/// y value comes first). `origin` is the position of element 0 (empty: all 0) and `spacing`
/// the distance between neighbours (empty: all 1). A field tagged with a grid is also shown
/// as a VTKHDF image inside each checkpoint (docs/format.md, "The image view").
struct Grid {
  std::vector<double> origin = {};
  std::vector<double> spacing = {};
};

} // namespace ckpt
