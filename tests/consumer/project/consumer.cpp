// Saves a distributed array and a replicated value with the installed ckpt, restores them
// into fresh buffers through a second Checkpointer, and checks every value. Also runs the
// local catalog calls. Exit 0 only when everything matches.

#include <ckpt/catalog.hpp>
#include <ckpt/checkpointer.hpp>

#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <vector>

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (argc != 2) {
    if (rank == 0) std::fprintf(stderr, "usage: consumer_cxx DIR\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const std::uint64_t n = 5;
  int bad = 0;
  try {
    {
      std::vector<double> u(n);
      for (std::uint64_t i = 0; i < n; ++i) u[i] = 1000.0 * rank + static_cast<double>(i) + 0.25;
      std::int64_t counter = 42;
      ckpt::Checkpointer cp(MPI_COMM_WORLD, {.dir = argv[1], .quiet = true});
      cp.distributed("u", u.data(), {.global = {n * size}, .offset = {n * rank}, .count = {n}});
      cp.replicated("counter", &counter);
      cp.save(7, 0.5);
    }
    std::vector<double> v(n, -1.0);
    std::int64_t counter = 0;
    ckpt::Checkpointer cp(MPI_COMM_WORLD, {.dir = argv[1], .quiet = true});
    cp.distributed("u", v.data(), {.global = {n * size}, .offset = {n * rank}, .count = {n}});
    cp.replicated("counter", &counter);
    auto step = cp.restore();
    if (!step || *step != 7) bad = 1;
    if (counter != 42) bad = 1;
    for (std::uint64_t i = 0; i < n; ++i)
      if (v[i] != 1000.0 * rank + static_cast<double>(i) + 0.25) bad = 1;
    if (rank == 0) {
      auto list = ckpt::list_checkpoints(argv[1]);
      if (list.empty() || list.front().step != 7) bad = 1;
      auto report = ckpt::verify(list.front().path);
      if (!report.ok) bad = 1;
      std::printf("C++ consumer: ckpt %s, restored step %lld, verify %s\n", ckpt::library_version(),
                  step ? static_cast<long long>(*step) : -1LL, report.ok ? "ok" : report.reason.c_str());
    }
  } catch (const ckpt::Error &e) {
    std::fprintf(stderr, "%s\n", e.what());
    bad = 1;
  }
  int any = 0;
  MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0) std::printf("C++ consumer: %s\n", any ? "FAILED" : "ok");
  MPI_Finalize();
  return any;
}
