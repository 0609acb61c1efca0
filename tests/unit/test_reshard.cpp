// Restart on a different number of ranks: a distributed array saved by N ranks is read back
// by M ranks with another decomposition (hyperslab reads), bit for bit.
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <cmath>

using namespace ckpt_test;

namespace {

double cell(std::uint64_t i, std::uint64_t j) { return std::sin(double(i) * 1.3 + double(j) * 0.7) * 1e3 + double(i * 1000 + j); }

struct Decomp {
  std::uint64_t y0, ny, x0, nx;
};

// 2-D block decomposition of an n0 x n1 array over `size` ranks (MPI_Dims_create grid).
Decomp decompose(std::uint64_t n0, std::uint64_t n1, int rank, int size) {
  int dims[2] = {0, 0};
  MPI_Dims_create(size, 2, dims);
  const int r = rank / dims[1], c = rank % dims[1];
  auto split = [](std::uint64_t n, int p, int i, std::uint64_t &s, std::uint64_t &l) {
    std::uint64_t base = n / p, rem = n % p;
    s = i * base + std::min<std::uint64_t>(i, rem);
    l = base + (std::uint64_t(i) < rem ? 1 : 0);
  };
  Decomp d{};
  split(n0, dims[0], r, d.y0, d.ny);
  split(n1, dims[1], c, d.x0, d.nx);
  return d;
}

// Saves on the first `from` ranks, restores on the first `to` ranks (with ghost cells).
void reshard(int from, int to) {
  if (world_size() < std::max(from, to))
    GTEST_SKIP() << "needs " << std::max(from, to) << " ranks";
  const std::uint64_t n0 = 13, n1 = 11;
  ScratchDir dir;
  MPI_Comm a = first_ranks(from);
  if (a != MPI_COMM_NULL) {
    int rank, size;
    MPI_Comm_rank(a, &rank);
    MPI_Comm_size(a, &size);
    Decomp d = decompose(n0, n1, rank, size);
    std::vector<double> u(d.ny * d.nx);
    for (std::uint64_t i = 0; i < d.ny; ++i)
      for (std::uint64_t j = 0; j < d.nx; ++j)
        u[i * d.nx + j] = cell(d.y0 + i, d.x0 + j);
    std::int64_t it = 77;
    ckpt::Checkpointer cp(a, test_options(dir.path()));
    cp.distributed("u", u.data(), {.global = {n0, n1}, .offset = {d.y0, d.x0}, .count = {d.ny, d.nx}});
    cp.replicated("it", &it);
    cp.save(5);
  }
  free_sub(a);
  MPI_Barrier(MPI_COMM_WORLD);
  MPI_Comm b = first_ranks(to);
  if (b != MPI_COMM_NULL) {
    int rank, size;
    MPI_Comm_rank(b, &rank);
    MPI_Comm_size(b, &size);
    Decomp d = decompose(n0, n1, rank, size);
    const std::uint64_t W = d.nx + 2;
    std::vector<double> u((d.ny + 2) * W, -7.0);
    std::int64_t it = 0;
    ckpt::Checkpointer cp(b, test_options(dir.path()));
    cp.distributed("u", u.data(), {.global = {n0, n1}, .offset = {d.y0, d.x0}, .count = {d.ny, d.nx},
                                   .memory = {d.ny + 2, W}, .memory_offset = {1, 1}});
    cp.replicated("it", &it);
    EXPECT_EQ(cp.restore(), std::optional<std::int64_t>(5));
    EXPECT_EQ(it, 77);
    int bad = 0;
    for (std::uint64_t i = 0; i < d.ny + 2; ++i)
      for (std::uint64_t j = 0; j < W; ++j) {
        const bool ghost = i == 0 || j == 0 || i == d.ny + 1 || j == d.nx + 1;
        const double want = ghost ? -7.0 : cell(d.y0 + i - 1, d.x0 + j - 1);
        bad += u[i * W + j] != want;
      }
    EXPECT_EQ(bad, 0) << "rank " << rank << " of " << size;
  }
  free_sub(b);
}

} // namespace

TEST(Reshard, FourToTwo) { reshard(4, 2); }
TEST(Reshard, FourToThree) { reshard(4, 3); }
TEST(Reshard, TwoToFour) { reshard(2, 4); }
TEST(Reshard, ThreeToOne) { reshard(3, 1); }
TEST(Reshard, SameCount) { reshard(world_size(), world_size()); }

// A saved block that no rank holds exactly any more is still verified: damage in it is found.
TEST(Reshard, DamageInABlockNobodyHoldsIsDetected) {
  if (world_size() < 2)
    GTEST_SKIP() << "needs 2 ranks";
  ScratchDir dir;
  const std::uint64_t n = 8;
  {
    MPI_Comm a = first_ranks(2);
    if (a != MPI_COMM_NULL) {
      int rank;
      MPI_Comm_rank(a, &rank);
      std::vector<std::int32_t> v(4 * n, rank + 1);
      ckpt::Checkpointer cp(a, test_options(dir.path()));
      cp.distributed("v", v.data(), {.global = {n, n}, .offset = {std::uint64_t(rank) * 4, 0}, .count = {4, n}});
      cp.save(1);
      for (auto &x : v)
        x += 10;
      cp.save(2);
    }
    free_sub(a);
  }
  if (world_rank() == 0) // damage the second saved block of step 2 (rows 4..7)
    flip_byte(dir / ckpt::checkpoint_file_name(2),
              dataset_offset(dir / ckpt::checkpoint_file_name(2), "v") + 4 * n * 4 + 5);
  MPI_Barrier(MPI_COMM_WORLD);
  MPI_Comm b = first_ranks(1);
  if (b != MPI_COMM_NULL) {
    std::vector<std::int32_t> v(n * n, 0);
    ckpt::Checkpointer cp(b, test_options(dir.path()));
    cp.distributed("v", v.data(), {.global = {n, n}, .offset = {0, 0}, .count = {n, n}});
    EXPECT_EQ(cp.restore(), std::optional<std::int64_t>(1));
    EXPECT_EQ(v[0], 1);
    EXPECT_EQ(v[n * n - 1], 2);
  }
  free_sub(b);
}
