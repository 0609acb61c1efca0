// A save, up to the commit: this rank's block tables, gathered and checked (plan.cpp), the
// layout agreed (rank 0 creates the temp file and tells every rank where its bytes go), and
// the write (sync: streamed now; async: copied into the staging memory and written by the
// background thread). The commit is in commit.cpp.
#include "session.hpp"

#include "commit.hpp"
#include "plan.hpp"

#include <ckpt/formats/checksum.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cerrno>
#include <cstring>
#include <sys/statvfs.h>
#include <unistd.h>

namespace ckpt {

void Checkpointer::save(std::int64_t step, double time) { impl_->save(impl_->fields.fields(), step, time); }

void Checkpointer::save(const FieldSet &fields, std::int64_t step, double time) {
  impl_->save(fields.fields(), step, time);
}

void Checkpointer::Impl::save(const std::vector<Field> &fields, std::int64_t step, double time) {
  const double t0 = mono();
  finish_pending();
  complete_pending(); // a new save waits for the previous one to be committed
  if (step < 0)
    throw Error(Errc::invalid_argument, rank(), fmt::format("save: step {} is negative", step));
  std::vector<formats::FieldWrite> writes = block_tables(fields, step);
  auto p = agree_layout(step, time, t0, writes);
  write(std::move(p), std::move(writes));
}

// 1-3. Every field's block table, the same on every rank: where each rank's part lies, and
//      the checksums known before the write (replicated values, compared across ranks).
std::vector<formats::FieldWrite> Checkpointer::Impl::block_tables(const std::vector<Field> &fields, std::int64_t step) {
  const int n = comm.size();
  // 1. This rank's part of every field: where it lies and its checksum. Plus a signature
  //    of the registry that must be equal on all ranks.
  std::vector<formats::FieldWrite> writes(fields.size());
  std::vector<std::uint64_t> mine; // per field: checksum, then kind-specific numbers
  std::string signature = fmt::format("{}|", step);
  collective([&] {
    for (std::size_t i = 0; i < fields.size(); ++i) {
      const Field &f = fields[i];
      auto &w = writes[i];
      w.name = f.name;
      w.kind = f.kind;
      w.dtype = f.dtype;
      const std::size_t elem = dtype_size(f.dtype);
      signature += fmt::format("{}:{}:{}", f.name, int(f.kind), int(f.dtype));
      if (f.kind == Kind::distributed) {
        signature += fmt::format(":{}", fmt::join(f.block.global, "x"));
        w.shape = f.block.global;
        w.write = volume(f.block.count) > 0;
        w.data = f.data;
        w.offset = f.block.offset;
        w.count = f.block.count;
        w.memory = f.block.memory;
        w.memory_offset = f.block.memory_offset;
        mine.push_back(0); // the writer computes it from the bytes it writes
        mine.insert(mine.end(), f.block.offset.begin(), f.block.offset.end());
        mine.insert(mine.end(), f.block.count.begin(), f.block.count.end());
      } else {
        const void *data = f.data;
        Shape shape = f.shape;
        if (f.get) {
          auto [p, s] = f.get();
          data = p;
          shape = s;
          if (!p && volume(s) > 0)
            throw Error(Errc::invalid_argument, rank(), fmt::format("per-rank field '{}' returned a null pointer", f.name));
        }
        const std::uint64_t bytes = volume(shape) * elem;
        // Replicated values are compared across ranks now; per-rank ones are hashed by the writer.
        mine.push_back(f.kind == Kind::replicated ? formats::checksum(data, static_cast<std::size_t>(bytes)) : 0);
        w.data = data;
        w.memory = f.kind == Kind::per_rank ? Shape{volume(shape)} : shape;
        w.memory_offset.assign(w.memory.size(), 0);
        if (f.kind == Kind::replicated) {
          signature += fmt::format(":{}", fmt::join(shape, "x"));
          w.shape = shape;
          w.write = rank() == 0;
          w.offset.assign(shape.size(), 0);
          w.count = shape;
        } else {
          signature += fmt::format(":{}", shape.size());
          mine.push_back(shape.size());
          mine.insert(mine.end(), shape.begin(), shape.end());
          w.write = volume(shape) > 0;
          w.count = Shape{volume(shape)};
        }
      }
      signature += ";";
    }
  });

  // 2. All ranks must have registered the same fields (names, kinds, dtypes, shapes).
  const std::uint64_t sig = formats::checksum(signature.data(), signature.size());
  auto sigs = comm.allgather(sig, "comparing registries");
  for (int r = 0; r < n; ++r)
    if (sigs[static_cast<std::size_t>(r)] != sigs[0])
      throw Error(Errc::invalid_argument, r,
                  fmt::format("save at step {}: rank {} registered different fields (or a different "
                              "step) than rank 0; all ranks must register the same fields in the same order",
                              step, r));

  // 3. Every rank's blocks and checksums, gathered to all ranks (same tables everywhere).
  std::vector<std::uint64_t> starts;
  auto all = comm.allgatherv(mine, &starts, "gathering block tables");
  std::vector<std::size_t> pos(starts.begin(), starts.end());
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const Field &f = fields[i];
    auto &w = writes[i];
    std::uint64_t total = 0;
    for (int r = 0; r < n; ++r) {
      std::size_t &p = pos[static_cast<std::size_t>(r)];
      BlockInfo b;
      b.rank = r;
      b.checksum = all[p++];
      if (f.kind == Kind::distributed) {
        const std::size_t nd = w.shape.size();
        b.offset.assign(all.begin() + long(p), all.begin() + long(p + nd));
        b.count.assign(all.begin() + long(p + nd), all.begin() + long(p + 2 * nd));
        p += 2 * nd;
        b.local_shape = b.count;
        if (volume(b.count) > 0)
          w.blocks.push_back(b);
      } else if (f.kind == Kind::replicated) {
        if (r == 0) {
          b.offset.assign(w.shape.size(), 0);
          b.count = w.shape;
          b.local_shape = w.shape;
          w.blocks.push_back(b);
        } else if (b.checksum != w.blocks[0].checksum) {
          throw Error(Errc::mismatch, r,
                      fmt::format("save at step {}: replicated field '{}' differs between rank 0 and "
                                  "rank {}; use per_rank() for values that differ",
                                  step, f.name, r));
        }
      } else {
        const std::size_t lnd = static_cast<std::size_t>(all[p++]);
        b.local_shape.assign(all.begin() + long(p), all.begin() + long(p + lnd));
        p += lnd;
        b.offset = {total};
        b.count = {volume(b.local_shape)};
        total += b.count[0];
        w.blocks.push_back(b);
        if (r == rank())
          w.offset = b.offset;
      }
    }
    if (f.kind == Kind::per_rank) {
      w.shape = {total};
      for (const auto &b : w.blocks)
        if (b.local_shape.size() != w.blocks[0].local_shape.size())
          throw Error(Errc::mismatch, b.rank,
                      fmt::format("save: per-rank field '{}' has {} dimensions on rank {} but {} on rank 0",
                                  f.name, b.local_shape.size(), b.rank, w.blocks[0].local_shape.size()));
    }
    if (f.kind == Kind::distributed) {
      // The blocks must tile the global array: same total, no overlap.
      std::uint64_t covered = 0;
      for (const auto &b : w.blocks)
        covered += volume(b.count);
      const bool overlap = detail::find_overlap(w.blocks).has_value(); // any number of blocks
      if (overlap || covered != volume(w.shape))
        throw Error(Errc::invalid_argument, 0,
                    fmt::format("save: the blocks of distributed field '{}' do not tile its global "
                                "shape [{}] ({} of {} elements covered{})",
                                f.name, fmt::join(w.shape, ","), covered, volume(w.shape),
                                overlap ? ", blocks overlap" : ""));
    }
  }
  return writes;
}

