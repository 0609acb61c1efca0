// Local unit tests (no MPI communication): options from the environment, block checksums,
// the catalog's file naming.
#include <ckpt/ckpt.hpp>
#include <ckpt/formats/checksum.hpp>

#include "async_writer.hpp" // libckpt/src: the helper threads
#include "commit.hpp" // libckpt/src: the save's commit stage
#include "plan.hpp"   // libckpt/src: the save's plan stage
#include "policy.hpp" // libckpt/src: when to checkpoint and when to stop
#include "signals.hpp" // libckpt/src: the stop flag

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sys/wait.h>
#include <unistd.h>

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
  setenv("CKPT_AGREE_SECONDS", "0", 1);
  auto e = o.with_env();
  EXPECT_EQ(e.dir, "from-env");
  EXPECT_EQ(e.every, 250);
  EXPECT_EQ(e.keep, 0);
  EXPECT_EQ(e.signals, (std::vector<int>{SIGUSR2, SIGTERM}));
  EXPECT_EQ(e.mode, ckpt::Mode::async);
  EXPECT_EQ(e.agree_seconds, 0);
  setenv("CKPT_EVERY", "auto", 1);
  setenv("CKPT_SIGNALS", "none", 1);
  e = o.with_env();
  EXPECT_TRUE(e.every_auto);
  EXPECT_TRUE(e.signals.empty());
  for (const char *var : {"CKPT_DIR", "CKPT_EVERY", "CKPT_KEEP", "CKPT_SIGNALS", "CKPT_MODE", "CKPT_AGREE_SECONDS"})
    unsetenv(var);
  EXPECT_EQ(o.with_env().dir, "from-code");
}

