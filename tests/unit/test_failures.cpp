// Errors: bad names, mismatches, unknown versions, corrupt data, a rank failing mid-save.
#include "test_helpers.hpp"

#include <ckpt/mpi/comm.hpp>

#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <tuple>
#include <utility>

using namespace ckpt_test;
namespace fs = std::filesystem;
using ckpt::Errc;

TEST(Names, SlashDotDotAndControlCharactersAreRejected) {
  ScratchDir dir;
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
  double x = 0;
  std::string msg;
  EXPECT_EQ(error_code_of([&] { cp.replicated("a/b", &x); }, &msg), Errc::invalid_argument);
  EXPECT_NE(msg.find("'/'"), std::string::npos) << msg;
  EXPECT_EQ(error_code_of([&] { cp.replicated("..", &x); }), Errc::invalid_argument);
  EXPECT_EQ(error_code_of([&] { cp.replicated("a..b", &x); }), Errc::invalid_argument);
  EXPECT_EQ(error_code_of([&] { cp.replicated("bell\x07", &x); }), Errc::invalid_argument);
  EXPECT_EQ(error_code_of([&] { cp.replicated("", &x); }), Errc::invalid_argument);
  EXPECT_EQ(error_code_of([&] { cp.replicated("_ckpt", &x); }), Errc::invalid_argument);
  EXPECT_EQ(error_code_of([&] { cp.replicated("VTKHDF", &x); }), Errc::invalid_argument);
  EXPECT_EQ(error_code_of([&] { cp.metadata("k/../x", "v"); }), Errc::invalid_argument);
  EXPECT_EQ(error_code_of([&] { cp.replicated("ok_name-1.x", &x); }), Errc::ok);
  EXPECT_EQ(error_code_of([&] { cp.replicated("ok_name-1.x", &x); }), Errc::invalid_argument); // twice
}

TEST(Grid, BadTagsAreRefusedWithTheReason) {
  ckpt::FieldSet s;
  std::vector<double> u(24), q(16);
  double x = 0;
  s.distributed("u", u.data(), {.global = {2, 3, 4}, .offset = {0, 0, 0}, .count = {2, 3, 4}});
  s.distributed("q", q.data(), {.global = {2, 2, 2, 2}, .offset = {0, 0, 0, 0}, .count = {2, 2, 2, 2}});
  s.replicated("x", &x);
  std::string msg;
  EXPECT_EQ(error_code_of([&] { s.grid("nope", {}); }, &msg), Errc::invalid_argument);
  EXPECT_NE(msg.find("no such field"), std::string::npos) << msg;
  EXPECT_EQ(error_code_of([&] { s.grid("x", {}); }, &msg), Errc::invalid_argument);
  EXPECT_NE(msg.find("replicated"), std::string::npos) << msg;
  EXPECT_EQ(error_code_of([&] { s.grid("q", {}); }, &msg), Errc::invalid_argument);
  EXPECT_NE(msg.find("4 dimensions"), std::string::npos) << msg;
  EXPECT_EQ(error_code_of([&] { s.grid("u", {.origin = {0, 0}}); }, &msg), Errc::invalid_argument);
  EXPECT_NE(msg.find("origin has 2"), std::string::npos) << msg;
  EXPECT_EQ(error_code_of([&] { s.grid("u", {.spacing = {1, -1, 1}}); }), Errc::invalid_argument);
  EXPECT_EQ(error_code_of([&] { s.grid("u", {.origin = {0, std::nan(""), 0}}); }), Errc::invalid_argument);
  EXPECT_FALSE(s.fields()[0].grid.has_value()); // a refused tag leaves none
  EXPECT_EQ(error_code_of([&] { s.grid("u", {.spacing = {0.5, 0.5, 0.5}}); }), Errc::ok);
  ASSERT_TRUE(s.fields()[0].grid.has_value());
  EXPECT_EQ(s.fields()[0].grid->origin, (std::vector<double>{0, 0, 0})); // filled in
}

TEST(Directory, UnusablePathGivesAClearError) {
  std::string msg;
  EXPECT_EQ(error_code_of([&] { ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options("/proc/version/ckpt")); }, &msg),
            Errc::io);
  EXPECT_NE(msg.find("/proc/version/ckpt"), std::string::npos) << msg;
}

