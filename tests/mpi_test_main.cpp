// Shared GoogleTest main for MPI tests: initialises MPI, prints on rank 0 only, and gives
// every rank the same exit code (a failure on any rank fails the test everywhere).
#include <gtest/gtest.h>
#include <mpi.h>

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    auto &listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int local = RUN_ALL_TESTS();
  int global = 0;
  MPI_Allreduce(&local, &global, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (local != 0)
    std::fprintf(stderr, "rank %d had failures\n", rank);
  MPI_Finalize();
  return global;
}