// 4. Rank 0 lays the temp file out (all metadata, raw data regions allocated) and tells
//    every rank where each dataset's data lies.
std::unique_ptr<Checkpointer::Impl::Pending> Checkpointer::Impl::agree_layout(std::int64_t step, double time, double t0,
                                                                              const std::vector<formats::FieldWrite> &writes) {
  const int n = comm.size();
  auto p = std::make_unique<Pending>();
  p->step = step;
  p->time = time;
  p->mode = opts.mode;
  p->t0 = t0;
  p->boundary = boundaries;
  p->final_name = checkpoint_file_name(step);
  p->final_path = dir / p->final_name;
  p->tmp_path = dir / ("." + p->final_name + ".tmp");
  p->header = formats::Header{step, time, n, metadata};
  for (const auto &w : writes)
    p->payload += volume(w.shape) * dtype_size(w.dtype);
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
        if (::statvfs(dir.c_str(), &vfs) == 0 &&
            double(vfs.f_bavail) * double(vfs.f_frsize) < double(p->payload) + double(64 << 10))
          throw Error(Errc::no_space, 0,
                      fmt::format("no space left in {} for a checkpoint of {} ({} free): free space there, "
                                  "lower CKPT_KEEP, or point CKPT_DIR elsewhere",
                                  dir.string(), human_bytes(p->payload),
                                  human_bytes(static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize)));
        p->layout = formats::create_file(p->tmp_path.string(), p->header, writes);
      });
      if (!st.ok() && st.code == Errc::hdf5)
        st = no_space_or(st, p->payload);
      if (!st.ok())
        ::unlink(p->tmp_path.c_str());
    }
    st = mpi::bcast(comm, st, 0, "broadcasting the outcome of creating the checkpoint file");
    if (!st.ok())
      throw Error(st.code, 0, st.message);
    p->layout.created = comm.bcast(p->layout.created, 0, "broadcasting the checkpoint layout");
    p->layout.data_offset = comm.bcast(p->layout.data_offset, 0, "broadcasting the checkpoint layout");
    if (p->layout.data_offset.size() != writes.size())
      throw Error(Errc::internal, 0, "the checkpoint layout does not list every field");
  }
  return p;
}

