// nested_app: a C++ program with phases and nested loops for the kill/resume test
// (tests/faults/nested_kill.py), the C++ twin of tests/python/nested_sweep.py:
//
//   setup phase -> for sweep in cp.loop("sweep", S):
//                      init phase; for t in cp.loop("t", T): step; analysis phase
//               -> final phase, then "result: <digest>" of the whole state
//
// State: a distributed float64 array `x` (particle coordinates, rows split over the
// ranks), a per-rank RNG state, replicated per-sweep results and the temperature.
//
// Rank 0 prints "nested: restored <step|none> <top done> <index>:<done>,..." after the
// restore, and "nested: at <label>" at each step. With NESTED_PAUSE=<label> ("setup",
// "init:<s>", "t:<s>:<t>", "analysis:<s>", "final") rank 0 stops in the middle of that
// step (after changing the state, before the step's collective) and prints "nested: paused
// at <label>"; it goes on when the file NESTED_GO exists (never, when unset: the test
// kills it there). Exits 75 after a stop (ckpt::Stopped).
#include <ckpt/ckpt.hpp>

#include <mpi.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

int g_rank = 0, g_size = 1;

void pause_here(const std::string &label) {
  const char *want = std::getenv("NESTED_PAUSE");
  if (g_rank != 0 || !want || label != want)
    return;
  std::fprintf(stderr, "nested: paused at %s\n", label.c_str());
  std::fflush(stderr);
  const char *go = std::getenv("NESTED_GO");
  while (!(go && access(go, F_OK) == 0))
    std::this_thread::sleep_for(std::chrono::milliseconds(2)); // waits for the test
}

// xorshift64*: the per-rank RNG whose state is checkpointed.
double next_uniform(std::uint64_t &s) {
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  return static_cast<double>((s * 2685821657736338717ULL) >> 11) * 0x1.0p-53;
}

} // namespace

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  std::int64_t sweeps = 3, steps = 12, every = 4;
  std::string dir = "nested-checkpoints";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--sweeps")
      sweeps = std::atoll(argv[i + 1]);
    else if (a == "--steps")
      steps = std::atoll(argv[i + 1]);
    else if (a == "--every")
      every = std::atoll(argv[i + 1]);
    else if (a == "--dir")
      dir = argv[i + 1];
  }
  int rc = 0;
  try {
    const std::uint64_t rows = 64, cols = 3; // 64 particles, 3 coordinates
    const std::uint64_t r0 = rows * g_rank / g_size, r1 = rows * (g_rank + 1) / g_size;
    std::vector<double> x((r1 - r0) * cols, 0.0);
    std::uint64_t rng = 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(g_rank);
    std::vector<double> results(static_cast<std::size_t>(sweeps), 0.0);
    double temperature = 0;

    ckpt::Checkpointer cp(MPI_COMM_WORLD, {.dir = dir, .every = every, .keep = 0});
    cp.distributed("x", x.data(), {.global = {rows, cols}, .offset = {r0, 0}, .count = {r1 - r0, cols}});
    cp.per_rank("rng", &rng);
    cp.replicated("results", results.data(), {results.size()});
    cp.replicated("temperature", &temperature);

    auto at = [](const std::string &label) {
      if (g_rank == 0)
        std::fprintf(stderr, "nested: at %s\n", label.c_str());
      pause_here(label);
    };
    try {
      auto setup = cp.phase("setup"); // the first top-level phase restores
      if (g_rank == 0) {
        std::string pos = "none";
        if (const auto p = cp.restored_position()) {
          pos = std::to_string(p->done) + " ";
          for (const auto &l : p->stack)
            pos += std::to_string(l.index) + ":" + std::to_string(l.done) + ",";
        }
        const auto r = cp.restored_step();
        std::fprintf(stderr, "nested: restored %s %s\n", r ? std::to_string(*r).c_str() : "none", pos.c_str());
      }
      for ([[maybe_unused]] auto _ : setup) {
        for (auto &v : x)
          v = next_uniform(rng);
        at("setup");
        MPI_Barrier(MPI_COMM_WORLD);
      }
      for (auto sweep : cp.loop("sweep", sweeps)) {
        for ([[maybe_unused]] auto _ : cp.phase("init")) {
          temperature = 0.5 + 0.25 * static_cast<double>(sweep);
          for (auto &v : x)
            v += temperature * (next_uniform(rng) - 0.5) * 0.01;
          at("init:" + std::to_string(sweep));
          MPI_Barrier(MPI_COMM_WORLD);
        }
        for (auto t : cp.loop("t", steps)) {
          for (auto &v : x) {
            v += 0.01 * (next_uniform(rng) - 0.5);
            if (v < 0 || v > 1)
              v = v < 0 ? -v : 2 - v;
          }
          at("t:" + std::to_string(sweep) + ":" + std::to_string(t));
          double local = 0, total = 0;
          for (double v : x)
            local += v * v;
          MPI_Allreduce(&local, &total, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD); // a collective each step
        }
        for ([[maybe_unused]] auto _ : cp.phase("analysis")) {
          double local = 0;
          for (double v : x)
            local += v;
          MPI_Allreduce(&local, &results[static_cast<std::size_t>(sweep)], 1, MPI_DOUBLE, MPI_SUM,
                        MPI_COMM_WORLD);
          at("analysis:" + std::to_string(sweep));
          MPI_Barrier(MPI_COMM_WORLD);
        }
      }
      for ([[maybe_unused]] auto _ : cp.phase("final")) {
        temperature = -1;
        at("final");
        MPI_Barrier(MPI_COMM_WORLD);
      }
    } catch (const ckpt::Stopped &) {
      rc = cp.exit_code();
    }
    if (rc == 0) {
      // The digest of the whole state, gathered on rank 0 in rank order.
      std::vector<unsigned char> mine(x.size() * sizeof(double) + sizeof rng);
      std::memcpy(mine.data(), x.data(), x.size() * sizeof(double));
      std::memcpy(mine.data() + x.size() * sizeof(double), &rng, sizeof rng);
      const int len = static_cast<int>(mine.size());
      std::vector<int> lens(static_cast<std::size_t>(g_size)), offs(static_cast<std::size_t>(g_size));
      MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
      int sum = 0;
      for (int i = 0; i < g_size; ++i) {
        offs[static_cast<std::size_t>(i)] = sum;
        sum += lens[static_cast<std::size_t>(i)];
      }
      std::vector<unsigned char> all(static_cast<std::size_t>(sum));
      MPI_Gatherv(mine.data(), len, MPI_BYTE, all.data(), lens.data(), offs.data(), MPI_BYTE, 0, MPI_COMM_WORLD);
      if (g_rank == 0) {
        all.insert(all.end(), reinterpret_cast<unsigned char *>(results.data()),
                   reinterpret_cast<unsigned char *>(results.data() + results.size()));
        all.insert(all.end(), reinterpret_cast<unsigned char *>(&temperature),
                   reinterpret_cast<unsigned char *>(&temperature + 1));
        const XXH128_hash_t h = XXH3_128bits(all.data(), all.size());
        std::printf("nested: steps=%" PRId64 "\n", cp.loop_step());
        std::printf("result: %016" PRIx64 "%016" PRIx64 "\n", static_cast<std::uint64_t>(h.high64),
                    static_cast<std::uint64_t>(h.low64));
        std::fflush(stdout);
      }
    }
  } catch (const std::exception &e) {
    std::fprintf(stderr, "nested_app[rank %d]: %s\n", g_rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return rc;
}
