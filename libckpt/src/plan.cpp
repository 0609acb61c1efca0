#include "plan.hpp"

#include <algorithm>
#include <numeric>

namespace ckpt::detail {

namespace {

bool empty_box(const BlockInfo &b) {
  return std::any_of(b.count.begin(), b.count.end(), [](std::uint64_t c) { return c == 0; });
}

bool intersect(const BlockInfo &a, const BlockInfo &b) {
  for (std::size_t d = 0; d < a.offset.size() && d < b.offset.size(); ++d)
    if (a.offset[d] >= b.offset[d] + b.count[d] || b.offset[d] >= a.offset[d] + a.count[d])
      return false;
  return true;
}

} // namespace

std::optional<std::pair<std::size_t, std::size_t>> find_overlap(const std::vector<BlockInfo> &blocks) {
  std::vector<std::size_t> order;
  order.reserve(blocks.size());
  for (std::size_t i = 0; i < blocks.size(); ++i)
    if (!blocks[i].offset.empty() && !empty_box(blocks[i]))
      order.push_back(i);
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return blocks[a].offset[0] < blocks[b].offset[0]; });
  // Blocks whose extent in dimension 0 still reaches the current block's start.
  std::vector<std::size_t> active;
  for (std::size_t i : order) {
    const std::uint64_t start = blocks[i].offset[0];
    std::erase_if(active, [&](std::size_t j) { return blocks[j].offset[0] + blocks[j].count[0] <= start; });
    for (std::size_t j : active)
      if (intersect(blocks[i], blocks[j]))
        return std::make_pair(std::min(i, j), std::max(i, j));
    active.push_back(i);
  }
  return std::nullopt;
}

} // namespace ckpt::detail
