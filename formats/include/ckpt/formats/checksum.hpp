#pragma once
// Checksums of blocks: XXH3-64 over the block's bytes in C order.

#include <ckpt/types.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

namespace ckpt::formats {

/// Name of the algorithm recorded in files.
inline constexpr std::string_view checksum_algorithm = "xxh3_64";

/// XXH3-64 of a contiguous buffer.
std::uint64_t checksum(const void *data, std::size_t bytes) noexcept;

/// Calls `fn(ptr, bytes)` for each contiguous run (innermost rows) of the block at
/// `offset`/`count` inside an array of shape `memory` with elements of `elem` bytes.
void for_each_run(const void *base, const Shape &memory, const Shape &offset, const Shape &count,
                  std::size_t elem, const std::function<void(const std::byte *, std::size_t)> &fn);

/// XXH3-64 of a block inside a larger array, equal to checksum() of the packed block.
std::uint64_t checksum_block(const void *base, const Shape &memory, const Shape &offset,
                             const Shape &count, std::size_t elem);

} // namespace ckpt::formats
