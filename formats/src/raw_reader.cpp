// The read side of the raw data path: the write plan's extents read back with pread and
// O_DIRECT, hashed on the way in. No MPI, no HDF5.
#include "raw_io.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <fcntl.h>
#include <mutex>
#include <thread>
#include <unistd.h>

namespace ckpt::formats {

namespace {

void pread_full(int fd, std::byte *p, std::uint64_t n, std::uint64_t off, const std::string &path,
                std::uint64_t need) {
  // Reads up to n bytes; fails when fewer than `need` arrive (end of file).
  std::uint64_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, p + got, static_cast<std::size_t>(std::min<std::uint64_t>(n - got, 1u << 30)),
                              static_cast<off_t>(off + got));
    if (r < 0) {
      if (errno == EINTR)
        continue;
      throw Error(Errc::io, -1, fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    }
    if (r == 0)
      break;
    got += static_cast<std::uint64_t>(r);
  }
  if (got < need)
    throw Error(Errc::corrupt, -1, fmt::format("{} is truncated (read {} of {} bytes at offset {})", path, got, need, off));
}

} // namespace

std::vector<std::uint64_t> read_streaming(const std::string &path, const WritePlan &plan, Staging &ring, bool any_cpu) {
  const bool any_direct = std::any_of(plan.extents.begin(), plan.extents.end(), [](const Extent &e) { return e.direct; });
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw Error(Errc::io, -1, fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  const int dfd = any_direct ? ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT) : -1;
  struct Closer {
    int a, b;
    ~Closer() {
      if (a >= 0)
        ::close(a);
      if (b >= 0)
        ::close(b);
    }
  } closer{fd, dfd};
  Hashes h(plan.nfields);
  auto read_small = [&](const Extent &e) {
    std::uint64_t off = e.file_offset;
    for (const Run &r : e.runs) {
      auto *dst = const_cast<std::byte *>(r.mem);
      pread_full(fd, dst, r.bytes, off, path, r.bytes);
      if (plan.hashed[e.field])
        h.update(e.field, dst, r.bytes);
      off += r.bytes;
    }
  };
  if (dfd < 0) {
    for (const Extent &e : plan.extents)
      read_small(e);
    return h.digests(plan);
  }

  // ring_readers threads fill aligned slots with O_DIRECT ahead of this thread, which
  // hashes them (in file order) and copies them out into application memory. The readers
  // claim the windows in file order, each with a free slot, so the window this thread
  // needs next is always claimed first, and while one reader waits for the disk the other
  // has its request queued too: the device sees no gap between requests, as with one
  // large plain read.
  ring.reserve(ring_slots * ring_slot_bytes);
  struct Window {
    std::uint64_t file, begin, end; // slot-relative valid range
    std::size_t field;
  };
  std::vector<Window> windows;
  for (const Extent &e : plan.extents) {
    if (!e.direct)
      continue;
    const std::uint64_t end = e.file_offset + e.bytes;
    for (std::uint64_t w = align_down(e.file_offset, direct_align); w < end; w += ring_slot_bytes) {
      const std::uint64_t b = std::max(w, e.file_offset) - w;
      windows.push_back(Window{w, b, std::min(w + ring_slot_bytes, end) - w, e.field});
    }
  }
  std::mutex mu;
  std::condition_variable cv;
  constexpr std::size_t none = ~std::size_t{0};
  std::vector<std::size_t> slot_of(windows.size(), none); // filled windows: their slot
  std::vector<std::size_t> free_slots;
  for (std::size_t i = 0; i < ring_slots; ++i)
    free_slots.push_back(i);
  std::size_t claimed = 0; // windows handed to a reader so far
  bool stop = false;
  std::exception_ptr failure;
  auto read_windows = [&] {
    if (any_cpu)
      allow_every_cpu();
    for (;;) {
      std::size_t wi = 0, slot = 0;
      {
        std::unique_lock lk(mu);
        cv.wait(lk, [&] { return stop || claimed == windows.size() || !free_slots.empty(); });
        if (stop || claimed == windows.size())
          return;
        wi = claimed++;
        slot = free_slots.back();
        free_slots.pop_back();
      }
      try {
        const Window &w = windows[wi];
        std::byte *dst = ring.data() + slot * ring_slot_bytes;
        pread_full(dfd, dst, align_up(w.end, direct_align), w.file, path, w.end); // the last page may lie past the end of file
      } catch (...) {
        std::lock_guard lk(mu);
        if (!failure)
          failure = std::current_exception();
        stop = true;
        cv.notify_all();
        return;
      }
      {
        std::lock_guard lk(mu);
        slot_of[wi] = slot;
      }
      cv.notify_all();
    }
  };
  std::vector<std::thread> readers;
  for (std::size_t i = 0; i < std::min<std::size_t>(ring_readers, windows.size()); ++i)
    readers.emplace_back(read_windows);
  auto finish = [&] {
    {
      std::lock_guard lk(mu);
      stop = true;
    }
    cv.notify_all();
    for (auto &t : readers)
      t.join();
  };
  try {
    std::size_t next = 0;
    for (const Extent &e : plan.extents) {
      if (!e.direct) {
        read_small(e);
        continue;
      }
      // Copies this extent's windows out, in order.
      Cursor cur{e.runs};
      std::uint64_t left = e.bytes;
      while (left > 0) {
        std::size_t slot = 0;
        {
          std::unique_lock lk(mu);
          cv.wait(lk, [&] { return slot_of[next] != none || failure; });
          if (failure)
            std::rethrow_exception(failure);
          slot = slot_of[next];
        }
        const Window &w = windows[next++];
        const std::byte *src = ring.data() + slot * ring_slot_bytes + w.begin;
        const std::uint64_t n = w.end - w.begin;
        if (plan.hashed[e.field])
          h.update(e.field, src, n);
        left -= n;
        cur.fill(src, n);
        {
          std::lock_guard lk(mu);
          free_slots.push_back(slot);
        }
        cv.notify_all();
      }
    }
  } catch (...) {
    finish();
    throw;
  }
  finish();
  return h.digests(plan);
}

} // namespace ckpt::formats