TEST(Mismatch, DtypeShapeMissingFieldAndKind) {
  ScratchDir dir;
  std::vector<double> v(4, 1.0);
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
    cp.replicated("v", v.data(), {4});
    cp.save(1);
  }
  std::vector<float> f(4);
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
    cp.replicated("v", f.data(), {4});
    std::string msg;
    EXPECT_EQ(error_code_of([&] { cp.restore(); }, &msg), Errc::mismatch);
    EXPECT_NE(msg.find("float64"), std::string::npos) << msg;
  }
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
    cp.replicated("v", v.data(), {2, 2});
    EXPECT_EQ(error_code_of([&] { cp.restore(); }), Errc::mismatch);
  }
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
    cp.replicated("w", v.data(), {4});
    EXPECT_EQ(error_code_of([&] { cp.restore(); }), Errc::missing_field);
  }
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
    cp.per_rank("v", v.data(), {4});
    EXPECT_EQ(error_code_of([&] { cp.restore(); }), Errc::mismatch);
  }
  // Nothing on disk was lost: the checkpoint is still there and valid.
  EXPECT_TRUE(ckpt::verify(dir / ckpt::checkpoint_file_name(1)).ok);
}

TEST(Mismatch, PerRankValuesNeedTheSameRankCount) {
  if (world_size() < 2)
    GTEST_SKIP() << "needs 2 ranks";
  ScratchDir dir;
  int seed = 100 + world_rank();
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
    cp.per_rank("seed", &seed);
    cp.save(3);
  }
  MPI_Comm one = first_ranks(1);
  if (one != MPI_COMM_NULL) {
    ckpt::Checkpointer cp(one, test_options(dir.path()));
    cp.per_rank("seed", &seed);
    std::string msg;
    EXPECT_EQ(error_code_of([&] { cp.restore(); }, &msg), Errc::rank_count);
    EXPECT_NE(msg.find("saved by"), std::string::npos) << msg;
  }
  free_sub(one);
}

TEST(Mismatch, ReplicatedValuesMustAgree) {
  if (world_size() < 2)
    GTEST_SKIP() << "needs 2 ranks";
  ScratchDir dir;
  double t = world_rank() == 1 ? 2.0 : 1.0;
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
  cp.replicated("t", &t);
  std::string msg;
  EXPECT_EQ(error_code_of([&] { cp.save(1); }, &msg), Errc::mismatch);
  EXPECT_NE(msg.find("rank 1"), std::string::npos) << msg;
  EXPECT_TRUE(ckpt::list_checkpoints(dir.path()).empty());
}

// A save whose every rank keeps the signature and blocks of the last save agrees so with one
// all-reduce and reuses the last tables (libckpt/src/save.cpp). What changes later must still
// be seen: a per-rank value that grows on one rank, a replicated value that comes to differ,
// a step that differs; and the files hold each save's own values.
class Tables : public ::testing::TestWithParam<ckpt::Mode> {};

