#pragma once
// Private to the format layer (not installed): what the raw writer (raw_writer.cpp) and
// the raw reader (raw_reader.cpp) share: alignment, the per-field XXH3 states (both sides
// hash the bytes in file order), the cursor over an extent's memory runs, the ring's free
// slots. In an unnamed
// namespace, as before the split: XXH_INLINE_ALL makes the xxHash calls local to each file.

#include <ckpt/formats/raw_writer.hpp>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <vector>

namespace ckpt::formats {
namespace {

constexpr std::uint64_t align_down(std::uint64_t x, std::uint64_t a) { return x / a * a; }
constexpr std::uint64_t align_up(std::uint64_t x, std::uint64_t a) { return (x + a - 1) / a * a; }

struct Hashes {
  std::vector<XXH3_state_t> state;
  explicit Hashes(std::size_t n) : state(n) {
    for (auto &s : state)
      XXH3_64bits_reset(&s);
  }
  void update(std::size_t field, const void *p, std::uint64_t n) {
    if (n > 0)
      XXH3_64bits_update(&state[field], p, static_cast<std::size_t>(n));
  }
  std::vector<std::uint64_t> digests(const WritePlan &plan) {
    std::vector<std::uint64_t> d(state.size(), 0);
    for (std::size_t i = 0; i < state.size(); ++i)
      if (plan.hashed[i])
        d[i] = XXH3_64bits_digest(&state[i]);
    return d;
  }
};

// Walks an extent's memory runs in order: copies bytes out of them (write side) or into
// them (read side, where the runs are destinations).
struct Cursor {
  const std::vector<Run> &runs;
  std::size_t i = 0;
  std::size_t off = 0;
  void copy(std::byte *dst, std::uint64_t n) {
    walk(n, [&](const Run &r, std::size_t k) {
      std::memcpy(dst, r.mem + off, k);
      dst += k;
    });
  }
  void fill(const std::byte *src, std::uint64_t n) {
    walk(n, [&](const Run &r, std::size_t k) {
      std::memcpy(const_cast<std::byte *>(r.mem) + off, src, k);
      src += k;
    });
  }

private:
  template <class Step> void walk(std::uint64_t n, Step step) {
    while (n > 0) {
      const Run &r = runs[i];
      const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, r.bytes - off));
      step(r, k);
      n -= k;
      off += k;
      if (off == r.bytes) {
        ++i;
        off = 0;
      }
    }
  }
};

// Takes a free slot of the ring, waiting until one is free or `give_up()` (called under
// `mu`) says to stop: nothing then.
template <class GiveUp>
std::optional<std::size_t> take_free_slot(std::mutex &mu, std::condition_variable &cv,
                                          std::vector<std::size_t> &free_slots, GiveUp give_up) {
  std::unique_lock lk(mu);
  cv.wait(lk, [&] { return !free_slots.empty() || give_up(); });
  if (give_up())
    return std::nullopt;
  const std::size_t slot = free_slots.back();
  free_slots.pop_back();
  return slot;
}

} // namespace
} // namespace ckpt::formats
