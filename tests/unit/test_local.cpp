// Local unit tests (no MPI communication): options from the environment, block checksums,
// the catalog's file naming.
#include <ckpt/ckpt.hpp>
#include <ckpt/formats/checksum.hpp>

#include "plan.hpp" // libckpt/src: the save's plan stage

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>

namespace fs = std::filesystem;

TEST(Options, EnvironmentOverridesCode) {
  ckpt::Options o;
  o.dir = "from-code";
  o.every = 5;
  setenv("CKPT_DIR", "from-env", 1);
  setenv("CKPT_EVERY", "250", 1);
  setenv("CKPT_KEEP", "0", 1);
  setenv("CKPT_SIGNALS", "USR2,SIGTERM", 1);
  setenv("CKPT_MODE", "async", 1);
  auto e = o.with_env();
  EXPECT_EQ(e.dir, "from-env");
  EXPECT_EQ(e.every, 250);
  EXPECT_EQ(e.keep, 0);
  EXPECT_EQ(e.signals, (std::vector<int>{SIGUSR2, SIGTERM}));
  EXPECT_EQ(e.mode, ckpt::Mode::async);
  setenv("CKPT_EVERY", "auto", 1);
  setenv("CKPT_SIGNALS", "none", 1);
  e = o.with_env();
  EXPECT_TRUE(e.every_auto);
  EXPECT_TRUE(e.signals.empty());
  for (const char *var : {"CKPT_DIR", "CKPT_EVERY", "CKPT_KEEP", "CKPT_SIGNALS", "CKPT_MODE"})
    unsetenv(var);
  EXPECT_EQ(o.with_env().dir, "from-code");
}

TEST(Options, BadEnvironmentValuesNameTheVariable) {
  for (auto [var, value] : {std::pair{"CKPT_EVERY", "ten"}, {"CKPT_KEEP", "-1"}, {"CKPT_SECONDS", "x"},
                            {"CKPT_SIGNALS", "USR9"}, {"CKPT_MODE", "fast"}, {"CKPT_QUIET", "maybe"}}) {
    setenv(var, value, 1);
    try {
      (void)ckpt::Options().with_env();
      ADD_FAILURE() << var << "=" << value << " was accepted";
    } catch (const ckpt::Error &e) {
      EXPECT_EQ(e.code(), ckpt::Errc::invalid_argument);
      EXPECT_NE(std::string(e.what()).find(var), std::string::npos) << e.what();
    }
    unsetenv(var);
  }
}

TEST(Checksum, BlockInsideLargerArrayEqualsPackedBlock) {
  // A 3x4 block at (1, 2) of a 6x7 array, and the same block packed.
  std::vector<std::uint32_t> a(6 * 7);
  std::iota(a.begin(), a.end(), 0u);
  std::vector<std::uint32_t> packed;
  for (int i = 1; i < 4; ++i)
    for (int j = 2; j < 6; ++j)
      packed.push_back(a[i * 7 + j]);
  const auto want = ckpt::formats::checksum(packed.data(), packed.size() * 4);
  EXPECT_EQ(ckpt::formats::checksum_block(a.data(), {6, 7}, {1, 2}, {3, 4}, 4), want);
  // Whole rows merge into one run; the result must not change.
  std::vector<std::uint32_t> rows(a.begin() + 7, a.begin() + 4 * 7);
  EXPECT_EQ(ckpt::formats::checksum_block(a.data(), {6, 7}, {1, 0}, {3, 7}, 4),
            ckpt::formats::checksum(rows.data(), rows.size() * 4));
  // Scalars and empty blocks.
  double x = 2.5;
  EXPECT_EQ(ckpt::formats::checksum_block(&x, {}, {}, {}, 8), ckpt::formats::checksum(&x, 8));
  EXPECT_EQ(ckpt::formats::checksum_block(a.data(), {6, 7}, {0, 0}, {0, 7}, 4), ckpt::formats::checksum(nullptr, 0));
}

TEST(Catalog, ListsOnlyCommittedCheckpointsNewestFirst) {
  const fs::path d = fs::temp_directory_path() / ("ckpt-catalog-" + std::to_string(::getpid()));
  fs::create_directories(d);
  for (const char *name : {"ckpt-000000000010.h5", "ckpt-000000000200.h5", "ckpt-7.h5", ".ckpt-000000000300.h5.tmp",
                           "ckpt-000000000400.h5.corrupt", "ckpt-x.h5", "LATEST", "notes.txt"})
    std::ofstream(d / name) << "x";
  auto list = ckpt::list_checkpoints(d);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].step, 200);
  EXPECT_EQ(list[1].step, 10);
  EXPECT_EQ(list[2].step, 7);
  EXPECT_EQ(ckpt::checkpoint_file_name(1200), "ckpt-000000001200.h5");
  EXPECT_FALSE(ckpt::read_latest(d).has_value()); // "x" is not a checkpoint name
  std::ofstream(d / "LATEST") << "ckpt-000000000200.h5\n";
  EXPECT_EQ(ckpt::read_latest(d), std::optional<std::int64_t>(200));
  EXPECT_TRUE(ckpt::list_checkpoints(d / "missing").empty());
  fs::remove_all(d);
}

// The tiling check of distributed fields at every block count (it used to stop at 4096).
namespace {
ckpt::BlockInfo box(std::uint64_t y, std::uint64_t x, std::uint64_t h, std::uint64_t w) {
  ckpt::BlockInfo b;
  b.offset = {y, x};
  b.count = {h, w};
  return b;
}
} // namespace

TEST(Plan, FindsOverlapsAtAnyBlockCount) {
  using ckpt::detail::find_overlap;
  // 100 x 100 tiles of 4 x 4: 10000 blocks, no overlap.
  std::vector<ckpt::BlockInfo> tiles;
  for (std::uint64_t i = 0; i < 100; ++i)
    for (std::uint64_t j = 0; j < 100; ++j)
      tiles.push_back(box(4 * i, 4 * j, 4, 4));
  EXPECT_FALSE(find_overlap(tiles));
  // Shift one tile by one column: the same number of elements is covered, but two blocks
  // overlap (and a column is left out).
  auto shifted = tiles;
  shifted[7777].offset[1] += 1;
  auto o = find_overlap(shifted);
  ASSERT_TRUE(o);
  EXPECT_TRUE(o->first == 7777 || o->second == 7777);
  // Empty blocks never overlap anything; duplicates of a whole tile do.
  auto with_empty = tiles;
  with_empty.push_back(box(8, 8, 0, 4));
  EXPECT_FALSE(find_overlap(with_empty));
  with_empty.push_back(box(396, 396, 4, 4));
  EXPECT_TRUE(find_overlap(with_empty));
}
