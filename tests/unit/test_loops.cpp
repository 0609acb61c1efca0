// Checkpointer::loop / phase: nested loops and phases whose position is saved with each
// checkpoint and re-entered after a restart (the kill campaign is tests/faults/nested_kill.py).
#include "test_helpers.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

using namespace ckpt_test;
namespace fs = std::filesystem;

namespace {

// The state of a run: every (sweep, t) visited, counted into `sum`, and the phases run.
struct NestRun {
  std::int64_t sum = 0;
  std::int64_t setups = 0, inits = 0;
  std::vector<std::pair<std::int64_t, std::int64_t>> visited; // this process only
};

// Registers the state of a run.
void protect(ckpt::Checkpointer &cp, NestRun &r) {
  cp.replicated("sum", &r.sum);
  cp.replicated("setups", &r.setups);
  cp.replicated("inits", &r.inits);
}

// setup phase; sweep loop (init phase, t loop); stops (request_stop) after the step
// `stop_after` when it is >= 0. Returns the exit code.
int nest(const std::string &dir, NestRun &r, std::int64_t every, std::int64_t stop_after = -1) {
  auto o = test_options(dir);
  o.every = every;
  o.keep = 0;
  // Agree at every step boundary: a stop requested after a step is then agreed at the next
  // boundary, a known position in these short loops.
  o.agree_seconds = 0;
  ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
  protect(cp, r);
  try {
    for ([[maybe_unused]] auto _ : cp.phase("setup"))
      ++r.setups;
    for (auto sweep : cp.loop("sweep", 3)) {
      for ([[maybe_unused]] auto _ : cp.phase("init"))
        ++r.inits;
      for (auto t : cp.loop("t", 5)) {
        r.visited.emplace_back(sweep, t);
        r.sum += 10 * sweep + t;
        if (cp.loop_step() + 1 == stop_after)
          cp.request_stop();
      }
    }
  } catch (const ckpt::Stopped &s) {
    EXPECT_EQ(s.reason(), ckpt::StopReason::requested);
    return cp.exit_code();
  }
  EXPECT_EQ(cp.stopped(), ckpt::StopReason::finished);
  return cp.exit_code();
}

constexpr std::int64_t full_sum = 3 * 0 + 5 * (0 + 10 + 20) + 3 * (0 + 1 + 2 + 3 + 4);

} // namespace

TEST(Loops, UninterruptedNestCountsInnermostSteps) {
  ScratchDir d;
  NestRun r;
  EXPECT_EQ(nest(d.path(), r, 4), 0);
  EXPECT_EQ(r.sum, full_sum);
  EXPECT_EQ(r.setups, 1);
  EXPECT_EQ(r.inits, 3);
  EXPECT_EQ(r.visited.size(), 15u);
}

TEST(Loops, StopInTheInnerLoopResumesAtTheNextInnerStep) {
  ScratchDir d;
  NestRun a;
  // Steps: setup 1; sweep 0: init 2, t 3..7; sweep 1: init 8, t 9..13. Stop after step 10
  // (sweep 1, t = 1); the ranks agree on the stop at the boundary after the request.
  EXPECT_EQ(nest(d.path(), a, 0, 10), ckpt::exit_more_work);
  ASSERT_FALSE(a.visited.empty());
  const auto last = a.visited.back();
  EXPECT_EQ(last.first, 1);
  NestRun b;
  {
    // The restored position: setup done at the top level; sweep 1 with its init done; t
    // at the step after the last one run.
    auto o = test_options(d.path());
    ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
    protect(cp, b);
    auto setup = cp.phase("setup");
    const auto p = cp.restored_position();
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->done, 1);
    ASSERT_EQ(p->stack.size(), 2u);
    EXPECT_EQ(p->stack[0], (ckpt::LoopPosition::Level{1, 1}));
    EXPECT_EQ(p->stack[1], (ckpt::LoopPosition::Level{last.second + 1, 0}));
  }
  b = {};
  EXPECT_EQ(nest(d.path(), b, 0), 0);
  ASSERT_FALSE(b.visited.empty());
  EXPECT_EQ(b.visited.front(), (std::pair<std::int64_t, std::int64_t>{1, last.second + 1}));
  EXPECT_EQ(b.setups, 1); // restored, and the phase was not run again
  EXPECT_EQ(b.inits, 3);  // sweep 1's init was done; only sweep 2's ran
  EXPECT_EQ(b.sum, full_sum);
  EXPECT_EQ(a.visited.size() + b.visited.size(), 15u);
}

TEST(Loops, BreakEndsALoopAsDone) {
  ScratchDir d;
  std::int64_t count = 0, after = 0;
  {
    auto o = test_options(d.path());
    o.final = true;
    ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
    cp.replicated("count", &count);
    cp.replicated("after", &after);
    for (auto i : cp.loop("a", 10)) {
      if (i == 3)
        break;
      ++count;
    }
    for ([[maybe_unused]] auto _ : cp.phase("b"))
      ++after;
  }
  EXPECT_EQ(count, 3);
  EXPECT_EQ(after, 1);
  // Restarted from the final checkpoint: both are done and skipped.
  std::int64_t c2 = 0, a2 = 0, ran = 0;
  auto o = test_options(d.path());
  ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
  cp.replicated("count", &c2);
  cp.replicated("after", &a2);
  for ([[maybe_unused]] auto i : cp.loop("a", 10))
    ++ran;
  for ([[maybe_unused]] auto _ : cp.phase("b"))
    ++ran;
  EXPECT_EQ(ran, 0);
  EXPECT_EQ(c2, 3);
  EXPECT_EQ(a2, 1);
  EXPECT_EQ(cp.restored_position()->done, 2);
}

TEST(Loops, ADifferentStructureIsAMismatchAndRestoreFirstIsAnError) {
  ScratchDir d;
  NestRun a;
  EXPECT_EQ(nest(d.path(), a, 0, 5), ckpt::exit_more_work); // stopped inside sweep 0's t loop
  {
    NestRun b;
    auto o = test_options(d.path());
    ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
    protect(cp, b);
    for ([[maybe_unused]] auto _ : cp.phase("setup")) {
    }
    std::string msg;
    EXPECT_EQ(error_code_of([&] {
                for ([[maybe_unused]] auto s : cp.loop("scan", 3)) {
                }
              }, &msg),
              ckpt::Errc::mismatch);
    EXPECT_NE(msg.find("'scan'"), std::string::npos) << msg;
  }
  NestRun c;
  auto o = test_options(d.path());
  ckpt::Checkpointer cp(MPI_COMM_WORLD, o);
  protect(cp, c);
  cp.restore();
  EXPECT_EQ(error_code_of([&] { (void)cp.phase("setup"); }), ckpt::Errc::invalid_argument);
}