// 5. Every rank writes its bytes at those offsets. Block checksums of distributed and
//    per-rank fields are computed from the bytes as they are written (the snapshot). Sync:
//    written and committed now. Async: copied into the staging memory, written by the
//    background thread, committed at a later step boundary.
void Checkpointer::Impl::write(std::unique_ptr<Pending> p, std::vector<formats::FieldWrite> writes) {
  const std::int64_t step = p->step;
  std::vector<bool> hashed(writes.size());
  for (std::size_t i = 0; i < writes.size(); ++i)
    hashed[i] = writes[i].kind != Kind::replicated;
  p->plan = formats::plan_writes(writes, p->layout, hashed);
  const detail::Fault f_write = detail::fault_action("write", rank()), f_fsync = detail::fault_action("fsync", rank());
  if (history.iter_count > 0)
    p->iter = fmt::format(",\"iterations\":{},\"iteration_seconds\":{:.9g}", history.iter_count,
                          history.iter_sum / double(history.iter_count));
  history.iter_sum = 0;
  history.iter_count = 0;
  if (opts.mode == Mode::sync) {
    p->status = mpi::capture(rank(), [&] {
      detail::fault_apply(f_write, "write", rank());
      // Rank 0 fsyncs the file once, after writing the checksums into it (commit).
      p->digests = formats::write_streaming(p->tmp_path.string(), p->plan, ring, rank() != 0);
      detail::fault_apply(f_fsync, "fsync", rank());
    });
    p->write_end = mono();
    p->blocked = -1; // the whole save, set at commit
    p->writes = std::move(writes);
    commit(*p);
    saved_step = step;
    return;
  }
  // Async: copy the state into the reused staging memory; the background thread writes it.
  p->status = mpi::capture(rank(), [&] { formats::snapshot(p->plan, staging); });
  p->writes = std::move(writes);
  p->blocked = mono() - p->t0;
  stats.seconds += p->blocked;
  stats.last_seconds = p->blocked;
  pending = std::move(p);
  history.last_checkpoint = mono();
  saved_step = step; // staged; committed (or its error thrown) by a later collective call
  if (!pending->status.ok()) {
    pending->write_end = mono();
    return; // reported at the commit, on every rank
  }
  Pending *job = pending.get();
  const int me = rank();
  worker.submit([this, job, me, f_write, f_fsync] {
    job->status = mpi::capture(me, [&] {
      detail::fault_apply(f_write, "write", me);
      job->digests = formats::write_snapshot(job->tmp_path.string(), job->plan, staging);
      detail::fault_apply(f_fsync, "fsync", me);
    });
    job->write_end = mono();
  });
}

mpi::Status Checkpointer::Impl::no_space_or(const mpi::Status &st, std::uint64_t payload) const {
  struct statvfs vfs {};
  if (::statvfs(dir.c_str(), &vfs) == 0 && double(vfs.f_bavail) * vfs.f_frsize < double(payload) + (1 << 20))
    return {Errc::no_space, fmt::format("no space left in {} for a checkpoint of {} ({})", dir.string(),
                                        human_bytes(payload), st.message)};
  return st;
}

void Checkpointer::Impl::complete_pending() {
  if (!pending)
    return;
  worker.wait();
  std::unique_ptr<Pending> p = std::move(pending);
  commit(*p);
}

} // namespace ckpt
