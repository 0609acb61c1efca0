// The layout agreement of a save: rank 0 creates the temp file (all metadata, the raw data
// regions allocated) and every rank learns its outcome and where each dataset's data lies,
// as typed messages (mpi/).
#include "session.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <sys/statvfs.h>
#include <unistd.h>

namespace ckpt {

namespace {

// The layout as a message of words: the creation time's length and bytes (8 per word), then
// every dataset's data offset.
std::vector<std::uint64_t> layout_message(const formats::Layout &l) {
  std::vector<std::uint64_t> m{l.created.size()};
  m.resize(1 + (l.created.size() + 7) / 8, 0);
  std::memcpy(m.data() + 1, l.created.data(), l.created.size());
  m.insert(m.end(), l.data_offset.begin(), l.data_offset.end());
  return m;
}

formats::Layout layout_from_message(const std::vector<std::uint64_t> &m) {
  formats::Layout l;
  const std::size_t words = m.empty() ? 0 : 1 + (m[0] + 7) / 8;
  if (m.empty() || words > m.size())
    throw Error(Errc::internal, -1, "the checkpoint layout message is malformed");
  l.created.assign(reinterpret_cast<const char *>(m.data() + 1), static_cast<std::size_t>(m[0]));
  l.data_offset.assign(m.begin() + static_cast<long>(words), m.end());
  return l;
}

} // namespace

// A save about to be written: its step, names and header (the same for both ways of writing
// it), and the iteration statistics since the previous save.
std::unique_ptr<Checkpointer::Impl::Pending> Checkpointer::Impl::new_pending(std::int64_t step, double time, double t0,
                                                                             const std::vector<formats::FieldWrite> &writes) {
  auto p = std::make_unique<Pending>();
  p->step = step;
  p->time = time;
  p->mode = opts.mode;
  p->t0 = t0;
  p->boundary = boundaries;
  p->final_name = checkpoint_file_name(step);
  p->final_path = dir / p->final_name;
  p->tmp_path = dir / ("." + p->final_name + ".tmp");
  // With node-local storage every rank writes its own part there (level_save.cpp); rank 0's
  // is the file with all the metadata.
  if (levels)
    p->tmp_path = levels->run_dir / fmt::format(".ckpt-{:012d}-r{:06d}.part.tmp", step, rank());
  p->header = formats::Header{step, time, comm.size(), metadata};
  for (const auto &w : writes)
    p->payload += volume(w.shape) * dtype_size(w.dtype);
  // The iteration statistics since the previous save, formatted by save_stats_line (on
  // the background writer for an async small save).
  p->iterations = history.iter_count;
  p->iteration_seconds = history.iter_count > 0 ? history.iter_sum / double(history.iter_count) : 0;
  history.iter_sum = 0;
  history.iter_count = 0;
  return p;
}

// 4. Rank 0 lays the temp file out (all metadata, raw data regions allocated) and tells
//    every rank where each dataset's data lies.
std::unique_ptr<Checkpointer::Impl::Pending> Checkpointer::Impl::agree_layout(std::unique_ptr<Pending> p,
                                                                              const std::vector<formats::FieldWrite> &writes) {
  const fs::path space_dir = levels ? levels->run_dir : dir;
  {
    // Rank 0's outcome, then (when it succeeded) the layout: the creation time recorded in
    // the file and each dataset's data offset.
    mpi::Status st;
    if (rank() == 0) {
      st = mpi::capture(0, [&] {
        // Never write through a file or link planted at the temp path.
        if (::unlink(p->tmp_path.c_str()) != 0 && errno != ENOENT)
          throw Error(Errc::io, 0, fmt::format("cannot remove stale {}: {}", p->tmp_path.string(), std::strerror(errno)));
        // Refuse up front when the data cannot fit: HDF5 1.10 that fails to flush a file while
        // closing it (ENOSPC) leaves a half-destroyed file that crashes the process at exit
        // (found by tests/faults/full_disk.py). Only the metadata written here is exposed.
        struct statvfs vfs {};
        if (::statvfs(space_dir.c_str(), &vfs) == 0 &&
            double(vfs.f_bavail) * double(vfs.f_frsize) < double(p->payload) + double(64 << 10))
          throw Error(Errc::no_space, 0,
                      fmt::format("no space left in {} for a checkpoint of {} ({} free): free space there, "
                                  "lower CKPT_KEEP, or point CKPT_DIR elsewhere",
                                  space_dir.string(), human_bytes(p->payload),
                                  human_bytes(static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize)));
        p->layout = formats::create_file(p->tmp_path.string(), p->header, writes);
      });
      if (!st.ok() && st.code == Errc::hdf5)
        st = no_space_or(st, p->payload);
      if (!st.ok())
        ::unlink(p->tmp_path.c_str());
    }
    // One message: rank 0's outcome, or the creation time and the data offsets.
    const auto msg = mpi::bcast_agreed(comm, st, layout_message(p->layout), 0,
                                       "broadcasting the outcome and layout of the checkpoint file");
    if (rank() != 0)
      p->layout = layout_from_message(msg);
    if (p->layout.data_offset.size() != writes.size())
      throw Error(Errc::internal, 0, "the checkpoint layout does not list every field");
  }
  return p;
}

mpi::Status Checkpointer::Impl::no_space_or(const mpi::Status &st, std::uint64_t payload) const {
  struct statvfs vfs {};
  if (::statvfs(dir.c_str(), &vfs) == 0 && double(vfs.f_bavail) * vfs.f_frsize < double(payload) + (1 << 20))
    return {Errc::no_space, fmt::format("no space left in {} for a checkpoint of {} ({})", dir.string(),
                                        human_bytes(payload), st.message)};
  return st;
}

} // namespace ckpt
