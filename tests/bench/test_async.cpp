// Behaviour of async saves and of the fast write path (never timings).
#include "test_helpers.hpp"

#include <ckpt/ckpt.hpp>

#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;
using namespace ckpt_test;

namespace {

ckpt::Options async_options(const std::string &dir) {
  auto o = test_options(dir);
  o.mode = ckpt::Mode::async;
  return o;
}

bool has_tmp(const std::string &dir) {
  for (const auto &e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp") != std::string::npos)
      return true;
  return false;
}

std::string latest(const std::string &dir) {
  std::ifstream f(dir + "/LATEST");
  std::string s;
  std::getline(f, s);
  return s;
}

// A state with every kind of field: a distributed 2-D array with ghost cells (many small
// runs), a large distributed 1-D array (O_DIRECT path, block edges not page-aligned), a
// per-rank vector and a replicated scalar. `seed` makes the values of one step.
struct State {
  int rank = world_rank(), size = world_size();
  std::uint64_t ny = 5, nx = 7;          // this rank's block of the 2-D array
  std::vector<double> grid;              // (ny+2) x (nx+2) with ghosts
  std::uint64_t big_count = 300001 + 17 * static_cast<std::uint64_t>(world_rank()); // > 1 MiB of doubles, odd
  std::vector<double> big;
  std::vector<std::int32_t> mine;
  std::int64_t counter = 0;

  State() : grid((ny + 2) * (nx + 2)), big(big_count), mine(3 + world_rank()) {}

  void fill(int seed) {
    for (std::size_t i = 0; i < grid.size(); ++i)
      grid[i] = seed * 1000.0 + rank * 100.0 + static_cast<double>(i) * 0.5;
    for (std::size_t i = 0; i < big.size(); ++i)
      big[i] = seed + std::sin(static_cast<double>(i + 7 * rank));
    for (std::size_t i = 0; i < mine.size(); ++i)
      mine[i] = seed * 10 + rank + static_cast<int>(i);
    counter = seed;
  }
  void clear() {
    std::fill(grid.begin(), grid.end(), -1.0);
    std::fill(big.begin(), big.end(), -1.0);
    std::fill(mine.begin(), mine.end(), -1);
    counter = -1;
  }
  void enroll(ckpt::Checkpointer &cp) {
    std::uint64_t big_off = 0, c = big_count, big_total = 0;
    MPI_Exscan(&c, &big_off, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
      big_off = 0;
    MPI_Allreduce(&c, &big_total, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    const std::uint64_t r = static_cast<std::uint64_t>(rank), n = static_cast<std::uint64_t>(size);
    cp.distributed("grid", grid.data(),
                   {.global = {ny * n, nx}, .offset = {ny * r, 0}, .count = {ny, nx}, .memory = {ny + 2, nx + 2},
                    .memory_offset = {1, 1}});
    cp.distributed("big", big.data(), {.global = {big_total}, .offset = {big_off}, .count = {big_count}});
    cp.per_rank("mine", mine);
    cp.replicated("counter", &counter);
  }
  // Compares only what is saved (the ghost cells are not state).
  bool equals(const State &o) const {
    for (std::uint64_t y = 1; y <= ny; ++y)
      if (std::memcmp(&grid[y * (nx + 2) + 1], &o.grid[y * (nx + 2) + 1], nx * sizeof(double)) != 0)
        return false;
    return big == o.big && mine == o.mine && counter == o.counter;
  }
};

bool all_ranks(bool ok) {
  int mine = ok ? 1 : 0, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return all == 1;
}

} // namespace

// The checkpoint holds the state as it was when save() returned, even though the
// application changed its memory while the background write ran.
TEST(Async, RoundTripIsBitwiseTheSnapshot) {
  ScratchDir dir;
  State s, expect;
  s.fill(3);
  expect.fill(3);
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, async_options(dir.path()));
    s.enroll(cp);
    cp.save(30, 1.5);
    s.fill(4); // overwrite at once: the snapshot was taken
    cp.wait();
  }
  State back;
  back.clear();
  ckpt::Checkpointer cp(MPI_COMM_WORLD, async_options(dir.path()));
  back.enroll(cp);
  auto step = cp.restore();
  ASSERT_TRUE(step.has_value());
  EXPECT_EQ(*step, 30);
  EXPECT_TRUE(all_ranks(back.equals(expect)));
}

// The sync fast path writes the same bits (large O_DIRECT runs, small buffered runs).
TEST(Sync, RoundTripThroughTheFastPathIsBitwise) {
  ScratchDir dir;
  State s, expect;
  s.fill(7);
  expect.fill(7);
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
    s.enroll(cp);
    cp.save(70);
  }
  State back;
  back.clear();
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
  back.enroll(cp);
  EXPECT_EQ(cp.restore().value_or(-1), 70);
  EXPECT_TRUE(all_ranks(back.equals(expect)));
}