TEST_P(Tables, WhatChangesAfterTheFirstSaveIsStillAgreed) {
  if (world_size() < 2)
    GTEST_SKIP() << "needs 2 ranks";
  ScratchDir dir;
  auto o = test_options(dir.path());
  o.mode = GetParam();
  const int me = world_rank();
  double t = 1.0;
  std::vector<std::int32_t> v(static_cast<std::size_t>(me + 1), me);
  // The scalar t and the vector x (a per-rank value that may change its size), as "t" and "v".
  auto add = [](ckpt::Checkpointer &cp, double &t, std::vector<std::int32_t> &x) {
    cp.replicated("t", &t);
    cp.per_rank_resizable(
        "v", ckpt::Dtype::i32, [&x] { return std::pair<void *, ckpt::Shape>{x.data(), {x.size()}}; },
        [&x](const ckpt::Shape &s) {
          x.resize(s[0]);
          return static_cast<void *>(x.data());
        });
  };
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
    add(cp, t, v);
    cp.save(1);
    t = 2.0;
    cp.save(2); // the same tables: reused
    if (me == 1)
      v.assign(7, 70); // rank 1's part grows: its blocks changed
    t = 3.0;
    cp.save(3);
    t = 4.0;
    cp.save(4); // reused again, with rank 1's new size
    t = me == 1 ? 5.5 : 5.0; // now differs on rank 1
    std::string msg;
    EXPECT_EQ(error_code_of([&] { cp.save(5); }, &msg), Errc::mismatch);
    EXPECT_NE(msg.find("rank 1"), std::string::npos) << msg;
    t = 6.0;
    EXPECT_EQ(error_code_of([&] { cp.save(me == 1 ? 7 : 6); }), Errc::invalid_argument) << "steps differ";
    cp.save(8);
    cp.wait();
  }
  const auto list = ckpt::list_checkpoints(dir.path());
  std::vector<std::int64_t> steps;
  for (const auto &e : list)
    steps.push_back(e.step);
  EXPECT_EQ(steps, (std::vector<std::int64_t>{8, 4, 3, 2, 1})) << "no file for the refused saves";
  const std::map<std::int64_t, double> ts = {{1, 1.0}, {2, 2.0}, {3, 3.0}, {4, 4.0}, {8, 6.0}};
  for (const auto &[step, want] : ts) {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
    double got = 0;
    std::vector<std::int32_t> w;
    add(cp, got, w);
    EXPECT_EQ(cp.restore_from(dir / ckpt::checkpoint_file_name(step)), step);
    EXPECT_EQ(got, want) << "step " << step;
    const std::size_t n = me == 1 && step >= 3 ? 7u : static_cast<std::size_t>(me + 1);
    const std::int32_t value = me == 1 && step >= 3 ? 70 : me;
    EXPECT_EQ(w, std::vector<std::int32_t>(n, value)) << "step " << step;
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, Tables, ::testing::Values(ckpt::Mode::sync, ckpt::Mode::async),
                         [](const auto &info) { return info.param == ckpt::Mode::sync ? "sync" : "async"; });

TEST(Mismatch, BlocksMustTileTheGlobalArray) {
  ScratchDir dir;
  std::vector<int> v(2, 0);
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
  // Every rank claims the same block [0, 2) of a global array of 2 * size + 1 elements.
  cp.distributed("v", v.data(), {.global = {2 * std::uint64_t(world_size()) + 1}, .offset = {0}, .count = {2}});
  EXPECT_EQ(error_code_of([&] { cp.save(1); }), Errc::invalid_argument);
}

TEST(Version, UnknownMajorVersionIsRefusedClearly) {
  ScratchDir dir;
  double x = 1;
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
    cp.replicated("x", &x);
    cp.save(1);
  }
  const std::string file = dir / ckpt::checkpoint_file_name(1);
  if (world_rank() == 0) {
    hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t a = H5Aopen(f, "ckpt_format_version", H5P_DEFAULT);
    const int v[2] = {2, 0};
    H5Awrite(a, H5T_NATIVE_INT, v);
    H5Aclose(a);
    H5Fclose(f);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
  cp.replicated("x", &x);
  std::string msg;
  EXPECT_EQ(error_code_of([&] { cp.restore(); }, &msg), Errc::unsupported_version);
  EXPECT_NE(msg.find("format version 2.0"), std::string::npos) << msg;
  EXPECT_EQ(error_code_of([&] { ckpt::inspect(file); }), Errc::unsupported_version);
  EXPECT_TRUE(fs::exists(file)); // refused, not deleted or set aside
}

