// Storage levels, the session's side (levels.hpp): where the ranks run and who keeps whose
// copy, the node-local commit of a save (seal the parts, copy each to its partner, agree,
// rename), the flush of a node-local checkpoint to CKPT_DIR (in the background every
// CKPT_FLUSH_EVERY-th save, synchronously at a stop and at the end) and the clean-up.
#include "levels.hpp"
#include "session.hpp"

#include <ckpt/catalog.hpp>
#include <ckpt/formats/checksum.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ckpt {

namespace detail {

Topology make_topology(const mpi::Comm &comm) {
  Topology t;
  std::vector<std::uint64_t> starts;
  std::vector<std::uint64_t> mine;
  append_string(mine, node_name());
  const auto all = comm.allgatherv(mine, &starts, "gathering the node of every rank");
  const int n = comm.size();
  for (int r = 0; r < n; ++r) {
    std::size_t at = static_cast<std::size_t>(starts[static_cast<std::size_t>(r)]);
    t.nodes.push_back(read_string(all, at));
  }
  // Ranks dealt round-robin over the nodes (local index, then node), so that neighbours in
  // this order run on different nodes; each rank's copy goes `shift` places further. The
  // shift with the fewest same-node pairs wins; a pair on one node gets no copy.
  std::vector<std::string> order_nodes;
  std::vector<int> node_of(static_cast<std::size_t>(n)), local_of(static_cast<std::size_t>(n));
  std::vector<int> per_node;
  for (int r = 0; r < n; ++r) {
    auto it = std::find(order_nodes.begin(), order_nodes.end(), t.nodes[static_cast<std::size_t>(r)]);
    if (it == order_nodes.end()) {
      order_nodes.push_back(t.nodes[static_cast<std::size_t>(r)]);
      per_node.push_back(0);
      it = order_nodes.end() - 1;
    }
    const int k = static_cast<int>(it - order_nodes.begin());
    node_of[static_cast<std::size_t>(r)] = k;
    local_of[static_cast<std::size_t>(r)] = per_node[static_cast<std::size_t>(k)]++;
  }
  if (order_nodes.size() < 2)
    return t;
  std::vector<int> order(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r)
    order[static_cast<std::size_t>(r)] = r;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    const auto ia = static_cast<std::size_t>(a), ib = static_cast<std::size_t>(b);
    return std::pair(local_of[ia], node_of[ia]) < std::pair(local_of[ib], node_of[ib]);
  });
  int best = 1, best_bad = n + 1;
  for (int s = 1; s < n; ++s) {
    int bad = 0;
    for (int i = 0; i < n; ++i)
      bad += node_of[static_cast<std::size_t>(order[static_cast<std::size_t>(i)])] ==
             node_of[static_cast<std::size_t>(order[static_cast<std::size_t>((i + s) % n)])];
    if (bad < best_bad) {
      best = s;
      best_bad = bad;
    }
  }
  for (int i = 0; i < n; ++i) {
    const int from = order[static_cast<std::size_t>(i)], to = order[static_cast<std::size_t>((i + best) % n)];
    if (node_of[static_cast<std::size_t>(from)] == node_of[static_cast<std::size_t>(to)])
      continue;
    if (from == comm.rank())
      t.partner = to;
    if (to == comm.rank())
      t.partner_of = from;
  }
  return t;
}

} // namespace detail