// Buffered writes only (CKPT_DIRECT=0) give the same file contents.
TEST(Sync, BufferedOnlyRoundTrip) {
  ScratchDir dir;
  setenv("CKPT_DIRECT", "0", 1);
  State s, expect;
  s.fill(9);
  expect.fill(9);
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, async_options(dir.path()));
    s.enroll(cp);
    cp.save(90);
  }
  unsetenv("CKPT_DIRECT");
  State back;
  back.clear();
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
  back.enroll(cp);
  EXPECT_EQ(cp.restore().value_or(-1), 90);
  EXPECT_TRUE(all_ranks(back.equals(expect)));
}

// A failed background write is reported at the next collective call, with the same error
// on every rank; the previous committed checkpoint stays and no temp file is left.
TEST(Async, ErrorSurfacesOnAllRanksAtTheNextCall) {
  ScratchDir dir;
  const int size = world_size();
  State s;
  s.fill(1);
  ckpt::Checkpointer cp(MPI_COMM_WORLD, async_options(dir.path()));
  s.enroll(cp);
  cp.save(10);
  cp.wait();
  const std::string fault = "write@" + std::to_string(size - 1);
  setenv("CKPT_TEST_FAULT", fault.c_str(), 1);
  cp.save(20); // returns: the failure happens in the background
  unsetenv("CKPT_TEST_FAULT");
  std::string msg;
  // The loop's step boundaries: the error surfaces at one of them, the same on all ranks.
  int thrown_at = -1;
  for (int i = 0; i < 60000 && thrown_at < 0; ++i) { // up to a minute of 1 ms steps
    usleep(1000);
    auto code = error_code_of([&] { (void)cp.should_checkpoint(21 + i); }, &msg);
    if (code != ckpt::Errc::ok) {
      EXPECT_EQ(code, ckpt::Errc::io);
      thrown_at = i;
    }
  }
  ASSERT_GE(thrown_at, 0);
  int lo = 0, hi = 0;
  MPI_Allreduce(&thrown_at, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&thrown_at, &hi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  EXPECT_EQ(lo, hi);
  EXPECT_NE(msg.find("injected"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rank " + std::to_string(size - 1)), std::string::npos) << msg;
  MPI_Barrier(MPI_COMM_WORLD);
  auto list = ckpt::list_checkpoints(dir.path());
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].step, 10);
  EXPECT_EQ(latest(dir.path()), ckpt::checkpoint_file_name(10));
  EXPECT_FALSE(has_tmp(dir.path()));
  // The Checkpointer is usable again afterwards.
  cp.save(30);
  cp.wait();
  EXPECT_EQ(ckpt::list_checkpoints(dir.path())[0].step, 30);
}

// wait() throws the background error on every rank too.
TEST(Async, WaitThrowsTheBackgroundError) {
  ScratchDir dir;
  State s;
  s.fill(1);
  ckpt::Checkpointer cp(MPI_COMM_WORLD, async_options(dir.path()));
  s.enroll(cp);
  setenv("CKPT_TEST_FAULT", "fsync@0", 1);
  cp.save(5);
  unsetenv("CKPT_TEST_FAULT");
  std::string msg;
  EXPECT_EQ(error_code_of([&] { cp.wait(); }, &msg), ckpt::Errc::io) << msg;
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_TRUE(ckpt::list_checkpoints(dir.path()).empty());
  EXPECT_FALSE(has_tmp(dir.path()));
}

// A new save first waits for the previous one and commits it.
TEST(Async, NewSaveWaitsForThePrevious) {
  ScratchDir dir;
  State s;
  s.fill(1);
  ckpt::Checkpointer cp(MPI_COMM_WORLD, async_options(dir.path()));
  s.enroll(cp);
  cp.save(1);
  s.fill(2);
  cp.save(2);
  MPI_Barrier(MPI_COMM_WORLD);
  // Step 1 is committed (and complete) now; step 2 may still be in flight.
  auto list = ckpt::list_checkpoints(dir.path());
  ASSERT_GE(list.size(), 1u);
  EXPECT_EQ(list.back().step, 1);
  cp.wait();
  list = ckpt::list_checkpoints(dir.path());
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].step, 2);
}

