// ckpt-save-cost: the fixed cost of one small save, and what it is made of. A 2-D grid
// (n x n doubles, rows split over the ranks, the heat solver's state) plus a replicated
// step counter is saved --saves times; each save is timed (the slowest rank) and, when
// libckpt_count_calls.so is preloaded (apps/bench/count_calls.c), its MPI collectives,
// fsyncs, renames and HDF5 file creates/opens are counted on every rank. Then --steps step
// boundaries that neither checkpoint nor stop are counted the same way.
//
//   mpiexec -n 4 -x LD_PRELOAD=build/lib/libckpt_count_calls.so build/bin/ckpt-save-cost
//   apps/bench/save_cost.py --ranks 1,2,4,8,16     # the scaling table, one launch per count
//
// Output: one JSON object on rank 0's stdout.
#include <ckpt/ckpt.hpp>

#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <filesystem>
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

} // namespace

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const auto n = static_cast<std::uint64_t>(arg(argc, argv, "--n", 100));
  const int saves = static_cast<int>(arg(argc, argv, "--saves", 20));
  const int steps = static_cast<int>(arg(argc, argv, "--steps", 200));
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
    // Step boundaries that neither checkpoint nor stop (no every/seconds policy is set).
    MPI_Barrier(MPI_COMM_WORLD);
    const Counts sb = read_counts();
    bool saved = false;
    for (int i = 0; i < steps; ++i)
      saved |= cp.should_checkpoint(step + 1 + i);
    const Counts se = read_counts();
    const Counts per_steps = sb.empty() ? Counts{} : minus(se, sb);
    // Sum and max over ranks.
    const bool counted = !zero.empty();
    Counts sum(n_counters, 0), mx(n_counters, 0), steps_max(n_counters, 0);
    if (counted) {
      MPI_Reduce(per_save.data(), sum.data(), n_counters, MPI_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
      MPI_Reduce(per_save.data(), mx.data(), n_counters, MPI_LONG_LONG, MPI_MAX, 0, MPI_COMM_WORLD);
      MPI_Reduce(per_steps.data(), steps_max.data(), n_counters, MPI_LONG_LONG, MPI_MAX, 0, MPI_COMM_WORLD);
    }
    if (rank == 0) {
      const double s = double(saves);
      std::printf("{\"ranks\":%d,\"mode\":\"%s\",\"n\":%llu,\"bytes\":%llu,\"saves\":%d,\"save_seconds\":%.6g,"
                  "\"counted\":%s",
                  size, mode.c_str(), static_cast<unsigned long long>(n),
                  static_cast<unsigned long long>(n * n * 8 + 8), saves, median(secs), counted ? "true" : "false");
      if (counted)
        std::printf(",\"per_save\":{\"collectives_max_rank\":%.3g,\"collectives_rank0\":%.3g,"
                    "\"icollectives_max_rank\":%.3g,\"fsyncs_all_ranks\":%.3g,\"fsyncs_rank0\":%.3g,"
                    "\"renames\":%.3g,\"h5_creates\":%.3g,\"h5_opens\":%.3g},"
                    "\"per_step\":{\"steps\":%d,\"saved\":%s,\"collectives\":%.3g,\"icollectives\":%.3g}",
                    mx[0] / s, per_save[0] / s, mx[1] / s, sum[2] / s, per_save[2] / s, sum[3] / s, sum[4] / s,
                    sum[5] / s, steps, saved ? "true" : "false", steps_max[0] / double(steps),
                    steps_max[1] / double(steps));
      std::printf("}\n");
      std::filesystem::remove_all(dir);
    }
  } catch (const std::exception &e) {
    std::fprintf(stderr, "ckpt-save-cost: %s\n", e.what());
    rc = 1;
  }
  MPI_Finalize();
  return rc;
}