namespace {

// `ckpt-<step>-r...` → step, or -1.
std::int64_t part_step(const std::string &name) {
  const std::size_t at = name.rfind("ckpt-", 0) == 0 ? 5 : name.rfind(".ckpt-", 0) == 0 ? 6 : std::string::npos;
  if (at == std::string::npos || name.size() < at + 12)
    return -1;
  std::int64_t s = 0;
  for (std::size_t i = at; i < at + 12; ++i) {
    if (name[i] < '0' || name[i] > '9')
      return -1;
    s = s * 10 + (name[i] - '0');
  }
  return s;
}

void make_private_dir(const fs::path &d) {
  if (::mkdir(d.c_str(), 0700) != 0 && errno != EEXIST)
    throw Error(Errc::io, -1, fmt::format("cannot create node-local directory {}: {}", d.string(), std::strerror(errno)));
  struct stat st {};
  if (::lstat(d.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid())
    throw Error(Errc::io, -1, fmt::format("node-local directory {} is not a directory owned by this user", d.string()));
}

} // namespace

// At open: the run id (recorded in CKPT_DIR), every rank's node and its partner, this node's
// run directory (created 0700), and the run directories of earlier runs of CKPT_DIR removed.
void Checkpointer::Impl::open_levels() {
  if (opts.local_dir.empty())
    return;
  levels = std::make_unique<Levels>();
  auto &L = *levels;
  L.flusher.any_cpu(opts.writer_any_cpu);
  std::string id;
  on_root([&] { id = detail::run_id(dir, true); });
  L.id = comm.bcast(id, 0, "broadcasting the run id");
  L.topo = detail::make_topology(comm);
  L.local = opts.local_dir;
  L.run_dir = detail::local_run_dir(L.local, L.id);
  std::error_code ec;
  const std::string shared = fs::absolute(dir, ec).lexically_normal().string();
  collective([&] {
    fs::create_directories(L.local, ec);
    if (ec)
      throw Error(Errc::io, rank(), fmt::format("cannot create CKPT_LOCAL_DIR {}: {}", L.local.string(), ec.message()));
    make_private_dir(L.run_dir);
    // Which shared directory this run directory belongs to, so that a later run of the same
    // CKPT_DIR (another run id) recognises it as superseded and removes it.
    const fs::path mark = L.run_dir / "shared-dir";
    if (!fs::exists(mark, ec)) {
      const fs::path tmp = L.run_dir / fmt::format(".shared-dir.{}.tmp", rank());
      if (FILE *f = std::fopen(tmp.c_str(), "w")) {
        std::fprintf(f, "%s\n", shared.c_str());
        std::fclose(f);
        fs::rename(tmp, mark, ec);
      }
    }
    for (const auto &e : fs::directory_iterator(L.local, ec)) {
      const std::string n = e.path().filename().string();
      if (n.rfind("ckpt-run-", 0) != 0 || e.path() == L.run_dir)
        continue;
      std::string other;
      if (FILE *f = std::fopen((e.path() / "shared-dir").c_str(), "r")) {
        char buf[4096] = {};
        if (std::fgets(buf, sizeof buf, f))
          other = buf;
        std::fclose(f);
      }
      if (!other.empty() && other.back() == '\n')
        other.pop_back();
      if (other == shared)
        fs::remove_all(e.path(), ec); // another rank of this node may be removing it too
    }
  });
  history.flushes = true;
  if (L.topo.node_count() < 2)
    warn(fmt::format("all {} ranks run on one node ({}): node-local checkpoints in {} get no partner copy, so "
                     "losing this node loses them; only the flushes to {} survive that",
                     comm.size(), L.topo.nodes.at(0), L.local.string(), dir.string()));
  else {
    const std::int64_t lonely = comm.allreduce_sum(L.topo.partner < 0 ? 1 : 0, "counting ranks without a partner");
    if (lonely > 0)
      warn(fmt::format("{} of {} ranks have no partner on another node (uneven ranks per node): their node-local "
                       "parts have no copy",
                       lonely, comm.size()));
  }
  log(fmt::format("node-local checkpoints in {} on {} nodes, partner copies on other nodes, flush to {} {}",
                  L.run_dir.string(), L.topo.node_count(), dir.string(),
                  opts.flush_every > 0 ? fmt::format("every {} checkpoints and at a stop or the end", opts.flush_every)
                                       : std::string("at a stop or the end")));
}

// The node-local commit of a save every rank has written: rank 0 writes the checksums into
// its part (the metadata), each rank seals its part (ranges, checksums, trailer) and fsyncs
// it, sends it to its partner and writes and fsyncs the part it receives, renames both into
// place; then one agreement. Then the older node-local checkpoints are
// removed (the newest two are kept) and every CKPT_FLUSH_EVERY-th one is flushed.
void Checkpointer::Impl::commit_local(Pending &p) {
  auto &L = *levels;
  const int n = comm.size();
  flush_finish(false); // the previous background flush, before its part may be pruned
  const std::uint64_t id = formats::checksum(p.layout.created.data(), p.layout.created.size()) ^
                           static_cast<std::uint64_t>(p.step) * 0x9E3779B97F4A7C15ull;
  detail::PartInfo part;
  part.step = p.step;
  part.id = id;
  part.nranks = n;
  part.rank = rank();
  part.nodes = L.topo.nodes;
  part.path = p.tmp_path.string();
  const fs::path own = L.run_dir / detail::part_name(p.step, rank(), id);
  std::optional<std::vector<std::byte>> out; // the part as it goes to the partner
  mpi::Status st = mpi::capture(rank(), [&] {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
    for (const auto &e : p.plan.extents)
      ranges.emplace_back(e.file_offset, e.bytes);
    if (rank() == 0) {
      formats::finish_file(p.tmp_path.string(), p.header, p.writes, p.layout);
      struct stat sb {};
      if (::stat(p.tmp_path.c_str(), &sb) != 0)
        throw Error(Errc::io, 0, fmt::format("cannot stat {}: {}", p.tmp_path.string(), std::strerror(errno)));
      part.image_size = static_cast<std::uint64_t>(sb.st_size);
      // Every byte outside the datasets' data: the HDF5 metadata.
      std::vector<std::pair<std::uint64_t, std::uint64_t>> data;
      for (std::size_t i = 0; i < p.writes.size(); ++i)
        if (p.layout.data_offset[i] != formats::Layout::no_offset)
          data.emplace_back(p.layout.data_offset[i], volume(p.writes[i].shape) * dtype_size(p.writes[i].dtype));
      std::sort(data.begin(), data.end());
      std::uint64_t at = 0;
      for (const auto &[off, len] : data) {
        if (off > at)
          ranges.emplace_back(at, off - at);
        at = std::max(at, off + len);
      }
      if (part.image_size > at)
        ranges.emplace_back(at, part.image_size - at);
    }
    std::sort(ranges.begin(), ranges.end());
    for (const auto &[off, len] : ranges)
      detail::add_ranges(part.ranges, off, len);
    const int fd = ::open(p.tmp_path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
      throw Error(Errc::io, rank(), fmt::format("cannot open {}: {}", p.tmp_path.string(), std::strerror(errno)));
    try {
      if (L.topo.partner >= 0)
        out.emplace();
      detail::seal_part(fd, p.tmp_path.string(), part, out ? &*out : nullptr);
      if (::fsync(fd) != 0)
        throw Error(errno == ENOSPC ? Errc::no_space : Errc::io, rank(),
                    fmt::format("fsync of {} failed: {}", p.tmp_path.string(), std::strerror(errno)));
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);
  });
  // The partner copies. Every rank takes part, also after a failure (it sends nothing).
  if (!st.ok())
    out.reset();
  const auto in = comm.exchange(out, L.topo.partner, L.topo.partner_of, "sending node-local parts to their partners");
  out.reset();
  fs::path copy_tmp, copy;
  if (st.ok() && in) // no bytes: the sender failed, and says so in the agreement
    st = mpi::capture(rank(), [&] {
      copy_tmp = L.run_dir / fmt::format(".ckpt-{:012d}-copy-of-r{:06d}.tmp", p.step, L.topo.partner_of);
      const detail::PartInfo q = detail::unpack_part(*in, copy_tmp.string());
      if (q.step != p.step || q.id != id)
        throw Error(Errc::internal, rank(), fmt::format("rank {} sent the part of step {}, not {}", L.topo.partner_of, q.step, p.step));
      copy = L.run_dir / detail::part_name(q.step, q.rank, q.id);
    });
  // Each rank puts its part and the copy it keeps under their final names before the
  // agreement, so that when rank 0 reports the checkpoint saved, every part and copy of it
  // is in place on its node. A set is used by a restore only when all its parts are found.
  if (st.ok())
    st = mpi::capture(rank(), [&] {
      detail::fault_point("rename", rank());
      if (::rename(p.tmp_path.c_str(), own.c_str()) != 0)
        throw Error(Errc::io, rank(), fmt::format("cannot rename {}: {}", p.tmp_path.string(), std::strerror(errno)));
      if (!copy.empty() && ::rename(copy_tmp.c_str(), copy.c_str()) != 0)
        throw Error(Errc::io, rank(), fmt::format("cannot rename {}: {}", copy_tmp.string(), std::strerror(errno)));
      detail::fsync_path(L.run_dir.string(), true);
    });
  try {
    mpi::agree(comm, st);
  } catch (...) {
    // Failed somewhere: this save's parts here are of no use (an incomplete set).
    for (const fs::path *f : std::array<const fs::path *, 4>{&p.tmp_path, &copy_tmp, &own, &copy})
      if (!f->empty())
        ::unlink(f->c_str());
    throw;
  }
  // Keep this checkpoint and the one before; everything else in the run directory (older
  // saves, saves of an abandoned timeline, temp files of killed saves) goes.
  const std::int64_t prev = L.last_step;
  std::error_code ec;
  for (const auto &e : fs::directory_iterator(L.run_dir, ec)) {
    const std::string name = e.path().filename().string();
    const std::int64_t s = part_step(name);
    if (s >= 0 && s != p.step && s != prev && (s < p.step || name[0] == 'c'))
      fs::remove(e.path(), ec); // another rank of this node may have removed it already
  }
  L.last_step = p.step;
  L.last_part = part;
  L.last_part.path = own.string();
  ++L.saves;
  if (opts.flush_every > 0 && L.saves % opts.flush_every == 0)
    flush_start();
}

// ---- flush: a node-local checkpoint written into CKPT_DIR as the v1 file ----

namespace {

// Copies this rank's part into the shared temp file (rank 0 sizes it first), fsyncs, and
// reads the bytes back to check them. No MPI: runs on the flush thread.
void write_flush(const detail::PartInfo &part, const fs::path &tmp) {
  const int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
  if (fd < 0)
    throw Error(Errc::io, part.rank, fmt::format("cannot open {}: {}", tmp.string(), std::strerror(errno)));
  try {
    if (part.rank == 0 && ::ftruncate(fd, static_cast<off_t>(part.image_size)) != 0)
      throw Error(Errc::io, 0, fmt::format("cannot size {}: {}", tmp.string(), std::strerror(errno)));
    detail::copy_part(part, fd, tmp.string(), true);
  } catch (const Error &e) {
    ::close(fd);
    throw Error(e.code(), part.rank, e.detail());
  }
  ::close(fd);
}

} // namespace

void Checkpointer::Impl::flush_start() {
  auto &L = *levels;
  L.flushing = L.last_step;
  L.flush_start = mono();
  L.flush_part = L.last_part;
  L.flush_status = {};
  const fs::path tmp = dir / ("." + checkpoint_file_name(L.flushing) + ".tmp");
  const int me = rank();
  L.flusher.submit([&L, tmp, me] { L.flush_status = mpi::capture(me, [&] { write_flush(L.flush_part, tmp); }); });
}

// Collective (when a flush is in flight, which every rank knows alike): waits for this
// rank's share, agrees, and rank 0 checks the file's metadata and publishes it. A failure
// warns (the checkpoint stays node-local) unless `must` (a stop or the end), where it throws.
void Checkpointer::Impl::flush_finish(bool must) {
  auto &L = *levels;
  if (L.flushing < 0)
    return;
  L.flusher.wait();
  const std::int64_t step = L.flushing;
  L.flushing = -1;
  const std::string name = checkpoint_file_name(step);
  const fs::path tmp = dir / ("." + name + ".tmp");
  std::vector<std::string> prune_warnings;
  try {
    mpi::agree(comm, L.flush_status);
    on_root([&] {
      detail::fsync_path(tmp.string(), false);
      formats::Reader(tmp.string()).close(); // every table and the header checksum
      detail::publish(dir, tmp, name);
      prune_warnings = detail::prune(dir, opts.keep, step);
    });
  } catch (const Error &e) {
    if (rank() == 0)
      ::unlink(tmp.c_str());
    if (must)
      throw;
    warn(fmt::format("flushing step {} to {} failed, it stays node-local: {}", step, dir.string(), e.detail()));
    return;
  }
  for (const auto &w : prune_warnings)
    warn(w);
  L.flushed_step = std::max(L.flushed_step, step);
  history.max_flush = std::max(history.max_flush, mono() - L.flush_start); // the stop margin covers it
  log(fmt::format("flushed step {} to {}", step, (dir / name).string()));
  progress("flushed", step);
}

// At a stop and at the end: the newest node-local checkpoint goes to CKPT_DIR now, and is
// checked, before the program is told it may exit. Then the node-local files are no longer
// needed and are removed.
void Checkpointer::Impl::flush_final() {
  if (!levels || levels->last_step < 0)
    return; // nothing node-local since the last flush (the same on every rank: no collective)
  auto &L = *levels;
  if (L.flushing >= 0 && L.flushing != L.last_step)
    flush_finish(false);
  if (L.last_step >= 0 && L.flushed_step != L.last_step) {
    if (L.flushing < 0)
      flush_start();
    flush_finish(true);
  }
  // The shared copy holds the newest checkpoint: the node-local files are redundant.
  collective([&] {
    std::error_code ec;
    for (const auto &e : fs::directory_iterator(L.run_dir, ec))
      if (part_step(e.path().filename().string()) >= 0)
        fs::remove(e.path(), ec);
  });
  L.last_step = -1;
}

// When the session ends: a run directory that holds no part any more goes (local, no MPI;
// any rank of the node may be the one whose removal succeeds).
void Checkpointer::Impl::close_levels() noexcept {
  if (!levels)
    return;
  std::error_code ec;
  for (const auto &e : fs::directory_iterator(levels->run_dir, ec))
    if (part_step(e.path().filename().string()) >= 0)
      return;
  fs::remove(levels->run_dir / "shared-dir", ec);
  fs::remove(levels->run_dir, ec);
}

} // namespace ckpt
