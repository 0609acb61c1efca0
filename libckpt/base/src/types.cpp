#include <ckpt/types.hpp>

namespace ckpt {

std::size_t dtype_size(Dtype t) noexcept {
  switch (t) {
  case Dtype::u8:
  case Dtype::i8: return 1;
  case Dtype::u16:
  case Dtype::i16: return 2;
  case Dtype::u32:
  case Dtype::i32:
  case Dtype::f32: return 4;
  case Dtype::u64:
  case Dtype::i64:
  case Dtype::f64: return 8;
  }
  return 0;
}

std::string_view dtype_name(Dtype t) noexcept {
  switch (t) {
  case Dtype::u8: return "uint8";
  case Dtype::i8: return "int8";
  case Dtype::u16: return "uint16";
  case Dtype::i16: return "int16";
  case Dtype::u32: return "uint32";
  case Dtype::i32: return "int32";
  case Dtype::u64: return "uint64";
  case Dtype::i64: return "int64";
  case Dtype::f32: return "float32";
  case Dtype::f64: return "float64";
  }
  return "unknown";
}

std::uint64_t volume(const Shape &s) noexcept {
  std::uint64_t n = 1;
  for (auto d : s)
    n *= d;
  return n;
}

std::string_view kind_name(Kind k) noexcept {
  switch (k) {
  case Kind::distributed: return "distributed";
  case Kind::replicated: return "replicated";
  case Kind::per_rank: return "per_rank";
  }
  return "unknown";
}

} // namespace ckpt
