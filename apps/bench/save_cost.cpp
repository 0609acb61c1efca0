// ckpt-save-cost: the fixed cost of one small save, and what it is made of. A 2-D grid
// (n x n doubles, rows split over the ranks, the heat solver's state) plus a replicated
// step counter is saved --saves times; each save is timed (the slowest rank) and, when
// libckpt_count_calls.so is preloaded (apps/bench/count_calls.c), its MPI collectives,
// fsyncs, renames and HDF5 file creates/opens are counted on every rank. Then a loop of
// --steps cheap steps (the C++ loop helper, a checkpoint every --every steps) counts the
// collectives of every step boundary: those that checkpoint, those where the ranks agree
// on stop and clock flags, and the plain ones (neither), which make none. --stop-at K asks
// for a stop after step K on the last rank (--stop-by request: request_stop(); signal:
// SIGUSR1 to itself), and the loop reports where all ranks stopped.
//
//   mpiexec -n 4 -x LD_PRELOAD=build/lib/libckpt_count_calls.so build/bin/ckpt-save-cost
//   apps/bench/save_cost.py --ranks 1,2,4,8,16     # the scaling table, one launch per count
//   tests/bench/agreements.py                      # the test of the loop's counts
//
// Output: one JSON object on rank 0's stdout.
#include <ckpt/ckpt.hpp>

#include <mpi.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr int n_counters = 6; // collective, icollective, fsync, rename, h5create, h5open
using Counts = std::vector<long long>;

// The preloaded counters, or an empty vector when the library is not preloaded.
Counts read_counts() {
  using Reader = int (*)(long long *, int);
  static Reader reader = reinterpret_cast<Reader>(dlsym(RTLD_DEFAULT, "ckpt_count_read"));
  if (!reader)
    return {};
  Counts c(n_counters);
  reader(c.data(), n_counters);
  return c;
}

Counts minus(const Counts &a, const Counts &b) {
  Counts d(a.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    d[i] = a[i] - b[i];
  return d;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

long long arg(int argc, char **argv, const char *name, long long fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0)
      return std::atoll(argv[i + 1]);
  return fallback;
}

std::string sarg(int argc, char **argv, const char *name, const char *fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0)
      return argv[i + 1];
  return fallback;
}

// Appends `v` to a comma-separated list.
void append(std::string &list, long long v) {
  if (!list.empty())
    list += ',';
  list += std::to_string(v);
}

// The loop of --steps cheap steps through cp.steps(), in its own directory: the collectives
// of every step boundary (counted as each next step begins), classified on rank 0.
struct LoopArgs {
  std::string dir, stop_by;
  std::int64_t steps = 0, every = 0, stop_at = -1;
  ckpt::Mode mode = ckpt::Mode::sync;
};

