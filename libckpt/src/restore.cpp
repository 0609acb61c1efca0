// Restore: wait()/restore()/restore_from() of the public API, and restore_file, which
// verifies one checkpoint and reads it into the registered fields (any rank count: each
// rank reads the parts of the saved blocks that overlap its new block). Which file to try,
// and what a failure means, is restore_fallback.cpp.
#include "commit.hpp"
#include "session.hpp"

#include "restore_fallback.hpp"

#include <ckpt/formats/checksum.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstring>

namespace ckpt {

void Checkpointer::wait() {
  auto &m = *impl_;
  m.finish_pending();
  m.complete_pending();
  m.agree_at_next_boundary(); // e.g. the next loop after this one: its steps may cost more
}

std::int64_t Checkpointer::restore_from(const std::string &file) {
  const std::int64_t step = restore_from(impl_->fields, file);
  impl_->frozen = true;
  return step;
}

std::optional<std::int64_t> Checkpointer::restore() {
  auto r = restore(impl_->fields);
  impl_->frozen = true;
  return r;
}

std::int64_t Checkpointer::restore_from(const FieldSet &fields, const std::string &file) {
  auto &m = *impl_;
  m.finish_pending();
  m.complete_pending();
  const std::int64_t step = m.restore_file(fields.fields(), file);
  m.restored_to(step, fields);
  return step;
}

std::int64_t Checkpointer::read_from(const FieldSet &fields, const std::string &file) {
  auto &m = *impl_;
  m.finish_pending();
  m.complete_pending();
  return m.restore_file(fields.fields(), file);
}

std::optional<std::int64_t> Checkpointer::restore(const FieldSet &fields) {
  auto &m = *impl_;
  m.finish_pending();
  m.complete_pending();
  const auto r = m.restore(fields.fields());
  m.restored_to(r, fields);
  return r;
}

void Checkpointer::Impl::restored_to(std::optional<std::int64_t> r, const FieldSet &set) {
  restore_done = true;
  restored = r;
  agree_at_next_boundary();
  if (r) {
    saved_step = *r;
    durable_in_dir = true;
  }
  if (r && levels)
    levels->flushed_step = *r; // restored from CKPT_DIR (a rebuilt node-local one is there too)
  if (history.saves == 0)
    history.state_bytes = set.bytes() * static_cast<std::uint64_t>(comm.size());
  progress("restored", r);
}

std::int64_t Checkpointer::Impl::restore_file(const std::vector<Field> &fields, const std::string &file) {
  const double t0 = mono();
  std::optional<formats::Reader> reader;
  collective([&] { reader.emplace(file, comm.get()); });
  const CheckpointInfo &info = reader->info();
  const int n = comm.size();

  // Does the checkpoint fit what the application registered? (Same answer on all ranks,
  // except for per-rank shapes, hence the agreement.)
  std::vector<const FieldInfo *> saved(fields.size());
  collective([&] {
    auto step = std::optional<std::int64_t>();
    const std::string base = fs::path(file).filename().string();
    if (base.rfind("ckpt-", 0) == 0 && base != checkpoint_file_name(info.step))
      throw Error(Errc::corrupt, -1, fmt::format("{} holds step {}, not the step its name says", file, info.step));
    for (std::size_t i = 0; i < fields.size(); ++i) {
      const Field &f = fields[i];
      const FieldInfo *fi = info.field(f.name);
      if (!fi)
        throw Error(Errc::missing_field, -1, fmt::format("restore: field '{}' is not in {}; it holds: {}", f.name, file,
                                                          [&] {
                                                            std::string s;
                                                            for (const auto &x : info.fields)
                                                              s += (s.empty() ? "" : ", ") + x.name;
                                                            return s.empty() ? std::string("no fields") : s;
                                                          }()));
      if (fi->kind != f.kind)
        throw Error(Errc::mismatch, -1, fmt::format("restore: field '{}' is {} in {} but registered as {}", f.name,
                                                     kind_name(fi->kind), file, kind_name(f.kind)));
      if (fi->dtype != f.dtype)
        throw Error(Errc::mismatch, -1, fmt::format("restore: field '{}' is {} in {} but registered as {}", f.name,
                                                     dtype_name(fi->dtype), file, dtype_name(f.dtype)));
      if (f.kind == Kind::distributed && fi->shape != f.block.global)
        throw Error(Errc::mismatch, -1, fmt::format("restore: field '{}' has global shape [{}] in {} but [{}] is registered",
                                                     f.name, fmt::join(fi->shape, ","), file, fmt::join(f.block.global, ",")));
      if (f.kind == Kind::replicated && fi->shape != f.shape)
        throw Error(Errc::mismatch, -1, fmt::format("restore: field '{}' has shape [{}] in {} but [{}] is registered",
                                                     f.name, fmt::join(fi->shape, ","), file, fmt::join(f.shape, ",")));
      if (f.kind == Kind::per_rank) {
        if (info.nranks != n)
          throw Error(Errc::rank_count, -1,
                      fmt::format("restore: per-rank field '{}' was saved by {} ranks in {}, this run has {}; "
                                  "per-rank values can only be restored on the same number of ranks (store "
                                  "arrays that should be resharded as distributed fields)",
                                  f.name, info.nranks, file, n));
        const auto &b = fi->blocks[static_cast<std::size_t>(rank())];
        if (!f.get && b.local_shape != f.shape)
          throw Error(Errc::mismatch, -1, fmt::format("restore: per-rank field '{}' of rank {} has shape [{}] in {} but [{}] is registered",
                                                       f.name, rank(), fmt::join(b.local_shape, ","), file, fmt::join(f.shape, ",")));
      }
      saved[i] = fi;
    }
    (void)step;
  });

  // New decomposition of every distributed field, to decide who verifies which saved block.
  std::vector<std::uint64_t> mine;
  for (const auto &f : fields)
    if (f.kind == Kind::distributed) {
      mine.insert(mine.end(), f.block.offset.begin(), f.block.offset.end());
      mine.insert(mine.end(), f.block.count.begin(), f.block.count.end());
    }
  std::vector<std::uint64_t> starts;
  auto all = comm.allgatherv(mine, &starts, "gathering the new decomposition");

  std::uint64_t bytes = 0;
  std::string damage;
  Errc damage_code = Errc::corrupt; // io when a read failed (storage, not content)
  collective([&] {
    std::size_t dist_pos = 0; // position of this field in each rank's `mine`
    for (std::size_t i = 0; i < fields.size(); ++i) {
      const Field &f = fields[i];
      const FieldInfo &fi = *saved[i];
      const std::size_t elem = dtype_size(f.dtype);
      if (f.kind == Kind::distributed) {
        const std::size_t nd = fi.shape.size();
        // Contiguous datasets are read with pread/O_DIRECT at their offset (the same on
        // every rank, so either all ranks or none take part in the collective H5Dread),
        // hashing the bytes on the way.
        std::optional<std::uint64_t> read_sum;
        if (const std::uint64_t raw = reader->raw_offset(fi); raw != formats::Layout::no_offset) {
          const formats::FieldWrite fw = block_write(f, fi.shape);
          formats::Layout lay;
          lay.data_offset = {raw};
          const auto plan = formats::plan_writes({fw}, lay, {true});
          // A short or unreadable file fails on some ranks only: note it and go on, so
          // every rank still takes part in the collective reads of the other fields.
          try {
            read_sum = formats::read_streaming(file, plan, ring, opts.writer_any_cpu)[0];
          } catch (const Error &e) {
            if (damage.empty()) {
              damage = e.detail();
              damage_code = e.code() == Errc::corrupt ? Errc::corrupt : Errc::io;
            }
          }
        } else {
          reader->read(fi, f.block.offset, f.block.count, volume(f.block.count) ? f.data : nullptr, f.block.memory,
                       f.block.memory_offset, true);
        }
        bytes += volume(f.block.count) * elem;
        // Saved blocks that some rank now holds exactly are verified by that rank from
        // what it read; the others are read again by rank (block % n) just to check them.
        for (std::size_t k = 0; k < fi.blocks.size(); ++k) {
          const auto &b = fi.blocks[k];
          int holder = -1;
          for (int r = 0; r < n && holder < 0; ++r) {
            const std::uint64_t *p = &all[starts[static_cast<std::size_t>(r)] + dist_pos];
            if (std::equal(b.offset.begin(), b.offset.end(), p) && std::equal(b.count.begin(), b.count.end(), p + nd))
              holder = r;
          }
          const int checker = holder >= 0 ? holder : static_cast<int>(k % static_cast<std::size_t>(n));
          if (checker != rank())
            continue;
          std::uint64_t sum;
          if (holder >= 0) {
            sum = read_sum ? *read_sum
                           : formats::checksum_block(f.data, f.block.memory, f.block.memory_offset, f.block.count, elem);
          } else {
            std::vector<std::byte> tmp(static_cast<std::size_t>(volume(b.count) * elem));
            reader->read(fi, b.offset, b.count, tmp.data(), b.count, Shape(nd, 0), false);
            sum = formats::checksum(tmp.data(), tmp.size());
          }
          if (sum != b.checksum && damage.empty())
            damage = fmt::format("checksum mismatch in field '{}' block {} of {}", f.name, k, file);
        }
        dist_pos += 2 * nd;
      } else if (f.kind == Kind::replicated) {
        reader->read(fi, Shape(fi.shape.size(), 0), fi.shape, f.data ? f.data : nullptr, fi.shape,
                     Shape(fi.shape.size(), 0), true);
        const auto sum = formats::checksum(f.data, static_cast<std::size_t>(volume(fi.shape) * elem));
        if (sum != fi.blocks.at(0).checksum && damage.empty())
          damage = fmt::format("checksum mismatch in field '{}' block 0 of {}", f.name, file);
      } else {
        const auto &b = fi.blocks[static_cast<std::size_t>(rank())];
        void *dst = f.get ? f.resize(b.local_shape) : f.data;
        reader->read(fi, b.offset, b.count, volume(b.count) ? dst : nullptr, b.count, Shape{0}, true);
        bytes += volume(b.count) * elem;
        const auto sum = formats::checksum(dst, static_cast<std::size_t>(volume(b.count) * elem));
        if (sum != b.checksum && damage.empty())
          damage = fmt::format("checksum mismatch in field '{}' block {} of {}", f.name, rank(), file);
      }
    }
    // Damage is reported only after every rank took part in every collective read.
    if (!damage.empty())
      throw Error(damage_code, -1, damage);
  });
  collective([&] { reader->close(); });
  sim_time = info.time;
  const double secs = mono() - t0;
  const std::int64_t total = comm.allreduce_sum(static_cast<std::int64_t>(bytes), "summing restored bytes");
  // With node-local storage, the line names the level it came from.
  std::string origin = detail::origin_of(file);
  if (origin.empty() && levels)
    origin = "the shared copy";
  log(fmt::format("restored step {} from {}{} ({} in {:.3f} s, saved on {} ranks, now {})", info.step,
                  origin.empty() ? "" : origin + ": ", file, human_bytes(static_cast<std::uint64_t>(total)), secs,
                  info.nranks, n));
  if (rank() == 0)
    append_stats(fmt::format("{{\"event\":\"restore\",\"step\":{},\"unix\":{:.3f},\"nranks\":{},\"saved_nranks\":{},"
                             "\"bytes\":{},\"seconds\":{:.6f},\"file\":{}}}",
                             info.step, now(), n, info.nranks, total, secs,
                             detail::json_string(fs::path(file).filename().string())));
  history.last_checkpoint = mono();
  return info.step;
}

std::optional<std::int64_t> Checkpointer::Impl::restore(const std::vector<Field> &fields) {
  return detail::restore_with_fallback(
      comm, dir.string(), opts.fresh, [&](const std::string &file) { return restore_file(fields, file); },
      [&](const std::string &msg) { warn(msg); }, opts.local_dir, [&](const std::string &msg) { log(msg); });
}

} // namespace ckpt