// wait() makes the checkpoint committed and durable: LATEST names it, no temp file.
TEST(Async, WaitCommits) {
  ScratchDir dir;
  State s;
  s.fill(1);
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, async_options(dir.path()));
    s.enroll(cp);
    cp.save(42);
    cp.wait();
    MPI_Barrier(MPI_COMM_WORLD);
    EXPECT_EQ(latest(dir.path()), ckpt::checkpoint_file_name(42));
    EXPECT_FALSE(has_tmp(dir.path()));
    EXPECT_EQ(cp.stats().last_step, 42);
    cp.wait(); // nothing pending: a no-op
  }
  // The destructor commits too.
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, async_options(dir.path()));
    s.enroll(cp);
    cp.save(43);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_EQ(latest(dir.path()), ckpt::checkpoint_file_name(43));
}

// The loop helper leaves its loop with the last checkpoint durable.
TEST(Async, LoopHelperEndsDurable) {
  ScratchDir dir;
  State s;
  s.fill(1);
  auto o = async_options(dir.path());
  o.every = 3;
  o.final = true;
  ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
  s.enroll(cp);
  for (auto step : cp.steps(10))
    s.counter = step;
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_EQ(latest(dir.path()), ckpt::checkpoint_file_name(10));
  EXPECT_FALSE(has_tmp(dir.path()));
}

// Restoring older async checkpoints gives their own snapshots.
TEST(Async, EachCheckpointHoldsItsOwnSnapshot) {
  ScratchDir dir;
  State s;
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, async_options(dir.path()));
    s.enroll(cp);
    for (int k = 1; k <= 3; ++k) {
      s.fill(k);
      cp.save(k);
      s.fill(100 + k); // scribble while it is written
    }
    cp.wait();
  }
  for (int k = 1; k <= 3; ++k) {
    State back, expect;
    expect.fill(k);
    back.clear();
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
    back.enroll(cp);
    EXPECT_EQ(cp.restore_from(dir / ckpt::checkpoint_file_name(k)), k);
    EXPECT_TRUE(all_ranks(back.equals(expect))) << "step " << k;
  }
}

// A checkpoint cut short is skipped on every rank, without a hang, and the older one is
// restored (HDF5 notices the short file when it opens it; a read error of the raw data path
// is collected like a checksum mismatch, after every rank took part in every collective read).
TEST(Restore, TruncatedCheckpointFallsBackOnEveryRank) {
  ScratchDir dir;
  State s;
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
    s.enroll(cp);
    s.fill(1);
    cp.save(1);
    s.fill(2);
    cp.save(2);
  }
  if (world_rank() == 0) {
    const auto f = dir / ckpt::checkpoint_file_name(2);
    fs::resize_file(f, fs::file_size(f) - (1u << 20)); // cuts into the last rank's block of big (2.4 MB)
  }
  MPI_Barrier(MPI_COMM_WORLD);
  State back, expect;
  expect.fill(1);
  back.clear();
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
  back.enroll(cp);
  EXPECT_EQ(cp.restore().value_or(-1), 1);
  EXPECT_TRUE(all_ranks(back.equals(expect)));
}

