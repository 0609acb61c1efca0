// A small save (all ranks' payload at most Options::small_bytes, no node-local storage):
// every rank packs its bytes and their checksums in one pass, one MPI_Gatherv brings them
// to rank 0, and rank 0 builds the whole file in memory (formats::FileImage, checksums
// and header checksum included), places the data and writes it in one call: create, write,
// fsync, rename, directory fsync. No layout broadcast, no HDF5 file on disk opened twice.
// A save with the same structure as the previous one (fields, blocks, metadata keys and the
// lengths of the metadata values) patches the previous image instead (FileImage::patch): no
// HDF5 call. Sync: all that happens in save(), then one agreement. Async: save() returns
// after the gather; rank 0's patch, write, fsync and commit run on its background writer,
// and every rank learns the outcome at a later agreement: the next save's block-table
// all-reduce, or commit_small at wait(), an agreement boundary or the destructor.
#include "session.hpp"

#include "commit.hpp"

#include <ckpt/formats/checksum.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <unistd.h>

namespace ckpt {

namespace {

// What each rank sends ahead of its packed bytes, in 64-bit words: its outcome so far (an
// Errc, 0 when ok) and how many bytes follow.
constexpr std::uint64_t head = 16;

// Every rank's part of every field, in the order the ranks packed them (field after field):
// `part(field, block)` for each block that holds bytes. A block is a rank's part of a
// distributed or per-rank field, or the whole of a replicated one (rank 0's).
template <class Writes, class F> void for_each_part(Writes &writes, F &&part) {
  for (std::size_t i = 0; i < writes.size(); ++i)
    if (volume(writes[i].shape) > 0)
      for (auto &b : writes[i].blocks)
        if (volume(b.count) > 0)
          part(i, b);
}

// All ranks' packed bytes (rank r's at `data[r]`) as one plan of writes at the file offsets
// of `layout`.
formats::WritePlan placement(const std::vector<formats::FieldWrite> &writes, std::vector<const std::byte *> data,
                             const formats::Layout &layout) {
  std::vector<formats::FieldWrite> parts;
  formats::Layout at;
  for_each_part(writes, [&](std::size_t i, const BlockInfo &b) {
    const auto &w = writes[i];
    formats::FieldWrite f;
    f.name = w.name;
    f.kind = w.kind;
    f.dtype = w.dtype;
    f.shape = w.shape;
    f.write = true;
    f.offset = b.offset;
    f.count = b.count;
    f.memory = b.count;
    f.memory_offset.assign(b.count.size(), 0);
    const std::byte *&from = data[static_cast<std::size_t>(b.rank)];
    f.data = from;
    from += volume(b.count) * dtype_size(w.dtype);
    parts.push_back(std::move(f));
    at.data_offset.push_back(layout.data_offset[i]);
  });
  return formats::plan_writes(parts, at, std::vector<bool>(parts.size(), false));
}

// Every rank's block checksums, from its packed bytes (rank r's at `data[r]`), read in the
// order placement() reads them. A replicated field keeps the checksum block_tables computed
// (rank 0's value, compared with every rank's).
void hash_parts(std::vector<formats::FieldWrite> &writes, std::vector<const std::byte *> data) {
  const std::byte nothing{};
  for (auto &w : writes) // an empty block's checksum is that of no bytes
    if (w.kind != Kind::replicated)
      for (auto &b : w.blocks)
        b.checksum = formats::checksum(&nothing, 0);
  for_each_part(writes, [&](std::size_t i, BlockInfo &b) {
    const std::byte *&from = data[static_cast<std::size_t>(b.rank)];
    const std::uint64_t bytes = volume(b.count) * dtype_size(writes[i].dtype);
    if (writes[i].kind != Kind::replicated)
      b.checksum = formats::checksum(from, static_cast<std::size_t>(bytes));
    from += bytes;
  });
}

// Whether `a` reads the same memory as `b` into a packed plan (plan_writes's inputs): the
// same fields, pointers, shapes and selections.
bool same_reads(const std::vector<formats::FieldWrite> &a, const std::vector<formats::FieldWrite> &b) {
  if (a.size() != b.size())
    return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto &x = a[i], &y = b[i];
    if (x.write != y.write || x.data != y.data || x.dtype != y.dtype || x.shape != y.shape || x.offset != y.offset ||
        x.count != y.count || x.memory != y.memory || x.memory_offset != y.memory_offset)
      return false;
  }
  return true;
}

// Writes `n` bytes of `image` to a new file at `tmp` and commits it as `dir/final_name`
// (detail::commit_written: fsync, rename, directory fsync, LATEST; see there for
// `rename_first` and the directory's fsync on `dir_syncer`).
void write_and_commit(const fs::path &dir, const fs::path &tmp, const std::string &final_name, const std::byte *image,
                      std::uint64_t n, bool rename_first, detail::Fault f_fsync, detail::Worker &dir_syncer) {
  // Never write through a file or link planted at the temp path: O_EXCL | O_NOFOLLOW, and
  // whatever is there (a stale temp file of a killed run) is removed first.
  auto create = [&] { return ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666); };
  int fd = create();
  if (fd < 0 && errno == EEXIST) {
    if (::unlink(tmp.c_str()) != 0 && errno != ENOENT)
      throw Error(Errc::io, 0, fmt::format("cannot remove stale {}: {}", tmp.string(), std::strerror(errno)));
    fd = create();
  }
  if (fd < 0)
    throw Error(Errc::io, 0, fmt::format("cannot create {}: {}", tmp.string(), std::strerror(errno)));
  try {
    try {
      detail::pwrite_all(fd, image, n, 0, tmp.string());
    } catch (...) {
      ::unlink(tmp.c_str());
      throw;
    }
    detail::commit_written(dir, fd, tmp, final_name, rename_first, f_fsync, &dir_syncer);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd); // the data is durable (fsynced): a late close error loses nothing
}

} // namespace

