#include <ckpt/formats/checksum.hpp>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <vector>

namespace ckpt::formats {

std::uint64_t checksum(const void *data, std::size_t bytes) noexcept {
  return XXH3_64bits(data, bytes);
}

void for_each_run(const void *base, const Shape &memory, const Shape &offset, const Shape &count,
                  std::size_t elem, const std::function<void(const std::byte *, std::size_t)> &fn) {
  const auto *p = static_cast<const std::byte *>(base);
  const std::size_t nd = count.size();
  if (nd == 0) {
    fn(p, elem);
    return;
  }
  if (volume(count) == 0)
    return;
  // Merge trailing dimensions that are whole in memory into one contiguous run.
  std::size_t inner = nd - 1;
  std::uint64_t run = count[inner];
  while (inner > 0 && count[inner] == memory[inner] && offset[inner] == 0) {
    --inner;
    run *= count[inner];
  }
  std::vector<std::uint64_t> stride(nd, 1);
  for (std::size_t d = nd - 1; d > 0; --d)
    stride[d - 1] = stride[d] * memory[d];
  std::vector<std::uint64_t> idx(inner, 0);
  for (;;) {
    std::uint64_t off = offset[inner] * stride[inner];
    for (std::size_t d = 0; d < inner; ++d)
      off += (offset[d] + idx[d]) * stride[d];
    fn(p + off * elem, static_cast<std::size_t>(run * elem));
    // Odometer over the outer dimensions.
    std::size_t d = inner;
    while (d > 0) {
      --d;
      if (++idx[d] < count[d])
        break;
      idx[d] = 0;
      if (d == 0)
        return;
    }
    if (inner == 0)
      return;
  }
}

std::uint64_t checksum_block(const void *base, const Shape &memory, const Shape &offset,
                             const Shape &count, std::size_t elem) {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  for_each_run(base, memory, offset, count, elem,
               [&](const std::byte *p, std::size_t n) { XXH3_64bits_update(&state, p, n); });
  return XXH3_64bits_digest(&state);
}

} // namespace ckpt::formats
