// A Checkpointer that outlives MPI_Finalize, as one declared in main() after MPI_Init is
// when main calls MPI_Finalize before `return`:
//   outlives_finalize DIR save sync|async   saves steps 1 and 2, calls MPI_Finalize, and
//                                           only then destroys the Checkpointer; the same
//                                           in DIR-moved through a Checkpointer that is
//                                           then assigned another one (which closes it);
//   outlives_finalize DIR check             restores (a new job) and checks step 2's values,
//                                           in DIR and DIR-moved.
// MPI_Finalize closes the session (its last async save committed, HDF5 objects closed)
// before MPI and HDF5 shut down: the save phase exits 0 with no MPI abort and no HDF5
// error, and the check phase finds step 2 (ctest: tests/unit/CMakeLists.txt).
#include <ckpt/ckpt.hpp>

#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

int main(int argc, char **argv) {
  if (argc < 3)
    return 2;
  const std::string dir = argv[1], phase = argv[2];
  const bool async = argc > 3 && std::strcmp(argv[3], "async") == 0;
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const std::uint64_t n = 1000;
  auto values = [&](int step) { // this rank's part of u at `step`
    std::vector<double> v(n);
    for (std::uint64_t i = 0; i < n; ++i)
      v[i] = step * 1000.0 + rank * 10.0 + double(i) * 0.5;
    return v;
  };
  std::vector<double> u(n); // registered: filled in place, never reallocated
  auto fill = [&](int step) { std::ranges::copy(values(step), u.begin()); };
  auto options = [&](const std::string &d) {
    ckpt::Options o;
    o.dir = d;
    o.signals = {};
    o.mode = async ? ckpt::Mode::async : ckpt::Mode::sync;
    return o;
  };
  auto enroll = [&](ckpt::Checkpointer &c) {
    c.distributed("u", u.data(), {.global = {n * std::uint64_t(size)}, .offset = {n * std::uint64_t(rank)}, .count = {n}});
  };
  if (phase == "check") {
    int all = 1;
    for (const std::string &d : {dir, dir + "-moved"}) {
      ckpt::Checkpointer cp(MPI_COMM_WORLD, options(d));
      enroll(cp);
      std::fill(u.begin(), u.end(), -1.0);
      const auto step = cp.restore();
      const int ok = step && *step == 2 && u == values(2) ? 1 : 0;
      int every_rank = 0;
      MPI_Allreduce(&ok, &every_rank, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
      all = all && every_rank;
      if (rank == 0)
        std::printf("%s: restored step %lld: %s\n", d.c_str(), step ? static_cast<long long>(*step) : -1LL,
                    every_rank ? "the values of step 2" : "WRONG");
    }
    MPI_Finalize();
    return all ? 0 : 1;
  }
  std::optional<ckpt::Checkpointer> cp, moved;
  cp.emplace(MPI_COMM_WORLD, options(dir));
  enroll(*cp);
  moved.emplace(MPI_COMM_WORLD, options(dir + "-moved"));
  enroll(*moved);
  fill(1);
  cp->save(1);
  moved->save(1);
  fill(2);
  cp->save(2); // async: still being written when MPI_Finalize comes
  moved->save(2);
  fill(3); // the snapshots of step 2 were taken
  *moved = ckpt::Checkpointer(MPI_COMM_WORLD, options(dir + "-other")); // closes DIR-moved's session
  MPI_Finalize();
  cp.reset(); // as at the end of main(): MPI is finalized
  moved.reset();
  if (rank == 0)
    std::printf("closed after MPI_Finalize\n");
  return 0;
}