TEST(Options, BadEnvironmentValuesNameTheVariable) {
  for (auto [var, value] : {std::pair{"CKPT_EVERY", "ten"}, {"CKPT_KEEP", "-1"}, {"CKPT_SECONDS", "x"},
                            {"CKPT_SIGNALS", "USR9"}, {"CKPT_MODE", "fast"}, {"CKPT_QUIET", "maybe"},
                            {"CKPT_AGREE_SECONDS", "-1"}}) {
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

// ------------------------------------------------------------------------------------------
// Policy: a pure function of the options and the recorded history.

TEST(Policy, EveryNStepsAndNotTwiceAtTheSameStep) {
  using namespace ckpt::detail;
  ckpt::Options o;
  o.every = 10;
  EXPECT_FALSE(decide(o, 9, 0, -1, ckpt::StopReason::none).save);
  EXPECT_TRUE(decide(o, 10, 0, -1, ckpt::StopReason::none).save);
  EXPECT_FALSE(decide(o, 10, 0, 10, ckpt::StopReason::none).save); // saved there already
  EXPECT_TRUE(decide(o, 13, flag_time_due, 10, ckpt::StopReason::none).save);
  o.every = 0;
  EXPECT_FALSE(decide(o, 10, 0, -1, ckpt::StopReason::none).save);
}

TEST(Policy, AgreedStopFlagsStopAndHold) {
  using namespace ckpt::detail;
  ckpt::Options o;
  auto d = decide(o, 5, flag_requested, -1, ckpt::StopReason::none);
  EXPECT_TRUE(d.save);
  EXPECT_EQ(d.stop, ckpt::StopReason::requested);
  // A signal wins over a time limit, which wins over a request.
  EXPECT_EQ(decide(o, 5, flag_signal | flag_time_limit | flag_requested, -1, ckpt::StopReason::none).stop,
            ckpt::StopReason::signal);
  EXPECT_EQ(decide(o, 5, flag_time_limit | flag_requested, -1, ckpt::StopReason::none).stop,
            ckpt::StopReason::time_limit);
  // Once decided, a stop holds at the next boundary without new flags, and the stop path
  // is asked to save (after_step skips a step already saved).
  d = decide(o, 6, 0, 5, ckpt::StopReason::signal);
  EXPECT_EQ(d.stop, ckpt::StopReason::signal);
  EXPECT_TRUE(d.save);
  // A finished run is not a stop that needs a save.
  EXPECT_FALSE(decide(o, 7, 0, 7, ckpt::StopReason::finished).save);
  // flag_write_pending alone decides nothing.
  EXPECT_FALSE(decide(o, 7, flag_write_pending, -1, ckpt::StopReason::none).save);
}

TEST(Policy, StopFlagsFromTheSignalState) {
  using namespace ckpt::detail;
  EXPECT_EQ(stop_flags(0), 0);
  EXPECT_EQ(stop_flags(SIGUSR1), flag_signal);
  EXPECT_EQ(stop_flags(-1), flag_requested);
}

TEST(Policy, DalyIntervalFromTheMeasuredCost) {
  using namespace ckpt::detail;
  ckpt::Options o;
  o.mtbf_seconds = 3600;
  PolicyHistory h;
  h.record_save(2.0, 0.5);
  const double c = 2.0, m = 3600, x = c / (2 * m);
  const double daly = std::sqrt(2 * c * m) * (1 + std::sqrt(x) / 3 + x / 9) - c;
  EXPECT_NEAR(auto_interval(o, h), daly, 1e-9);
  EXPECT_GT(auto_interval(o, h), 100.0); // about 118 s, close to Young's sqrt(2CM) = 120 s
  EXPECT_LT(auto_interval(o, h), 120.0);
  // Async: the cost to the run is the time save() blocked.
  o.mode = ckpt::Mode::async;
  const double x2 = 0.5 / (2 * m);
  EXPECT_NEAR(auto_interval(o, h), std::sqrt(2 * 0.5 * m) * (1 + std::sqrt(x2) / 3 + x2 / 9) - 0.5, 1e-9);
  // A checkpoint that costs more than twice the MTBF: checkpoint every MTBF.
  o.mode = ckpt::Mode::sync;
  PolicyHistory slow;
  slow.record_save(8000, 8000);
  EXPECT_EQ(auto_interval(o, slow), 3600);
  // Before the first save: the state's size at 100 MB/s.
  PolicyHistory none;
  none.state_bytes = 400'000'000;
  EXPECT_DOUBLE_EQ(estimated_save_seconds(none), 4.0);
}

TEST(Policy, ClockFlagsFromTheHistory) {
  using namespace ckpt::detail;
  ckpt::Options o;
  PolicyHistory h;
  h.last_checkpoint = 100;
  EXPECT_EQ(clock_flags(o, h, 1e6, 0, NAN), 0); // no interval, no limit: the clock says nothing
  o.seconds = 30;
  EXPECT_EQ(clock_flags(o, h, 129, 0, NAN), 0);
  EXPECT_EQ(clock_flags(o, h, 130, 0, NAN), flag_time_due);
  // The time limit: margin 5 s + 2 x save + 2 x the longest step.
  o.seconds = 0;
  h.record_boundary(10);
  h.last_boundary = 10;
  h.record_boundary(13); // a 3 s step
  EXPECT_EQ(h.iter_count, 1);
  EXPECT_DOUBLE_EQ(h.iter_max, 3);
  h.record_save(1.0, 1.0);
  EXPECT_DOUBLE_EQ(time_limit_margin(o, h), 5 + 2 * 1.0 + 2 * 3);
  EXPECT_EQ(clock_flags(o, h, 0, 1000, 1014), 0);              // 14 s left, margin 13 s
  EXPECT_EQ(clock_flags(o, h, 0, 1000, 1012.5), flag_time_limit);
  o.margin_seconds = 60;                                        // an explicit margin wins
  EXPECT_EQ(clock_flags(o, h, 0, 1000, 1059), flag_time_limit);
  EXPECT_EQ(clock_flags(o, h, 0, 1000, 1061), 0);
  // Node-local storage: the stop also flushes to the shared directory; before a flush is
  // measured it is estimated from the state at 100 MB/s, then the longest one counts.
  o.margin_seconds = 0;
  h.flushes = true;
  h.state_bytes = 400'000'000; // 4 s at 100 MB/s
  EXPECT_DOUBLE_EQ(time_limit_margin(o, h), 5 + 2 * (1.0 + 4.0) + 2 * 3);
  h.max_flush = 0.5;
  EXPECT_DOUBLE_EQ(time_limit_margin(o, h), 5 + 2 * (1.0 + 0.5) + 2 * 3);
}

TEST(Policy, AgreementDistanceFromTheStepTime) {
  using namespace ckpt::detail;
  ckpt::Options o;
  EXPECT_DOUBLE_EQ(o.agree_seconds, 0.25);
  PolicyHistory h;
  EXPECT_EQ(agreement_distance(o, h, NAN), 1); // no step measured yet: agree at every boundary
  // Steps of 1/1024 s (binary fractions keep the arithmetic exact): a quarter of a second
  // is 256 steps.
  h.last_boundary = 0;
  for (int i = 1; i <= 10; ++i) {
    h.record_boundary(i / 1024.0);
    h.last_boundary = i / 1024.0;
  }
  EXPECT_EQ(h.iter_count, 10);
  EXPECT_EQ(agreement_distance(o, h, NAN), 256);
  // every=seconds: at most a tenth of the interval (1 s: 0.1 s, 102.4 steps).
  o.seconds = 1;
  EXPECT_EQ(agreement_distance(o, h, NAN), 102);
  o.seconds = 0;
  // A job end time: at most a tenth of the margin, counted in the longest step. With a
  // 1/32 s step somewhere in the run the margin is 5 s + 2 x 0 (no state) + 2/32 s, and a
  // tenth of it is 16.2 such steps.
  EXPECT_EQ(agreement_distance(o, h, 1e9), 256); // the longest step is 1/1024 s: no bound
  h.iter_max = 1 / 32.0;
  EXPECT_EQ(agreement_distance(o, h, NAN), 256);
  EXPECT_EQ(agreement_distance(o, h, 1e9), 16);
  o.margin_seconds = 1000; // an explicit margin: 100 s / (1/32 s) = 3200 steps, not a bound
  EXPECT_EQ(agreement_distance(o, h, 1e9), 256);
  o.margin_seconds = 0;
  // every=auto: at most a tenth of the interval (a save of 1 ms or less with a 10 min MTBF:
  // about 1.1 s, 0.11 s per period).
  o.every_auto = true;
  o.mtbf_seconds = 600;
  PolicyHistory saved = h;
  saved.record_save(2e-4, 2e-4);
  EXPECT_EQ(agreement_distance(o, saved, NAN), static_cast<std::int64_t>(0.1 * auto_interval(o, saved) * 1024));
  EXPECT_EQ(agreement_distance(o, saved, NAN), 112);
  o.mtbf_seconds = 0.1; // an interval of 13 ms: a period under two steps
  EXPECT_EQ(agreement_distance(o, saved, NAN), 1);
  o.every_auto = false;
  // Steps slower than the period, and agree_seconds = 0: every boundary agrees.
  PolicyHistory slow;
  slow.last_boundary = 0;
  slow.record_boundary(0.5);
  EXPECT_EQ(agreement_distance(o, slow, NAN), 1);
  o.agree_seconds = 0;
  EXPECT_EQ(agreement_distance(o, h, NAN), 1);
  // Very cheap steps: at most max_agreement_distance.
  o.agree_seconds = 0.25;
  PolicyHistory cheap;
  cheap.last_boundary = 0;
  cheap.record_boundary(1e-7);
  EXPECT_EQ(agreement_distance(o, cheap, NAN), max_agreement_distance);
  cheap.iter_sum = 0; // a step too short for the clock
  EXPECT_EQ(agreement_distance(o, cheap, NAN), max_agreement_distance);
}

// ------------------------------------------------------------------------------------------
// Commit: rename into place, LATEST, retention. Plain POSIX calls on a temp directory.

namespace {
fs::path fresh_dir(const char *name) {
  const fs::path d = fs::temp_directory_path() / (std::string("ckpt-") + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
void touch(const fs::path &p, const std::string &text = "x") { std::ofstream(p) << text; }
std::string read_all(const fs::path &p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
} // namespace

TEST(Commit, PublishRenamesAndMovesLatest) {
  const fs::path d = fresh_dir("publish");
  const std::string name = ckpt::checkpoint_file_name(7);
  touch(d / ".tmp-7", "data");
  ckpt::detail::publish(d, d / ".tmp-7", name);
  EXPECT_FALSE(fs::exists(d / ".tmp-7"));
  EXPECT_EQ(read_all(d / name), "data");
  EXPECT_EQ(read_all(d / "LATEST"), name + "\n");
  EXPECT_FALSE(fs::exists(d / ".LATEST.tmp"));
  // A missing temp file is an io error naming it; LATEST still names the last commit.
  try {
    ckpt::detail::publish(d, d / ".tmp-8", ckpt::checkpoint_file_name(8));
    FAIL() << "publish of a missing file succeeded";
  } catch (const ckpt::Error &e) {
    EXPECT_EQ(e.code(), ckpt::Errc::io);
    EXPECT_NE(std::string(e.what()).find(".tmp-8"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_all(d / "LATEST"), name + "\n");
  fs::remove_all(d);
}

// A small save's commit in both orders. Where the file is when the process dies at the
// fsync hook (right after the file's fsync) shows the order: in the usual one it is still
// the temp file (nothing under the final name until it is durable); with rename_first it is
// already under its final name. A failure at that point removes it under either name. The
// rename-first order also with the directory's fsync on a helper thread (as rank 0 does).
TEST(Commit, CommitWrittenInBothOrders) {
  using ckpt::detail::Fault;
  for (const int mode : {0, 1, 2}) {
    const bool rename_first = mode > 0;
    ckpt::detail::Worker syncer;
    ckpt::detail::Worker *helper = mode == 2 ? &syncer : nullptr;
    SCOPED_TRACE(mode == 0 ? "fsync first" : mode == 1 ? "rename first" : "rename first, directory fsync alongside");
    const fs::path d = fresh_dir(("commit-mode" + std::to_string(mode)).c_str());
    const std::string name = ckpt::checkpoint_file_name(5);
    auto open_tmp = [&] {
      const int fd = ::open((d / ".tmp-5").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      EXPECT_GE(fd, 0);
      EXPECT_EQ(::write(fd, "data", 4), 4);
      return fd;
    };
    // Killed at the hook, in a child process (with a helper: its thread is started in the
    // child, which has only the thread that forked).
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ckpt::detail::Worker child_syncer;
      const int fd = open_tmp();
      ckpt::detail::commit_written(d, fd, d / ".tmp-5", name, rename_first, Fault::kill,
                                   helper ? &child_syncer : nullptr);
      ::_exit(0); // not reached: the hook kills
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    EXPECT_EQ(fs::exists(d / name), rename_first);
    EXPECT_EQ(fs::exists(d / ".tmp-5"), !rename_first);
    EXPECT_FALSE(fs::exists(d / "LATEST"));
    fs::remove(d / name);
    // A failure at the same point: no file left under either name, LATEST untouched.
    int fd = open_tmp();
    EXPECT_THROW(ckpt::detail::commit_written(d, fd, d / ".tmp-5", name, rename_first, Fault::fail, helper),
                 ckpt::Error);
    ::close(fd);
    EXPECT_FALSE(fs::exists(d / name));
    EXPECT_FALSE(fs::exists(d / ".tmp-5"));
    EXPECT_FALSE(fs::exists(d / "LATEST"));
    // And without a fault: committed, LATEST moved; twice (the helper is used again).
    for (int i = 0; i < 2; ++i) {
      fd = open_tmp();
      ckpt::detail::commit_written(d, fd, d / ".tmp-5", name, rename_first, Fault::none, helper);
      ::close(fd);
      EXPECT_EQ(read_all(d / name), "data");
      EXPECT_FALSE(fs::exists(d / ".tmp-5"));
      EXPECT_EQ(read_all(d / "LATEST"), name + "\n");
    }
    fs::remove_all(d);
  }
}

TEST(Commit, PruneKeepsTheNewestUpToTheStep) {
  const fs::path d = fresh_dir("prune");
  for (int s : {100, 200, 300, 400, 900})
    touch(d / ckpt::checkpoint_file_name(s));
  // Keep 2 up to step 400: 300 and 400 stay, 100 and 200 go, and 900 (a later timeline)
  // is not ours to delete.
  EXPECT_TRUE(ckpt::detail::prune(d, 2, 400).empty());
  for (int s : {300, 400, 900})
    EXPECT_TRUE(fs::exists(d / ckpt::checkpoint_file_name(s))) << s;
  for (int s : {100, 200})
    EXPECT_FALSE(fs::exists(d / ckpt::checkpoint_file_name(s))) << s;
  // keep = 0 keeps everything.
  EXPECT_TRUE(ckpt::detail::prune(d, 0, 400).empty());
  EXPECT_TRUE(fs::exists(d / ckpt::checkpoint_file_name(300)));
  // Deferred: 300 is unlinked at once (gone from the directory), and its still open
  // descriptor handed back for the caller to close, which frees its blocks.
  std::vector<int> deferred;
  EXPECT_TRUE(ckpt::detail::prune(d, 1, 400, &deferred).empty());
  ASSERT_EQ(deferred.size(), 1u);
  EXPECT_FALSE(fs::exists(d / ckpt::checkpoint_file_name(300)));
  char byte = 0;
  EXPECT_EQ(::pread(deferred[0], &byte, 1, 0), 1) << "the descriptor is the pruned file's";
  EXPECT_EQ(byte, 'x');
  EXPECT_EQ(::close(deferred[0]), 0);
  std::vector<std::string> names;
  for (const auto &e : fs::directory_iterator(d))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{ckpt::checkpoint_file_name(400), ckpt::checkpoint_file_name(900)}));
  // A link named like an old checkpoint is removed as a link, nothing deferred.
  touch(d / "target");
  fs::create_symlink(d / "target", d / ckpt::checkpoint_file_name(100));
  deferred.clear();
  EXPECT_TRUE(ckpt::detail::prune(d, 2, 900, &deferred).empty()); // 900 and 400 stay
  EXPECT_TRUE(deferred.empty());
  EXPECT_FALSE(fs::is_symlink(d / ckpt::checkpoint_file_name(100)));
  EXPECT_TRUE(fs::exists(d / "target"));
  fs::remove_all(d);
}

TEST(Commit, FaultHookPlansPerPointAndRank) {
  using ckpt::detail::Fault;
  using ckpt::detail::fault_action;
  setenv("CKPT_TEST_FAULT", "rename@1", 1);
  EXPECT_EQ(fault_action("rename", 1), Fault::fail);
  EXPECT_EQ(fault_action("rename", 0), Fault::none);
  EXPECT_EQ(fault_action("write", 1), Fault::none);
  setenv("CKPT_TEST_FAULT", "write@*:kill", 1);
  EXPECT_EQ(fault_action("write", 3), Fault::kill);
  unsetenv("CKPT_TEST_FAULT");
  EXPECT_EQ(fault_action("write", 3), Fault::none);
}

// The stats lines name the file a checkpoint was restored from, and restore_from() takes any
// path: the name must stay one JSON string whatever it holds.
TEST(Commit, StatsLineQuotesAnyFileName) {
  using ckpt::detail::json_string;
  EXPECT_EQ(json_string("ckpt-000000000007.h5"), "\"ckpt-000000000007.h5\"");
  EXPECT_EQ(json_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_string("x\ny\tz\x01"), "\"x\\ny\\tz\\u0001\"");
  EXPECT_EQ(json_string("caf\xc3\xa9"), "\"caf\xc3\xa9\""); // UTF-8 passes through
}

// SLURM can deliver the same warning several times a moment apart (scancel --full, srun and
// ckpt-run each forward it). A copy that comes after the stop was acted on and the handlers
// were removed must not kill the process on its way out with exit code 75.
TEST(Signals, ALateCopyOfAStopSignalDoesNotKill) {
  {
    ckpt::StopSignals handlers({SIGUSR2});
    std::raise(SIGUSR2);
    EXPECT_EQ(ckpt::detail::stop_signal(), SIGUSR2);
    ckpt::clear_stop_request();
  } // the last holder goes; a stop signal did arrive, so ckpt's handler stays
  std::raise(SIGUSR2); // with the default action back, this would terminate the test
  EXPECT_EQ(ckpt::detail::stop_signal(), SIGUSR2);
  ckpt::clear_stop_request();
}