void Checkpointer::Impl::save_small(std::unique_ptr<Pending> p, std::vector<formats::FieldWrite> writes) {
  const int n = comm.size();
  const std::size_t nf = writes.size();
  p->small = true;
  const detail::Fault f_write = detail::fault_action("write", rank()), f_fsync = detail::fault_action("fsync", rank());

  // 1. This rank's bytes, packed field after field in file order: the plan of a file whose
  //    fields follow each other with no gap (the previous save's plan when it read the same
  //    memory). Rank 0 hashes every rank's bytes later, on its background writer when it can
  //    (async and a patched image), so that a save costs the other ranks and rank 0's
  //    solver thread one copy of the state.
  if (!same_reads(writes, small_plan_of)) {
    formats::Layout packed;
    std::uint64_t end = 0;
    for (std::size_t i = 0; i < nf; ++i) {
      const std::uint64_t bytes = volume(writes[i].shape) * dtype_size(writes[i].dtype);
      packed.data_offset.push_back(bytes == 0 ? formats::Layout::no_offset : end);
      end += bytes;
    }
    formats::WritePlan plan = formats::plan_writes(writes, packed, std::vector<bool>(nf, false));
    std::vector<formats::FieldWrite> of;
    for (const auto &w : writes) {
      of.push_back(w);
      of.back().blocks.clear();
    }
    small_plan = std::move(plan);
    small_plan_of = std::move(of);
  }
  const formats::WritePlan &plan = small_plan;

  // Rank 0 receives every rank's head and bytes, at offsets it computes from the block tables.
  std::vector<int> counts(static_cast<std::size_t>(n)), displs(static_cast<std::size_t>(n));
  std::vector<std::uint64_t> expected(static_cast<std::size_t>(n), 0); // bytes each rank packs
  std::uint64_t total = 0;
  if (rank() == 0) {
    for_each_part(writes, [&](std::size_t i, const BlockInfo &b) {
      expected[static_cast<std::size_t>(b.rank)] += volume(b.count) * dtype_size(writes[i].dtype);
    });
    for (int r = 0; r < n; ++r) {
      std::uint64_t bytes = (head + expected[static_cast<std::size_t>(r)] + 63) / 64 * 64;
      if (total + bytes > std::uint64_t(std::numeric_limits<int>::max())) // save() keeps it below 2 GiB
        throw Error(Errc::internal, 0, "a small save's gather exceeds 2 GiB");
      counts[static_cast<std::size_t>(r)] = static_cast<int>(bytes);
      displs[static_cast<std::size_t>(r)] = static_cast<int>(total);
      total += bytes;
    }
  }
  const int sent = static_cast<int>((head + plan.bytes + 63) / 64 * 64);
  small_data.reserve(rank() == 0 ? std::max<std::uint64_t>(total, 1) : std::uint64_t(sent));
  auto *words = reinterpret_cast<std::uint64_t *>(small_data.data()); // rank 0: its own part comes first
  std::memset(words, 0, head);
  const mpi::Status packing = mpi::capture(rank(), [&] {
    detail::fault_apply(f_write, "write", rank());
    formats::pack_plan(plan, small_data.data() + head);
    // The other ranks' data path ends here: what "after the data" means for them.
    if (rank() != 0)
      detail::fault_apply(f_fsync, "fsync", rank());
  });
  words[0] = packing.ok() ? 0 : static_cast<std::uint64_t>(packing.code);
  words[1] = plan.bytes;
  mpi::check(MPI_Gatherv(rank() == 0 ? MPI_IN_PLACE : small_data.data(), sent, MPI_BYTE, small_data.data(),
                         counts.data(), displs.data(), MPI_BYTE, 0, comm.get()),
             "gathering a small checkpoint to rank 0", rank());

  // 2. Rank 0: every rank's bytes found in the gathered buffer, and the file made in memory.
  //    When the last image has this save's structure, the bytes are hashed and the image
  //    patched later (no HDF5 call, so on the background writer when async); otherwise
  //    they are hashed and HDF5 builds the file now. A rank that failed keeps its own error
  //    (agreed later).
  p->status = packing;
  std::uint64_t file_bytes = 0;
  std::vector<const std::byte *> data(static_cast<std::size_t>(n)); // rank r's packed bytes
  bool others_ok = true, patch = false;
  if (rank() == 0 && packing.ok()) {
    // Rank r's head and its packed bytes in the gathered buffer.
    auto head_of = [&](int r) {
      return reinterpret_cast<const std::uint64_t *>(small_data.data() + displs[static_cast<std::size_t>(r)]);
    };
    for (int r = 1; r < n; ++r)
      others_ok = others_ok && head_of(r)[0] == 0;
    if (others_ok)
      p->status = mpi::capture(0, [&] {
        for (int r = 0; r < n; ++r) {
          if (head_of(r)[1] != expected[static_cast<std::size_t>(r)])
            throw Error(Errc::internal, 0, fmt::format("rank {} packed {} bytes for a small save, {} expected", r,
                                                       head_of(r)[1], expected[static_cast<std::size_t>(r)]));
          data[static_cast<std::size_t>(r)] = reinterpret_cast<const std::byte *>(head_of(r)) + head;
        }
        patch = small_image.patchable(p->header, writes);
        if (!patch) {
          hash_parts(writes, data);
          formats::Layout layout;
          file_bytes = small_image.build(p->header, writes, small_file, layout);
          formats::place_plan(placement(writes, data, layout), small_file.data());
        }
      });
  }
  p->writes = std::move(writes);

  // 3. Rank 0 writes the file, fsyncs it, renames it into place, fsyncs the directory, moves
  //    LATEST and prunes: now (sync), or on the background writer (async).
  const bool writes_file = rank() == 0 && p->status.ok() && others_ok;
  auto write_and_publish = [this, file_bytes, f_fsync, patch, data = std::move(data)](Pending &job) {
    job.status = mpi::capture(0, [&] {
      std::uint64_t bytes = file_bytes;
      if (patch) {
        hash_parts(job.writes, data);
        formats::Layout layout;
        bytes = small_image.patch(job.header, job.writes, small_file, layout);
        formats::place_plan(placement(job.writes, data, layout), small_file.data());
      }
      // The commit's order: see detail::commit_written. The rename comes first once this
      // run has a durable checkpoint in the directory to fall back to.
      write_and_commit(dir, job.tmp_path, job.final_name, small_file.data(), bytes, durable_in_dir.load(), f_fsync,
                       dir_syncer);
      durable_in_dir = true;
      // Sync: on the application's thread, so the blocks are freed by the reaper; async: this
      // is the background writer already.
      job.warnings = job.mode == Mode::sync ? prune_in_background(job.step) : detail::prune(dir, opts.keep, job.step);
    });
    job.write_end = mono();
    // Async: the outcome is known here (every rank's packing was fine), so the statistics
    // line is written now rather than on the solver's thread at the commit.
    if (job.mode == Mode::async && job.status.ok()) {
      append_stats(save_stats_line(job, job.write_end - job.t0, job.blocked));
      job.stats_appended = true;
    }
  };
  if (opts.mode == Mode::sync) {
    if (writes_file)
      write_and_publish(*p);
    p->write_end = mono();
    commit_small(*p);
    saved_step = p->step;
    return;
  }
  p->blocked = mono() - p->t0;
  stats.seconds += p->blocked;
  stats.last_seconds = p->blocked;
  history.last_checkpoint = mono();
  saved_step = p->step; // staged; committed (or its error thrown) by a later collective call
  p->write_end = mono();
  pending = std::move(p);
  if (writes_file) {
    Pending *job = pending.get();
    worker.submit([job, write_and_publish] { write_and_publish(*job); });
  }
}

// The outcome of a small save: rank 0 wrote and published the file (or failed), another rank
// may have failed packing; one agreement tells every rank, the same error everywhere.
void Checkpointer::Impl::commit_small(Pending &p) {
  mpi::agree(comm, small_outcome(p));
  small_committed(p);
}

// This rank's part of the outcome: rank 0's write and publication, another rank's packing.
mpi::Status Checkpointer::Impl::small_outcome(const Pending &p) const {
  if (!p.status.ok() && p.status.code == Errc::io)
    return no_space_or(p.status, p.payload);
  return p.status;
}

// After every rank agreed the small save `p` succeeded.
void Checkpointer::Impl::small_committed(const Pending &p) {
  for (const auto &w : p.warnings)
    warn(w);
  committed(p, p.write_end - p.t0, p.blocked);
}

} // namespace ckpt
