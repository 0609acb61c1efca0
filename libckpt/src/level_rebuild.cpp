// Storage levels, restore's side (levels.hpp): every rank lists the parts its node holds
// (its own and partner copies), all ranks learn the whole list, and the newest node-local
// checkpoint whose every part is held by some rank, if newer than the newest one in
// CKPT_DIR, is written there by the holders (each copies its parts, checking every range)
// and published like a save. The new allocation may be on other nodes and have another
// rank count. A set that misses a part is skipped, never half loaded.
#include "levels.hpp"

#include "commit.hpp"

#include <ckpt/catalog.hpp>
#include <ckpt/formats/checkpoint_file.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <set>
#include <unistd.h>

namespace fs = std::filesystem;

namespace ckpt::detail {

namespace {

struct Held {
  std::int64_t step = 0;
  std::uint64_t id = 0;
  int nranks = 0, rank = 0;
  std::uint64_t image_size = 0;
  std::string node;   // where the part's rank ran at the save
  int holder = 0;     // the rank of this run that holds it
  std::size_t index;  // in the holder's own list
};

// The step of the last node-local save recorded in CKPT_DIR/ckpt-stats.jsonl (in its last
// 64 KiB), or -1: what a restore should find unless nodes were lost.
std::int64_t newest_recorded_local(const fs::path &shared) {
  FILE *f = std::fopen((shared / "ckpt-stats.jsonl").c_str(), "r");
  if (!f)
    return -1;
  std::string tail(64 << 10, '\0');
  std::fseek(f, 0, SEEK_END);
  const long size = std::ftell(f);
  std::fseek(f, std::max(0L, size - static_cast<long>(tail.size())), SEEK_SET);
  tail.resize(std::fread(tail.data(), 1, tail.size(), f));
  std::fclose(f);
  std::int64_t step = -1;
  for (std::size_t p = 0, q; (q = tail.find('\n', p)) != std::string::npos; p = q + 1) {
    const std::string line = tail.substr(p, q - p);
    const auto s = line.find("\"step\":");
    if (line.find("\"event\":\"save\"") == std::string::npos || line.find("\"level\":\"node-local\"") == std::string::npos ||
        s == std::string::npos)
      continue;
    step = std::strtoll(line.c_str() + s + 7, nullptr, 10); // the last one: this timeline's newest
  }
  return step;
}

} // namespace

RebuildResult rebuild_from_local(const mpi::Comm &comm, const fs::path &shared, const fs::path &local,
                                 const std::function<void(const std::string &)> &warn,
                                 const std::function<void(const std::string &)> &log) {
  RebuildResult result{std::nullopt, "the shared copy"};
  // The run (rank 0 reads its id in CKPT_DIR) and the newest checkpoint there.
  std::string id;
  std::int64_t newest_shared = -1, recorded = -1;
  mpi::agree(comm, mpi::capture(comm.rank(), [&] {
    if (comm.rank() != 0)
      return;
    id = run_id(shared, false);
    const auto list = list_checkpoints(shared);
    if (!list.empty())
      newest_shared = list.front().step;
    recorded = newest_recorded_local(shared);
  }));
  id = comm.bcast(id, 0, "broadcasting the run id");
  newest_shared = comm.bcast(newest_shared, 0, "broadcasting the newest shared checkpoint");
  recorded = comm.bcast(recorded, 0, "broadcasting the newest node-local checkpoint recorded");
  if (id.empty())
    return result;
  // Says so when a newer node-local checkpoint was committed than anything found.
  auto report_lost = [&](std::int64_t seen) {
    if (recorded <= newest_shared || recorded <= seen)
      return;
    result.lost = recorded;
    warn(fmt::format("the newest node-local checkpoint, step {} (recorded in {}), cannot be rebuilt: no node of "
                     "this allocation holds its parts or their partner copies (the nodes that held them are lost); "
                     "{}",
                     recorded, (shared / "ckpt-stats.jsonl").string(),
                     newest_shared >= 0 ? fmt::format("restoring step {} from {}", newest_shared, shared.string())
                                        : std::string("no older checkpoint is in ") + shared.string()));
  };

  // What every rank's node holds, and where every rank of this run is.
  const fs::path run_dir = local_run_dir(local, id);
  std::vector<PartInfo> mine;
  std::error_code ec;
  if (fs::is_directory(run_dir, ec))
    mine = list_parts(run_dir, [&](const std::string &m) {
      std::fprintf(stderr, "ckpt: warning: rank %d: %s\n", comm.rank(), m.c_str());
    });
  std::vector<std::uint64_t> words{mine.size()};
  append_string(words, node_name());
  for (const auto &p : mine) {
    words.insert(words.end(), {static_cast<std::uint64_t>(p.step), p.id, static_cast<std::uint64_t>(p.nranks),
                               static_cast<std::uint64_t>(p.rank), p.image_size});
    append_string(words, p.nodes.at(static_cast<std::size_t>(p.rank)));
  }
  std::vector<std::uint64_t> starts;
  const auto all = comm.allgatherv(words, &starts, "gathering the node-local parts");
  std::vector<Held> held;
  std::vector<std::string> node_of(static_cast<std::size_t>(comm.size())); // where each rank runs now
  for (int r = 0; r < comm.size(); ++r) {
    std::size_t at = static_cast<std::size_t>(starts[static_cast<std::size_t>(r)]);
    const std::uint64_t count = all[at++];
    node_of[static_cast<std::size_t>(r)] = read_string(all, at);
    for (std::uint64_t i = 0; i < count; ++i) {
      Held h;
      h.step = static_cast<std::int64_t>(all[at]);
      h.id = all[at + 1];
      h.nranks = static_cast<int>(all[at + 2]);
      h.rank = static_cast<int>(all[at + 3]);
      h.image_size = all[at + 4];
      at += 5;
      h.node = read_string(all, at);
      h.holder = r;
      h.index = static_cast<std::size_t>(i);
      held.push_back(h);
    }
  }
  if (held.empty()) {
    report_lost(-1);
    return result;
  }

  // The node-local checkpoints, newest first; for each part, one holder: the rank on the
  // part's own node if there is one (no copy was needed), else the lowest holding rank.
  std::map<std::pair<std::int64_t, std::uint64_t>, std::vector<const Held *>, std::greater<>> sets;
  for (const auto &h : held)
    sets[{h.step, h.id}].push_back(&h);
  for (const auto &[key, parts] : sets) {
    const std::int64_t step = key.first;
    if (step <= newest_shared)
      break; // CKPT_DIR has this one or a newer one
    if (key == sets.begin()->first)
      report_lost(step);
    const int nranks = parts.front()->nranks;
    std::vector<const Held *> chosen(static_cast<std::size_t>(nranks), nullptr);
    auto at_home = [&](const Held *h) { return node_of[static_cast<std::size_t>(h->holder)] == h->node; };
    for (const Held *h : parts) { // held in holder-rank order: the lowest holder comes first
      if (h->nranks != nranks || h->rank >= nranks)
        continue;
      const Held *&c = chosen[static_cast<std::size_t>(h->rank)];
      if (!c || (!at_home(c) && at_home(h)))
        c = h;
    }
    std::vector<int> missing;
    for (int r = 0; r < nranks; ++r)
      if (!chosen[static_cast<std::size_t>(r)])
        missing.push_back(r);
    if (!missing.empty()) {
      warn(fmt::format("the node-local checkpoint of step {} cannot be rebuilt: no node of this allocation holds "
                       "the parts of rank{} {} (nor their partner copies){}",
                       step, missing.size() > 1 ? "s" : "", fmt::join(missing, ", "),
                       newest_shared >= 0 ? fmt::format("; trying older ones, then step {} in {}", newest_shared, shared.string())
                                          : std::string()));
      continue;
    }
    // Partner copies used: a part whose holder does not run on the part's own node.
    const std::set<std::string> now(node_of.begin(), node_of.end());
    bool copies = false;
    std::set<std::string> gone;
    for (const Held *h : chosen) {
      copies |= !at_home(h);
      if (!now.count(h->node))
        gone.insert(h->node);
    }
    const std::string level =
        copies ? fmt::format("node-local + partner copies{}", gone.empty() ? std::string(" (new nodes)")
                                                                          : fmt::format(" ({} lost)", fmt::join(gone, ", ")))
               : std::string("node-local copies");
    // Write it into CKPT_DIR: rank 0 creates the temp file at the full size, every holder
    // copies its parts, checking each range, and fsyncs; then rank 0 checks the metadata
    // and publishes it.
    const std::string name = checkpoint_file_name(step);
    const fs::path tmp = shared / ("." + name + ".tmp");
    try {
      mpi::agree(comm, mpi::capture(comm.rank(), [&] {
        if (comm.rank() != 0)
          return;
        ::unlink(tmp.c_str());
        const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
        if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(chosen[0]->image_size)) != 0) {
          const int err = errno;
          if (fd >= 0)
            ::close(fd);
          throw Error(Errc::io, 0, fmt::format("cannot create {}: {}", tmp.string(), std::strerror(err)));
        }
        ::close(fd);
      }));
      mpi::agree(comm, mpi::capture(comm.rank(), [&] {
        const int fd = ::open(tmp.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
          throw Error(Errc::io, comm.rank(), fmt::format("cannot open {}: {}", tmp.string(), std::strerror(errno)));
        try {
          bool any = false;
          for (const Held *h : chosen)
            if (h->holder == comm.rank()) {
              copy_part(mine.at(h->index), fd, tmp.string(), false);
              any = true;
            }
          if (any && ::fsync(fd) != 0)
            throw Error(Errc::io, comm.rank(), fmt::format("fsync of {} failed: {}", tmp.string(), std::strerror(errno)));
        } catch (const Error &e) {
          ::close(fd);
          throw Error(e.code(), comm.rank(), e.detail());
        }
        ::close(fd);
      }));
      mpi::agree(comm, mpi::capture(comm.rank(), [&] {
        if (comm.rank() != 0)
          return;
        formats::Reader(tmp.string()).close(); // every table and the header checksum
        publish(shared, tmp, name);
      }));
    } catch (const Error &e) {
      if (comm.rank() == 0)
        ::unlink(tmp.c_str());
      if (e.code() == Errc::io || e.code() == Errc::no_space)
        throw; // the storage, not the parts: nothing is skipped
      warn(fmt::format("the node-local checkpoint of step {} could not be rebuilt: {}", step, e.detail()));
      continue;
    }
    const std::string file = (shared / name).string();
    log(fmt::format("rebuilt step {} from {} into {}", step, level, file));
    note_origin(file, level);
    result.file = file;
    result.origin = level;
    return result;
  }
  if (recorded > newest_shared)
    result.lost = recorded; // sets were found, none could be rebuilt
  return result;
}

} // namespace ckpt::detail
