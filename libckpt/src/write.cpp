// The write of a save: every rank writes its bytes at the agreed offsets (sync: streamed
// through the ring now, then committed; async: copied into the staging memory and written
// by the background thread, committed at a later step boundary). The raw I/O itself is
// formats/src/raw_writer.cpp.
#include "session.hpp"

#include "commit.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace ckpt {

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
  // A node-local part of a rank other than 0 is a file of its own (rank 0 created the others'
  // one shared file, and its own part).
  auto create_part = [&] {
    if (!levels || rank() == 0)
      return;
    ::unlink(p->tmp_path.c_str());
    const int fd = ::open(p->tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
      throw Error(Errc::io, rank(), fmt::format("cannot create {}: {}", p->tmp_path.string(), std::strerror(errno)));
    ::close(fd);
  };
  if (opts.mode == Mode::sync) {
    p->status = mpi::capture(rank(), [&] {
      detail::fault_apply(f_write, "write", rank());
      create_part();
      // Rank 0 fsyncs the file once, after writing the checksums into it (commit); a
      // node-local part is fsynced once sealed.
      p->digests = formats::write_streaming(p->tmp_path.string(), p->plan, ring, rank() != 0 && !levels,
                                                 opts.writer_any_cpu);
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
  p->status = mpi::capture(rank(), [&] {
    create_part();
    formats::snapshot(p->plan, staging);
  });
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

void Checkpointer::Impl::complete_pending() {
  if (!pending)
    return;
  worker.wait();
  std::unique_ptr<Pending> p = std::move(pending);
  commit(*p);
}

} // namespace ckpt