// A restore that streams many ring windows (52 MiB over the ranks, two fields whose
// blocks start and end off the page size) through the reader threads is bitwise; a page
// of garbage in a later window fails its field's checksum, and every rank falls back to
// the older checkpoint.
TEST(Restore, ManyWindowsRoundTripAndDamageInALaterWindowFallsBack) {
  ScratchDir dir;
  const std::uint64_t rank = static_cast<std::uint64_t>(world_rank()), n = static_cast<std::uint64_t>(world_size());
  const std::uint64_t a_count = (5u << 20) / n + 3 * rank + 1, b_count = (3u << 19) / n + 5 * rank + 7; // doubles
  std::vector<double> a(a_count), b(b_count);
  auto fill = [&](int seed) {
    for (std::uint64_t i = 0; i < a_count; ++i)
      a[i] = seed + std::sin(double(i + 11 * rank));
    for (std::uint64_t i = 0; i < b_count; ++i)
      b[i] = -seed * std::cos(double(i + 13 * rank));
  };
  auto enroll = [&](ckpt::Checkpointer &cp) {
    for (auto [name, v] : {std::pair{"a", &a}, std::pair{"b", &b}}) {
      std::uint64_t c = v->size(), off = 0, total = 0;
      MPI_Exscan(&c, &off, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
      if (rank == 0)
        off = 0;
      MPI_Allreduce(&c, &total, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
      cp.distributed(name, v->data(), {.global = {total}, .offset = {off}, .count = {c}});
    }
  };
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
    enroll(cp);
    fill(1);
    cp.save(1);
    fill(2);
    cp.save(2);
  }
  // A new session restores `step` and holds the values fill(step) made.
  auto restores = [&](std::int64_t step) {
    fill(int(step));
    const auto want_a = a, want_b = b;
    std::fill(a.begin(), a.end(), 0.0);
    std::fill(b.begin(), b.end(), 0.0);
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
    enroll(cp);
    EXPECT_EQ(cp.restore().value_or(-1), step);
    EXPECT_TRUE(all_ranks(a == want_a && b == want_b));
  };
  restores(2);
  bool damaged = true;
  if (world_rank() == 0) {
    const auto f = dir / ckpt::checkpoint_file_name(2);
    const auto size = fs::file_size(f);
    EXPECT_GT(size, std::uint64_t(52) << 20);
    std::fstream out(f, std::ios::in | std::ios::out | std::ios::binary);
    out.seekp(static_cast<std::streamoff>(size - (10u << 20))); // in b, in the last 16 MiB window
    const std::vector<char> garbage(4096, '\x5a');
    out.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
    damaged = out.good();
  }
  ASSERT_TRUE(all_ranks(damaged));
  restores(1);
}

// every=auto: with a tiny MTBF the interval (Daly: M when C >= 2M) is due at once; with a
// huge one it is not due within a few steps. Same answer on every rank.
TEST(EveryAuto, IntervalFollowsTheMtbf) {
  ScratchDir dir;
  State s;
  s.fill(1);
  for (const double mtbf : {1e-6, 1e9}) {
    auto o = async_options(dir.path());
    o.every_auto = true;
    o.mtbf_seconds = mtbf;
    ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
    s.enroll(cp);
    int due = 0;
    for (int step = 1; step <= 5; ++step) {
      usleep(2000);
      if (cp.should_checkpoint(step)) {
        ++due;
        cp.save(step);
      }
    }
    cp.wait();
    int lo = 0, hi = 0;
    MPI_Allreduce(&due, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&due, &hi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    EXPECT_EQ(lo, hi);
    if (mtbf < 1)
      EXPECT_GE(due, 1);
    else
      EXPECT_EQ(due, 0);
  }
}
