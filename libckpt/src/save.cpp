// A save: the entry points, and this rank's block tables, gathered to every rank and
// checked (plan.cpp). Then a small state goes to save_small.cpp; a larger one to
// agreement.cpp (the layout), write.cpp (the data), commit.cpp.
#include "session.hpp"

#include "commit.hpp"
#include "plan.hpp"

#include <ckpt/formats/checksum.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/statvfs.h>
#include <type_traits>
#include <unistd.h>

namespace ckpt {

void Checkpointer::save(std::int64_t step, double time) { impl_->save(impl_->fields.fields(), step, time); }

void Checkpointer::save(const FieldSet &fields, std::int64_t step, double time) {
  impl_->save(fields.fields(), step, time);
}

void Checkpointer::Impl::save(const std::vector<Field> &fields, std::int64_t step, double time) {
  const double t0 = mono();
  finish_pending();
  reap_in_background(); // rank 0: descriptors left by a save that failed after its pruning
  reaper.wait();        // the last pruned checkpoints' space is free before this save writes
  // A new save waits for the previous one to be committed. An async small save (rank 0 wrote
  // and published it, every rank knows its own part of the outcome) is committed on this
  // save's first collective, the block tables' all-reduce, instead of an agreement of its own.
  std::unique_ptr<Pending> previous;
  if (pending && pending->small) {
    worker.wait();
    previous = std::move(pending);
  } else {
    complete_pending();
  }
  if (step < 0) {
    if (previous)
      commit_small(*previous);
    throw Error(Errc::invalid_argument, rank(), fmt::format("save: step {} is negative", step));
  }
  std::vector<formats::FieldWrite> writes = block_tables(fields, step, previous.get());
  auto p = new_pending(step, time, t0, writes);
  // Every rank decides alike: the payload comes from the agreed block tables. What rank 0
  // gathers (the state and a header per rank) stays far below MPI's 2 GiB count limit.
  const bool small = opts.small_bytes > 0 && p->payload <= std::min<std::uint64_t>(opts.small_bytes, 1u << 30) &&
                     std::uint64_t(comm.size()) * (80 + 8 * writes.size()) < (1u << 30);
  if (!levels && small) {
    save_small(std::move(p), std::move(writes));
    return;
  }
  p = agree_layout(std::move(p), writes);
  write(std::move(p), std::move(writes));
}

namespace {

// Appends the bytes of a number to a signature.
template <class T> void sign_word(std::string &signature, T v) {
  signature.append(reinterpret_cast<const char *>(&v), sizeof v);
}

// A VTKHDF image has one extent: the fields tagged with a grid must share it.
void check_image_view(const std::vector<formats::FieldWrite> &writes, std::int64_t step) {
  const formats::FieldWrite *first = nullptr;
  for (const auto &w : writes) {
    if (!w.grid)
      continue;
    if (!first) {
      first = &w;
      continue;
    }
    if (w.shape != first->shape || w.grid->origin != first->grid->origin || w.grid->spacing != first->grid->spacing)
      throw Error(Errc::invalid_argument, -1,
                  fmt::format("save at step {}: fields '{}' and '{}' are tagged with different grids or shapes "
                              "([{}] and [{}]); the image view of a checkpoint has one grid",
                              step, first->name, w.name, fmt::join(first->shape, ","), fmt::join(w.shape, ",")));
  }
}

} // namespace

// 1-3. Every field's block table, the same on every rank (one gather): where each rank's part lies, and
//      the checksums known before the write (replicated values, compared across ranks).
std::vector<formats::FieldWrite> Checkpointer::Impl::block_tables(const std::vector<Field> &fields, std::int64_t step,
                                                                  Pending *previous) {
  const int n = comm.size();
  // 1. This rank's part of every field: where it lies and its checksum. Plus a signature
  //    of the registry that must be equal on all ranks. An error here is thrown on every
  //    rank by the gather of step 2.
  std::vector<formats::FieldWrite> writes(fields.size());
  std::vector<std::uint64_t> mine; // per field: checksum, then kind-specific numbers
  std::vector<std::size_t> replicated_at; // where in `mine` the replicated values' checksums are
  // The signature's bytes: every field's name, kind, dtype and the shape parts that must
  // agree, as raw words (no formatting: this runs at every save).
  std::string signature;
  auto sign = [&signature](const auto &v) {
    using T = std::decay_t<decltype(v)>;
    if constexpr (std::is_same_v<T, std::string>) {
      sign_word(signature, v.size());
      signature += v;
    } else if constexpr (std::is_arithmetic_v<T>) {
      sign_word(signature, v);
    } else { // a vector of numbers
      sign_word(signature, v.size());
      for (const auto x : v)
        sign_word(signature, x);
    }
  };
  const mpi::Status built = mpi::capture(rank(), [&] {
    for (std::size_t i = 0; i < fields.size(); ++i) {
      const Field &f = fields[i];
      auto &w = writes[i];
      w.name = f.name;
      w.kind = f.kind;
      w.dtype = f.dtype;
      const std::size_t elem = dtype_size(f.dtype);
      sign(f.name);
      sign(int(f.kind));
      sign(int(f.dtype));
      if (f.kind == Kind::distributed) {
        sign(f.block.global);
        sign(int(bool(f.grid)));
        if (f.grid) {
          sign(f.grid->origin);
          sign(f.grid->spacing);
        }
        w = block_write(f, f.block.global);
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
        if (f.kind == Kind::replicated)
          replicated_at.push_back(mine.size());
        mine.push_back(f.kind == Kind::replicated ? formats::checksum(data, static_cast<std::size_t>(bytes)) : 0);
        w.data = data;
        w.memory = f.kind == Kind::per_rank ? Shape{volume(shape)} : shape;
        w.memory_offset.assign(w.memory.size(), 0);
        if (f.kind == Kind::replicated) {
          sign(shape);
          w.shape = shape;
          w.write = rank() == 0;
          w.offset.assign(shape.size(), 0);
          w.count = shape;
        } else {
          sign(shape.size());
          mine.push_back(shape.size());
          mine.insert(mine.end(), shape.begin(), shape.end());
          w.write = volume(shape) > 0;
          w.count = Shape{volume(shape)};
        }
      }
    }
    check_image_view(writes, step);
  });

  // 2. Every rank's signature, step, blocks and checksums, gathered to all ranks (the same
  //    tables everywhere), with every rank's outcome of step 1 in the same message. When
  //    every rank has the signature and blocks of the last save, one all-reduce of a few
  //    words agrees so instead, and the last save's tables are used again.
  mine.insert(mine.begin(), {formats::checksum(signature.data(), signature.size()), static_cast<std::uint64_t>(step)});
  std::vector<std::uint64_t> key = mine; // what must not change for the tables to be reused
  key[1] = 0;
  for (const auto at : replicated_at)
    key[2 + at] = 0;
  const bool had_tables = tables.valid; // the same on every rank
  const bool reuse = had_tables && built.ok() && key == tables.key;
  tables.valid = false; // until this save's tables are agreed
  // With `previous`: its outcome rides on the all-reduce (commit_small otherwise), which
  // therefore runs whenever there is one; only then may the gather below follow.
  if (agree_same_tables(writes, mine, replicated_at, had_tables, reuse, built, previous)) {
    tables.key = std::move(key);
    tables.valid = true;
    return writes;
  }
  std::vector<std::uint64_t> starts;
  const auto all = mpi::allgatherv_agreed(comm, built, mine, &starts, "gathering block tables");

  // 3. All ranks must have registered the same fields (names, kinds, dtypes, shapes).
  for (int r = 0; r < n; ++r)
    if (all[starts[static_cast<std::size_t>(r)]] != all[starts[0]] ||
        all[starts[static_cast<std::size_t>(r)] + 1] != all[starts[0] + 1])
      throw Error(Errc::invalid_argument, r,
                  fmt::format("save at step {}: rank {} registered different fields (or a different "
                              "step) than rank 0; all ranks must register the same fields in the same order",
                              step, r));
  std::vector<std::size_t> pos;
  for (const auto st : starts)
    pos.push_back(static_cast<std::size_t>(st) + 2); // past the signature and the step
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
  tables.key = std::move(key);
  tables.writes.clear();
  for (const auto &w : writes) { // the agreed part of each table: blocks, shape, this rank's offset
    formats::FieldWrite t;
    t.shape = w.shape;
    t.blocks = w.blocks;
    t.offset = w.offset;
    tables.writes.push_back(std::move(t));
  }
  tables.valid = true;
  return writes;
}

// The block tables of a save whose every rank has the signature and blocks of the last save
// (`reuse` on this rank; `had_tables`: there was a last save, alike on every rank): one
// all-reduce (MIN) of this rank's outcomes and the words that must be equal everywhere (the
// step, the replicated values' checksums). True: agreed, `writes` has the last save's tables
// with this save's replicated checksums. False: some rank changed something (or there are
// no tables yet); the caller gathers the tables. The earlier save's outcome (`previous`) is
// agreed here whenever there is one: its error, or else this save's own error of step 1
// (`built`), is thrown on every rank.
bool Checkpointer::Impl::agree_same_tables(std::vector<formats::FieldWrite> &writes,
                                           const std::vector<std::uint64_t> &mine,
                                           const std::vector<std::size_t> &replicated_at, bool had_tables,
                                           bool reuse, const mpi::Status &built, Pending *previous) {
  if (!previous && !had_tables)
    return false; // nothing to agree that the gather would not: no extra collective
  const mpi::Status earlier = previous ? small_outcome(*previous) : mpi::Status{};
  std::uint64_t replicated = 0;
  {
    std::vector<std::uint64_t> sums;
    for (const auto at : replicated_at)
      sums.push_back(mine[2 + at]);
    replicated = formats::checksum(sums.data(), 8 * sums.size());
  }
  const std::uint64_t step = mine[1];
  // Each word's minimum; a maximum as the minimum of its complement.
  std::uint64_t w[7] = {earlier.ok() ? 1u : 0u, built.ok() ? 1u : 0u, reuse ? 1u : 0u, step, ~step, replicated,
                        ~replicated};
  mpi::check(MPI_Allreduce(MPI_IN_PLACE, w, 7, MPI_UINT64_T, MPI_MIN, comm.get()),
             "agreeing that the block tables are the last save's", rank());
  if (w[0] == 0)
    mpi::agree(comm, earlier); // throws the earlier save's error of the lowest rank where it failed
  if (previous)
    small_committed(*previous);
  if (w[1] == 0)
    mpi::agree(comm, built); // throws this save's error of step 1 on every rank
  if (w[2] == 0 || w[3] != ~w[4] || w[5] != ~w[6])
    return false;
  for (std::size_t i = 0; i < writes.size(); ++i) {
    auto &t = tables.writes[i];
    writes[i].shape = t.shape;
    writes[i].blocks = t.blocks;
    if (writes[i].kind == Kind::per_rank)
      writes[i].offset = t.offset;
  }
  std::size_t r = 0;
  for (auto &w : writes)
    if (w.kind == Kind::replicated) {
      const std::uint64_t sum = mine[2 + replicated_at[r++]];
      if (!w.blocks.empty())
        w.blocks[0].checksum = sum;
    }
  return true;
}

} // namespace ckpt