TEST(Corruption, DamagedBlockIsDetectedAndOlderCheckpointUsed) {
  ScratchDir dir;
  const int rank = world_rank(), size = world_size();
  std::vector<std::int64_t> u(5, 0);
  const ckpt::Block block{.global = {5 * std::uint64_t(size)}, .offset = {5 * std::uint64_t(rank)}, .count = {5}};
  {
    ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
    cp.distributed("u", u.data(), block);
    for (auto &x : u)
      x = 1000 + rank;
    cp.save(10);
    for (auto &x : u)
      x = 2000 + rank;
    cp.save(20);
  }
  const std::string newest = dir / ckpt::checkpoint_file_name(20);
  if (rank == 0) // one byte inside the last rank's block
    flip_byte(newest, dataset_offset(newest, "u") + long(8 * 5 * (size - 1) + 3));
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_FALSE(ckpt::verify(newest).ok);
  EXPECT_NE(ckpt::verify(newest).reason.find("field 'u' block " + std::to_string(size - 1)), std::string::npos)
      << ckpt::verify(newest).reason;
  std::fill(u.begin(), u.end(), 0);
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
  cp.distributed("u", u.data(), block);
  EXPECT_EQ(cp.restore(), std::optional<std::int64_t>(10));
  for (auto x : u)
    EXPECT_EQ(x, 1000 + rank);
  EXPECT_TRUE(fs::exists(newest + ".corrupt")); // set aside, never used again
}

namespace {
// Saves x = 5 at step 1 and x = 6 at step 2 (every rank), for a test to damage step 2.
void save_steps_1_and_2(const ScratchDir &dir) {
  int x = 5;
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
  cp.replicated("x", &x);
  cp.save(1);
  x = 6;
  cp.save(2);
}
// After step 2 was damaged: a restore skips it and restores step 1 (x = 5).
void expect_restore_of_step_1(const ScratchDir &dir) {
  MPI_Barrier(MPI_COMM_WORLD);
  int x = 0;
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
  cp.replicated("x", &x);
  EXPECT_EQ(cp.restore(), std::optional<std::int64_t>(1));
  EXPECT_EQ(x, 5);
}
} // namespace

TEST(Corruption, GarbageAndTruncatedFilesAreSkipped) {
  ScratchDir dir;
  save_steps_1_and_2(dir);
  if (world_rank() == 0) {
    std::ofstream(dir / ckpt::checkpoint_file_name(3)) << "this is not HDF5";
    fs::resize_file(dir / ckpt::checkpoint_file_name(2), fs::file_size(dir / ckpt::checkpoint_file_name(2)) / 2);
    std::ofstream(dir / "LATEST") << "garbage\n";
  }
  expect_restore_of_step_1(dir);
}

// A small save renames its file before the fsync once the directory holds an earlier
// checkpoint of the run (detail::commit_written). An operating-system crash in between
// leaves the newest name with no data (delayed allocation: an empty file) or with zeros
// (unwritten extents); restore sets it aside and restores the checkpoint before it.
TEST(Corruption, AFileTornByACrashAfterItsRenameIsSetAside) {
  for (const bool zeros : {false, true}) {
    SCOPED_TRACE(zeros ? "zero-filled" : "empty");
    ScratchDir dir;
    save_steps_1_and_2(dir);
    const fs::path torn = dir / ckpt::checkpoint_file_name(2);
    if (world_rank() == 0) {
      const auto size = fs::file_size(torn);
      fs::resize_file(torn, 0);
      if (zeros)
        fs::resize_file(torn, size);
    }
    expect_restore_of_step_1(dir);
    EXPECT_TRUE(fs::exists(torn.string() + ".corrupt"));
  }
}

TEST(Corruption, NoValidCheckpointIsAnError) {
  ScratchDir dir;
  if (world_rank() == 0)
    std::ofstream(dir / ckpt::checkpoint_file_name(9)) << "junk";
  MPI_Barrier(MPI_COMM_WORLD);
  int x = 0;
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
  cp.replicated("x", &x);
  EXPECT_EQ(error_code_of([&] { cp.restore(); }), Errc::no_valid_checkpoint);
}

