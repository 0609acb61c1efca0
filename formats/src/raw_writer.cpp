// The write side of the raw data path: planned extents, pwrite/O_DIRECT at dataset
// offsets, staging memory. No MPI, no HDF5. The read side is raw_reader.cpp.
#include "raw_io.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <fcntl.h>
#include <mutex>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <thread>
#include <unistd.h>

namespace ckpt::formats {

namespace {

// Largest single O_DIRECT request: big enough to keep the device busy, small enough to
// interleave with hashing in cache-sized steps.
constexpr std::uint64_t direct_piece = 16u << 20;

[[noreturn]] void io_error(int err, const std::string &what, const std::string &path) {
  throw Error(err == ENOSPC || err == EDQUOT ? Errc::no_space : Errc::io, -1,
              fmt::format("{} {}: {}", what, path, std::strerror(err)));
}

// The file opened twice: buffered for unaligned pieces, O_DIRECT (when possible) for the rest.
struct Fds {
  int buffered = -1;
  int direct = -1;
  std::atomic<bool> direct_ok{true}; // shared by the writer threads
  std::string path;
  explicit Fds(const std::string &p, bool want_direct) : path(p) {
    buffered = ::open(p.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (buffered < 0)
      io_error(errno, "cannot open", p);
    if (want_direct)
      direct = ::open(p.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_DIRECT); // -1: not supported here
  }
  ~Fds() {
    if (direct >= 0)
      ::close(direct);
    if (buffered >= 0)
      ::close(buffered);
  }
  Fds(const Fds &) = delete;
  Fds &operator=(const Fds &) = delete;

  void write_buffered(const std::byte *p, std::uint64_t n, std::uint64_t off) const {
    while (n > 0) {
      const ssize_t w = ::pwrite(buffered, p, static_cast<std::size_t>(std::min<std::uint64_t>(n, 1u << 30)),
                                 static_cast<off_t>(off));
      if (w < 0) {
        if (errno == EINTR)
          continue;
        io_error(errno, "cannot write", path);
      }
      if (w == 0)
        io_error(EIO, "short write to", path);
      p += w;
      n -= static_cast<std::uint64_t>(w);
      off += static_cast<std::uint64_t>(w);
    }
  }
  // `p` and `off` are page-aligned, `n` a multiple of the page size.
  void write_direct(const std::byte *p, std::uint64_t n, std::uint64_t off) {
    while (n > 0 && direct >= 0 && direct_ok.load(std::memory_order_relaxed)) {
      const ssize_t w = ::pwrite(direct, p, static_cast<std::size_t>(std::min<std::uint64_t>(n, 1u << 30)),
                                 static_cast<off_t>(off));
      if (w < 0) {
        if (errno == EINTR)
          continue;
        if (errno == EINVAL) { // this file system refuses this direct request: buffered from now on
          direct_ok.store(false, std::memory_order_relaxed);
          break;
        }
        io_error(errno, "cannot write", path);
      }
      if (w == 0)
        io_error(EIO, "short write to", path);
      p += w;
      n -= static_cast<std::uint64_t>(w);
      off += static_cast<std::uint64_t>(w);
      if (n % direct_align != 0 || off % direct_align != 0)
        break; // a partial direct write left an unaligned rest
    }
    if (n > 0)
      write_buffered(p, n, off);
  }
  // The bytes [p, p+n) belong at file offset `off`; `p` is congruent to `off` modulo the
  // page size. The aligned middle goes direct, the partial pages at the ends buffered.
  void write_aligned_image(const std::byte *p, std::uint64_t n, std::uint64_t off) {
    const std::uint64_t end = off + n;
    const std::uint64_t a = std::min(align_up(off, direct_align), end);
    const std::uint64_t b = std::max(align_down(end, direct_align), a);
    if (a > off)
      write_buffered(p, a - off, off);
    if (b > a) {
      if (direct >= 0)
        write_direct(p + (a - off), b - a, a);
      else
        write_buffered(p + (a - off), b - a, a);
    }
    if (end > b)
      write_buffered(p + (b - off), end - b, b);
  }
  void sync() const {
    if (::fsync(buffered) != 0)
      io_error(errno, "fsync failed for", path);
  }
};

// Writes a small extent straight from application memory (no copy).
void write_gathered(Fds &fds, Hashes &h, const Extent &e, const WritePlan &plan) {
  std::vector<iovec> iov;
  std::uint64_t off = e.file_offset, pending = 0;
  auto flush = [&] {
    std::size_t first = 0;
    while (first < iov.size()) {
      const ssize_t w = ::pwritev(fds.buffered, iov.data() + first, static_cast<int>(iov.size() - first),
                                  static_cast<off_t>(off));
      if (w < 0) {
        if (errno == EINTR)
          continue;
        io_error(errno, "cannot write", fds.path);
      }
      if (w == 0)
        io_error(EIO, "short write to", fds.path);
      off += static_cast<std::uint64_t>(w);
      pending -= static_cast<std::uint64_t>(w);
      std::size_t left = static_cast<std::size_t>(w);
      while (first < iov.size() && left >= iov[first].iov_len)
        left -= iov[first++].iov_len;
      if (left > 0) {
        iov[first].iov_base = static_cast<char *>(iov[first].iov_base) + left;
        iov[first].iov_len -= left;
      }
    }
    iov.clear();
  };
  for (const Run &r : e.runs) {
    if (plan.hashed[e.field])
      h.update(e.field, r.mem, r.bytes);
    iov.push_back(iovec{const_cast<std::byte *>(r.mem), r.bytes});
    pending += r.bytes;
    if (iov.size() == 512)
      flush();
  }
  flush();
}

} // namespace

bool direct_io_enabled() {
  const char *v = std::getenv("CKPT_DIRECT");
  return !(v && (std::strcmp(v, "0") == 0 || std::strcmp(v, "no") == 0 || std::strcmp(v, "off") == 0));
}

WritePlan plan_writes(const std::vector<FieldWrite> &fields, const Layout &layout, const std::vector<bool> &hash) {
  WritePlan plan;
  plan.nfields = fields.size();
  plan.hashed = hash;
  plan.hashed.resize(fields.size(), false);
  const bool direct = direct_io_enabled();
  for (std::size_t fi = 0; fi < fields.size(); ++fi) {
    const FieldWrite &f = fields[fi];
    const std::uint64_t base = layout.data_offset.at(fi);
    if (!f.write || !f.data || base == Layout::no_offset)
      continue;
    const std::uint64_t elem = dtype_size(f.dtype);
    const auto *mem = static_cast<const std::byte *>(f.data);
    const std::size_t first = plan.extents.size();
    auto add = [&](std::uint64_t file, const std::byte *p, std::uint64_t n) {
      if (n == 0)
        return;
      plan.bytes += n;
      if (plan.extents.size() > first) {
        Extent &e = plan.extents.back();
        if (e.file_offset + e.bytes == file) {
          e.bytes += n;
          Run &r = e.runs.back();
          if (r.mem + r.bytes == p)
            r.bytes += static_cast<std::size_t>(n);
          else
            e.runs.push_back(Run{p, static_cast<std::size_t>(n)});
          return;
        }
      }
      plan.extents.push_back(Extent{fi, file, n, {Run{p, static_cast<std::size_t>(n)}}, false, 0});
    };
    const std::size_t nd = f.count.size();
    if (nd == 0) {
      add(base, mem, elem);
      continue;
    }
    if (volume(f.count) == 0)
      continue;
    // Strides of the dataset (file) and of the memory array, in elements.
    std::vector<std::uint64_t> fstride(nd, 1), mstride(nd, 1);
    for (std::size_t d = nd - 1; d > 0; --d) {
      fstride[d - 1] = fstride[d] * f.shape[d];
      mstride[d - 1] = mstride[d] * f.memory[d];
    }
    const std::uint64_t row = f.count[nd - 1] * elem;
    std::vector<std::uint64_t> idx(nd - 1, 0);
    for (;;) {
      std::uint64_t fo = f.offset[nd - 1], mo = f.memory_offset[nd - 1];
      for (std::size_t d = 0; d + 1 < nd; ++d) {
        fo += (f.offset[d] + idx[d]) * fstride[d];
        mo += (f.memory_offset[d] + idx[d]) * mstride[d];
      }
      add(base + fo * elem, mem + mo * elem, row);
      std::size_t d = nd - 1;
      bool done = true;
      while (d > 0) {
        --d;
        if (++idx[d] < f.count[d]) {
          done = false;
          break;
        }
        idx[d] = 0;
      }
      if (done)
        break;
    }
  }
  // Staging layout: large extents keep their offset modulo the page size, so the aligned
  // middle can go to the disk directly from staging; small ones are packed.
  std::uint64_t pos = 0;
  for (Extent &e : plan.extents) {
    e.direct = direct && e.bytes >= direct_min_bytes;
    if (e.direct)
      pos = align_up(pos, direct_align) + e.file_offset % direct_align;
    else
      pos = align_up(pos, 64);
    e.staged = pos;
    pos += e.bytes;
  }
  plan.staging = align_up(pos, direct_align);
  return plan;
}

// ------------------------------------------------------------------------------------------

Staging::~Staging() {
  if (data_)
    ::munmap(data_, capacity_);
}

void Staging::reserve(std::uint64_t bytes) {
  if (bytes <= capacity_)
    return;
  if (data_)
    ::munmap(data_, capacity_);
  data_ = nullptr;
  capacity_ = 0;
  const std::uint64_t cap = align_up(bytes, 2u << 20);
  // MAP_POPULATE faults every page in now: copies into staging later run at memory speed.
  void *p = ::mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED)
    throw Error(Errc::no_space, -1,
                fmt::format("cannot allocate {} bytes of staging memory for an async checkpoint: {}", cap,
                            std::strerror(errno)));
  ::madvise(p, cap, MADV_HUGEPAGE);
  data_ = static_cast<std::byte *>(p);
  capacity_ = cap;
}

void snapshot(const WritePlan &plan, Staging &staging) {
  staging.reserve(std::max<std::uint64_t>(plan.staging, 1));
  for (const Extent &e : plan.extents) {
    Cursor c{e.runs};
    c.copy(staging.data() + e.staged, e.bytes);
  }
}

std::vector<std::uint64_t> pack_plan(const WritePlan &plan, std::byte *dst) {
  Hashes h(plan.nfields);
  for (const Extent &e : plan.extents) {
    Cursor c{e.runs};
    c.copy(dst, e.bytes);
    if (plan.hashed[e.field])
      h.update(e.field, dst, e.bytes);
    dst += e.bytes;
  }
  return h.digests(plan);
}

void place_plan(const WritePlan &plan, std::byte *image) {
  for (const Extent &e : plan.extents) {
    Cursor c{e.runs};
    c.copy(image + e.file_offset, e.bytes);
  }
}

std::vector<std::uint64_t> write_snapshot(const std::string &path, const WritePlan &plan, const Staging &staging) {
  Fds fds(path, std::any_of(plan.extents.begin(), plan.extents.end(), [](const Extent &e) { return e.direct; }));
  Hashes h(plan.nfields);
  for (const Extent &e : plan.extents) {
    const std::byte *p = staging.data() + e.staged;
    if (!e.direct) {
      if (plan.hashed[e.field])
        h.update(e.field, p, e.bytes);
      fds.write_buffered(p, e.bytes, e.file_offset);
      continue;
    }
    // Hash each piece just before writing it, while it is in cache.
    std::uint64_t done = 0;
    while (done < e.bytes) {
      const std::uint64_t off = e.file_offset + done;
      std::uint64_t n = std::min(e.bytes - done, direct_piece - off % direct_align);
      if (plan.hashed[e.field])
        h.update(e.field, p + done, n);
      fds.write_aligned_image(p + done, n, off);
      done += n;
    }
  }
  fds.sync();
  return h.digests(plan);
}

void allow_every_cpu() {
  cpu_set_t all;
  CPU_ZERO(&all);
  const long n = ::sysconf(_SC_NPROCESSORS_CONF);
  for (long c = 0; c < n && c < CPU_SETSIZE; ++c)
    CPU_SET(static_cast<int>(c), &all);
  ::pthread_setaffinity_np(::pthread_self(), sizeof all, &all);
}

std::vector<std::uint64_t> write_streaming(const std::string &path, const WritePlan &plan, Staging &ring, bool sync,
                                           bool any_cpu) {
  std::uint64_t direct_bytes = 0; // direct extents hold at least direct_min_bytes each
  for (const Extent &e : plan.extents)
    if (e.direct)
      direct_bytes += e.bytes;
  const bool any_direct = direct_bytes > 0;
  Fds fds(path, any_direct);
  Hashes h(plan.nfields);
  if (!any_direct) {
    for (const Extent &e : plan.extents)
      write_gathered(fds, h, e, plan);
    if (sync)
      fds.sync();
    return h.digests(plan);
  }

  // A ring of aligned slots: this thread copies into a free slot, a hasher thread hashes the
  // copied slots in file order, and two writer threads write the hashed ones. Copy, hash and
  // write overlap: one thread doing both the copy and the hash was slower than the disk.
  ring.reserve(ring_slots * ring_slot_bytes);
  struct Chunk {
    std::size_t slot;
    std::uint64_t file; // file offset of the slot's first byte (page-aligned)
    std::uint64_t begin, end; // valid bytes within the slot
    std::size_t field;
  };
  std::mutex mu;
  std::condition_variable cv;
  // copied: to hash, in file order (the hasher leaves the one it hashes at the front until
  // it is done, so `copied` empty means every copied chunk is hashed); full: to write.
  std::deque<Chunk> copied, full;
  std::vector<std::size_t> free_slots;
  for (std::size_t i = 0; i < ring_slots; ++i)
    free_slots.push_back(i);
  bool closing = false;
  std::exception_ptr failure;

  // The writers keep ring_writers direct requests in flight (the device is faster with a
  // deeper queue).
  auto write_loop = [&] {
    if (any_cpu)
      allow_every_cpu();
    for (;;) {
      Chunk c;
      {
        std::unique_lock lk(mu);
        cv.wait(lk, [&] { return !full.empty() || closing; });
        if (full.empty())
          return;
        c = full.front();
        full.pop_front();
      }
      try {
        bool failed;
        {
          std::lock_guard lk(mu);
          failed = static_cast<bool>(failure);
        }
        if (!failed)
          fds.write_aligned_image(ring.data() + c.slot * ring_slot_bytes + c.begin, c.end - c.begin, c.file + c.begin);
      } catch (...) {
        std::lock_guard lk(mu);
        failure = std::current_exception();
      }
      {
        std::lock_guard lk(mu);
        free_slots.push_back(c.slot);
      }
      cv.notify_all();
    }
  };
  // The only thread that updates the hashes of direct extents, in the order they were copied.
  auto hash_loop = [&] {
    if (any_cpu)
      allow_every_cpu();
    for (;;) {
      Chunk c;
      {
        std::unique_lock lk(mu);
        cv.wait(lk, [&] { return !copied.empty() || closing; });
        if (copied.empty())
          return;
        c = copied.front();
      }
      if (plan.hashed[c.field])
        h.update(c.field, ring.data() + c.slot * ring_slot_bytes + c.begin, c.end - c.begin);
      {
        std::lock_guard lk(mu);
        copied.pop_front();
        full.push_back(c);
      }
      cv.notify_all();
    }
  };
  // Before this thread hashes a buffered extent itself, and before the digests: every copied
  // chunk hashed (a field's bytes are hashed in file order).
  auto hashed_all = [&] {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return copied.empty(); });
  };
  const std::uint64_t chunk =
      std::clamp(align_up(direct_bytes / ring_chunks_min, direct_align), ring_chunk_min_bytes, ring_slot_bytes);
  std::thread hasher(hash_loop);
  std::vector<std::thread> writers;
  for (std::size_t i = 0; i < ring_writers; ++i)
    writers.emplace_back(write_loop);
  auto stop_writer = [&] {
    hashed_all(); // the writers' last chunks are queued (only this thread adds to `copied`)
    {
      std::lock_guard lk(mu);
      closing = true;
    }
    cv.notify_all();
    hasher.join();
    for (auto &t : writers)
      t.join();
  };

  try {
    for (const Extent &e : plan.extents) {
      {
        std::lock_guard lk(mu);
        if (failure)
          break;
      }
      if (!e.direct) {
        hashed_all();
        write_gathered(fds, h, e, plan);
        continue;
      }
      Cursor cur{e.runs};
      const std::uint64_t end = e.file_offset + e.bytes;
      for (std::uint64_t w = align_down(e.file_offset, direct_align); w < end; w += chunk) {
        const auto free_slot = take_free_slot(mu, cv, free_slots, [&] { return static_cast<bool>(failure); });
        if (!free_slot)
          break;
        const std::size_t slot = *free_slot;
        const std::uint64_t b = std::max(w, e.file_offset) - w;
        const std::uint64_t n = std::min(w + chunk, end) - w - b;
        std::byte *dst = ring.data() + slot * ring_slot_bytes + b;
        cur.copy(dst, n);
        {
          std::lock_guard lk(mu);
          copied.push_back(Chunk{slot, w, b, b + n, e.field});
        }
        cv.notify_all();
      }
    }
  } catch (...) {
    stop_writer();
    throw;
  }
  stop_writer();
  if (failure)
    std::rethrow_exception(failure);
  if (sync)
    fds.sync();
  return h.digests(plan);
}

} // namespace ckpt::formats
