#pragma once
// Plan stage of a save: checks on the block tables gathered from every rank, before any
// byte is written. Pure functions, no MPI, unit-tested in tests/unit/test_local.cpp.

#include <ckpt/catalog.hpp>

#include <cstddef>
#include <optional>
#include <utility>
#include <vector>

namespace ckpt::detail {

/// Two non-empty blocks of `blocks` (N-d boxes given by offset and count) that intersect,
/// or nothing. Works for any number of blocks: a sweep over dimension 0 compares each
/// block only with the blocks whose extent in that dimension it meets.
std::optional<std::pair<std::size_t, std::size_t>> find_overlap(const std::vector<BlockInfo> &blocks);

} // namespace ckpt::detail