// A failure on one rank during save becomes the same error on every rank; nothing is
// committed and the previous checkpoint stays the latest.
TEST(Commit, AllOrNothingWhenOneRankFails) {
  ScratchDir dir;
  const int rank = world_rank(), size = world_size();
  std::vector<double> u(3, 1.0);
  const ckpt::Block block{.global = {3 * std::uint64_t(size)}, .offset = {3 * std::uint64_t(rank)}, .count = {3}};
  ckpt::Checkpointer cp(MPI_COMM_WORLD, test_options(dir.path()));
  cp.distributed("u", u.data(), block);
  cp.save(1);
  u.assign(3, 2.0);
  const std::string fault = "fsync@" + std::to_string(size - 1);
  setenv("CKPT_TEST_FAULT", fault.c_str(), 1);
  std::string msg;
  int failed_rank = -2;
  try {
    cp.save(2);
  } catch (const ckpt::Error &e) {
    msg = e.what();
    failed_rank = e.rank();
    EXPECT_EQ(e.code(), Errc::io);
  }
  unsetenv("CKPT_TEST_FAULT");
  EXPECT_EQ(failed_rank, size - 1); // every rank names the rank that failed
  EXPECT_NE(msg.find("injected"), std::string::npos) << msg;
  // Same message on every rank.
  const std::uint64_t h = std::hash<std::string>{}(msg);
  std::uint64_t hmin = 0, hmax = 0;
  MPI_Allreduce(&h, &hmin, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&h, &hmax, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
  EXPECT_EQ(hmin, hmax);
  auto list = ckpt::list_checkpoints(dir.path());
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].step, 1);
  EXPECT_EQ(ckpt::read_latest(dir.path()), std::optional<std::int64_t>(1));
  for (const auto &e : fs::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  // The failure at commit (rank 0's rename) is all-or-nothing too.
  setenv("CKPT_TEST_FAULT", "rename@0", 1);
  EXPECT_EQ(error_code_of([&] { cp.save(3); }), Errc::io);
  unsetenv("CKPT_TEST_FAULT");
  EXPECT_EQ(ckpt::list_checkpoints(dir.path()).size(), 1u);
  // And the next save works again.
  cp.save(4);
  EXPECT_EQ(ckpt::list_checkpoints(dir.path())[0].step, 4);
}

// A save that failed is not counted: the statistics do not change, and the loop's final
// save at that step still happens (it used to be skipped as "already saved").
TEST(Commit, FailedSaveIsNotCountedAndTheFinalSaveStillHappens) {
  ScratchDir dir;
  const int rank = world_rank(), size = world_size();
  std::vector<double> u(3, 1.0);
  const ckpt::Block block{.global = {3 * std::uint64_t(size)}, .offset = {3 * std::uint64_t(rank)}, .count = {3}};
  auto o = test_options(dir.path());
  o.final = true;
  ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
  cp.distributed("u", u.data(), block);
  setenv("CKPT_TEST_FAULT", "write@0", 1);
  EXPECT_EQ(error_code_of([&] { cp.save(5); }), Errc::io);
  unsetenv("CKPT_TEST_FAULT");
  EXPECT_EQ(cp.stats().saves, 0);
  EXPECT_EQ(cp.stats().last_step, -1);
  EXPECT_EQ(cp.after_step(5, true), ckpt::StopReason::finished);
  EXPECT_EQ(cp.stats().saves, 1);
  EXPECT_EQ(cp.stats().last_step, 5);
  auto list = ckpt::list_checkpoints(dir.path());
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].step, 5);
}

// Async: the checkpointer is destroyed while its background write may still run; the
// staging memory outlives the writer thread and the checkpoint is committed.
TEST(Commit, DestroyedWithAnAsyncWriteInFlight) {
  ScratchDir dir;
  const int rank = world_rank(), size = world_size();
  std::vector<double> u(1 << 20, 2.0 + rank);
  const ckpt::Block block{.global = {std::uint64_t(u.size()) * std::uint64_t(size)},
                          .offset = {std::uint64_t(u.size()) * std::uint64_t(rank)},
                          .count = {std::uint64_t(u.size())}};
  {
    auto o = test_options(dir.path());
    o.mode = ckpt::Mode::async;
    ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
    cp.distributed("u", u.data(), block);
    cp.save(1);
    EXPECT_EQ(cp.pending_step(), std::optional<std::int64_t>(1));
  }
  auto list = ckpt::list_checkpoints(dir.path());
  ASSERT_EQ(list.size(), 1u);
  EXPECT_TRUE(ckpt::verify(list[0].path).ok);
}