std::string run_loop(const LoopArgs &a, int rank, int size) {
  if (rank == 0)
    std::filesystem::remove_all(a.dir);
  ckpt::Options o;
  o.dir = a.dir;
  o.keep = 0;
  o.quiet = true;
  o.final = true;
  o.every = a.every;
  o.mode = a.mode;
  o.signals = {SIGUSR1};
  std::vector<double> u(64, double(rank));
  std::int64_t step = 0;
  // trace[k]: the blocking and nonblocking collectives of the boundary after step k, and
  // whether it saved (k = 0 is the loop's start, which restores).
  std::vector<long long> coll, icoll, saved;
  std::int64_t done = 0;
  ckpt::StopReason stopped = ckpt::StopReason::none;
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
    cp.distributed("u", u.data(), {.global = {64 * std::uint64_t(size)}, .offset = {64 * std::uint64_t(rank)}, .count = {64}});
    cp.replicated("step", &step);
    Counts prev = read_counts();
    auto record = [&] {
      const Counts now = read_counts();
      const Counts d = minus(now, prev);
      prev = now;
      coll.push_back(d[0]);
      icoll.push_back(d[1]);
      saved.push_back(cp.saved_step() == std::optional<std::int64_t>(done) && done > 0 ? 1 : 0);
    };
    for (auto s : cp.steps(a.steps)) {
      record();
      for (auto &x : u) // a cheap step
        x = 0.5 * x + 1.0;
      step = s + 1;
      done = s + 1;
      if (done == a.stop_at && rank == size - 1) {
        if (a.stop_by == "signal")
          std::raise(SIGUSR1);
        else
          cp.request_stop();
      }
    }
    record();
    cp.wait();
    stopped = cp.stopped();
  }
  // Every rank must have seen the same boundaries: the same kind of each, the same stop.
  const int n = static_cast<int>(coll.size());
  std::vector<int> kind(static_cast<std::size_t>(n)); // 2 saved, 1 nonblocking collective only, 0 none
  for (int k = 0; k < n; ++k) {
    const auto i = static_cast<std::size_t>(k);
    kind[i] = saved[i] ? 2 : icoll[i] > 0 ? 1 : 0;
  }
  std::vector<int> kmin(kind.size()), kmax(kind.size());
  long long ends[2] = {n, -n}, endsr[2];
  MPI_Allreduce(ends, endsr, 2, MPI_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
  const bool same_length = endsr[0] == -endsr[1];
  bool same_kinds = false;
  if (same_length) {
    MPI_Allreduce(kind.data(), kmin.data(), n, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(kind.data(), kmax.data(), n, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    same_kinds = kmin == kmax;
  }
  // The busiest rank's collectives on plain and on agreement boundaries.
  long long plain = 0, plain_coll = 0, agreements = 0, agree_coll = 0, agree_icoll_max = 0, saves = 0;
  std::string agreed_at, saved_at;
  for (int k = 1; k < n; ++k) { // k = 0 is the start (a restore), not a boundary
    const auto i = static_cast<std::size_t>(k);
    if (kind[i] == 2) {
      ++saves;
      append(saved_at, k);
    } else if (kind[i] == 1) {
      ++agreements;
      agree_coll += coll[i];
      agree_icoll_max = std::max(agree_icoll_max, icoll[i]);
      append(agreed_at, k);
    } else {
      ++plain;
      plain_coll += coll[i] + icoll[i];
    }
  }
  long long mine[3] = {plain_coll, agree_coll, agree_icoll_max}, most[3];
  MPI_Reduce(mine, most, 3, MPI_LONG_LONG, MPI_MAX, 0, MPI_COMM_WORLD);
  long long last[2] = {done, -done}, lastr[2];
  MPI_Allreduce(last, lastr, 2, MPI_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
  std::vector<std::int64_t> steps_on_disk;
  if (rank == 0)
    for (const auto &c : ckpt::list_checkpoints(a.dir))
      steps_on_disk.insert(steps_on_disk.begin(), c.step); // oldest first
  std::string files;
  for (const auto st : steps_on_disk)
    append(files, st);
  std::ostringstream j;
  j << "{\"steps\":" << a.steps << ",\"every\":" << a.every << ",\"boundaries\":" << n - 1
    << ",\"plain\":" << plain << ",\"plain_collectives\":" << most[0] << ",\"agreements\":" << agreements
    << ",\"agreement_collectives\":" << most[1] << ",\"agreement_icollectives_max\":" << most[2]
    << ",\"agreed_at\":[" << agreed_at << "],\"saved_at\":[" << saved_at << "],\"files\":[" << files
    << "],\"same_on_all_ranks\":" << (same_kinds ? "true" : "false") << ",\"stopped\":\""
    << ckpt::stop_reason_name(stopped) << "\",\"stop_step\":" << done
    << ",\"stop_step_same\":" << (lastr[0] == -lastr[1] ? "true" : "false") << "}";
  return j.str();
}

} // namespace

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const auto n = static_cast<std::uint64_t>(arg(argc, argv, "--n", 100));
  const int saves = static_cast<int>(arg(argc, argv, "--saves", 20));
  LoopArgs loop;
  loop.steps = arg(argc, argv, "--steps", 2000);
  loop.every = arg(argc, argv, "--every", 500);
  loop.stop_at = arg(argc, argv, "--stop-at", -1);
  loop.stop_by = sarg(argc, argv, "--stop-by", "request");
  const std::string mode = sarg(argc, argv, "--mode", "sync");
  const std::string dir = sarg(argc, argv, "--dir", "/tmp/ckpt-save-cost") + "/" + mode + "-" + std::to_string(size);
  int rc = 0;
  try {
    if (rank == 0)
      std::filesystem::remove_all(dir);
    const std::uint64_t rows = n / size + (std::uint64_t(rank) < n % size ? 1 : 0);
    const std::uint64_t y0 = rank * (n / size) + std::min<std::uint64_t>(rank, n % size);
    std::vector<double> u(rows * n);
    for (std::size_t i = 0; i < u.size(); ++i)
      u[i] = double(y0 * n + i);
    std::int64_t step = 0;

    ckpt::Options o;
    o.dir = dir;
    o.keep = 2;
    o.quiet = true;
    o.mode = mode == "async" ? ckpt::Mode::async : ckpt::Mode::sync;
    ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
    cp.distributed("u", u.data(), {.global = {n, n}, .offset = {y0, 0}, .count = {rows, n}});
    cp.replicated("step", &step);

    // Warm-up: the first saves allocate the staging memory and create the directory.
    for (int i = 0; i < 2; ++i) {
      ++step;
      cp.save(step);
      cp.wait();
    }
    std::vector<double> secs;
    Counts per_save(n_counters, 0);
    const Counts zero = read_counts();
    for (int i = 0; i < saves; ++i) {
      ++step;
      MPI_Barrier(MPI_COMM_WORLD);
      const Counts before = read_counts();
      const double t0 = MPI_Wtime();
      cp.save(step);
      double dt = MPI_Wtime() - t0; // async: the time save() blocked
      cp.wait();                     // async: the commit, counted with its save
      const Counts after = read_counts();
      MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      secs.push_back(dt);
      if (!before.empty())
        for (int k = 0; k < n_counters; ++k)
          per_save[k] += after[k] - before[k];
    }
    // Sum and max over ranks.
    const bool counted = !zero.empty();
    Counts sum(n_counters, 0), mx(n_counters, 0);
    if (counted) {
      MPI_Reduce(per_save.data(), sum.data(), n_counters, MPI_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
      MPI_Reduce(per_save.data(), mx.data(), n_counters, MPI_LONG_LONG, MPI_MAX, 0, MPI_COMM_WORLD);
    }
    // The step boundaries of a loop, counted one by one.
    loop.dir = dir + "-loop";
    loop.mode = o.mode;
    const std::string loop_json = counted && loop.steps > 0 ? run_loop(loop, rank, size) : std::string();
    if (rank == 0) {
      const double s = double(saves);
      std::printf("{\"ranks\":%d,\"mode\":\"%s\",\"n\":%llu,\"bytes\":%llu,\"saves\":%d,\"save_seconds\":%.6g,"
                  "\"counted\":%s",
                  size, mode.c_str(), static_cast<unsigned long long>(n),
                  static_cast<unsigned long long>(n * n * 8 + 8), saves, median(secs), counted ? "true" : "false");
      if (counted)
        std::printf(",\"per_save\":{\"collectives_max_rank\":%.3g,\"collectives_rank0\":%.3g,"
                    "\"icollectives_max_rank\":%.3g,\"fsyncs_all_ranks\":%.3g,\"fsyncs_rank0\":%.3g,"
                    "\"renames\":%.3g,\"h5_creates\":%.3g,\"h5_opens\":%.3g}",
                    mx[0] / s, per_save[0] / s, mx[1] / s, sum[2] / s, per_save[2] / s, sum[3] / s, sum[4] / s,
                    sum[5] / s);
      if (!loop_json.empty())
        std::printf(",\"loop\":%s", loop_json.c_str());
      std::printf("}\n");
      std::filesystem::remove_all(dir);
      std::filesystem::remove_all(loop.dir);
    }
  } catch (const std::exception &e) {
    std::fprintf(stderr, "ckpt-save-cost: %s\n", e.what());
    rc = 1;
  }
  MPI_Finalize();
  return rc;
}