// The two messages that carry a status (mpi/): every rank gets every rank's vector, or,
// when one rank failed, every rank throws that rank's error. The save's block tables, its
// layout and its commit ride on them.
TEST(Agreement, GatherAndBroadcastCarryTheStatus) {
  using ckpt::mpi::Status;
  ckpt::mpi::Comm comm(MPI_COMM_WORLD);
  const int rank = comm.rank(), size = comm.size();
  const std::vector<std::uint64_t> mine(static_cast<std::size_t>(rank + 1), static_cast<std::uint64_t>(rank));
  std::vector<std::uint64_t> starts;
  const auto all = ckpt::mpi::allgatherv_agreed(comm, Status{}, mine, &starts, "a test gather");
  ASSERT_EQ(all.size(), static_cast<std::size_t>(size * (size + 1) / 2));
  for (int r = 0; r < size; ++r)
    for (int k = 0; k <= r; ++k)
      EXPECT_EQ(all[starts[static_cast<std::size_t>(r)] + static_cast<std::size_t>(k)], static_cast<std::uint64_t>(r));

  auto outcome = [](auto &&call, std::string &msg) {
    try {
      call();
    } catch (const ckpt::Error &e) {
      msg = e.what();
      return std::pair{e.code(), e.rank()};
    }
    return std::pair{Errc::ok, -2};
  };
  std::string msg;
  const Status last_fails = rank == size - 1 ? Status{Errc::io, "the disk is on fire"} : Status{};
  auto [code, who] = outcome([&] { ckpt::mpi::allgatherv_agreed(comm, last_fails, mine, nullptr, "a test gather"); }, msg);
  EXPECT_EQ(code, Errc::io);
  EXPECT_EQ(who, size - 1);
  EXPECT_NE(msg.find("the disk is on fire"), std::string::npos) << msg;

  const std::vector<std::uint64_t> v{7, 8, 9};
  EXPECT_EQ(ckpt::mpi::bcast_agreed(comm, Status{}, rank == 0 ? v : std::vector<std::uint64_t>{}, 0, "a test bcast"), v);
  const Status root_fails = rank == 0 ? Status{Errc::no_space, "no room at the root"} : Status{};
  std::tie(code, who) = outcome([&] { ckpt::mpi::bcast_agreed(comm, root_fails, v, 0, "a test bcast"); }, msg);
  EXPECT_EQ(code, Errc::no_space);
  EXPECT_EQ(who, 0);
  EXPECT_NE(msg.find("no room at the root"), std::string::npos) << msg;
}

// Async small saves are committed on the next save's first collective: a background write
// that failed on rank 0 is reported by that next save, on every rank, and is not counted; a
// good one is counted and is the latest checkpoint.
TEST(Commit, AnAsyncSmallSaveIsCommittedByTheNextSave) {
  ScratchDir dir;
  const int rank = world_rank(), size = world_size();
  std::vector<double> u(3, 1.0 + rank);
  const ckpt::Block block{.global = {3 * std::uint64_t(size)}, .offset = {3 * std::uint64_t(rank)}, .count = {3}};
  auto o = test_options(dir.path());
  o.mode = ckpt::Mode::async;
  ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
  cp.distributed("u", u.data(), block);
  cp.save(1);
  setenv("CKPT_TEST_FAULT", "fsync@0", 1); // rank 0's fsync of the file, on its background writer
  cp.save(2);                               // staged; its write fails in the background
  unsetenv("CKPT_TEST_FAULT");
  EXPECT_EQ(cp.stats().saves, 1) << "step 1 committed by the save of step 2";
  int failed_rank = -2;
  try {
    cp.save(3);
  } catch (const ckpt::Error &e) {
    failed_rank = e.rank();
    EXPECT_EQ(e.code(), Errc::io);
  }
  EXPECT_EQ(failed_rank, 0) << "every rank reports rank 0's failed write of step 2";
  EXPECT_EQ(cp.stats().saves, 1);
  EXPECT_EQ(cp.stats().last_step, 1);
  EXPECT_EQ(ckpt::read_latest(dir.path()), std::optional<std::int64_t>(1));
  cp.save(4);
  cp.save(5);
  EXPECT_EQ(cp.stats().saves, 2) << "step 4 committed by the save of step 5";
  cp.wait();
  EXPECT_EQ(cp.stats().saves, 3);
  EXPECT_EQ(ckpt::list_checkpoints(dir.path())[0].step, 5);
}
