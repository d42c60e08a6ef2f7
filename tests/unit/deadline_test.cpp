#include "deadline.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

namespace relay {
namespace {

using std::chrono::milliseconds;

TEST(Deadline, RemainingTimeNeverGoesNegative) {
  const Deadline past(now_unix_ms() - 1000);
  EXPECT_EQ(past.remaining_ms(), 0u);
  EXPECT_TRUE(past.passed());
  const Deadline ahead = Deadline::in(std::chrono::seconds(60));
  EXPECT_GT(ahead.remaining_ms(), 50'000u);
  EXPECT_LE(ahead.remaining_ms(), 60'000u);
  EXPECT_FALSE(ahead.passed());
  EXPECT_LT(past, ahead);
}

TEST(Deadline, EarlierByStopsAtTheFloor) {
  const Deadline d(10'000);
  EXPECT_EQ(d.earlier_by(500, Deadline(0)).unix_ms(), 9'500u);
  EXPECT_EQ(d.earlier_by(500, Deadline(9'800)).unix_ms(), 9'800u);
  EXPECT_EQ(d.earlier_by(20'000, Deadline(0)).unix_ms(), 0u) << "no wrap below zero";
}

// 2000 ms window, 150 ms margin: exit 1850 ms after the start, the drain at most half of that.
TEST(ShutdownBudget, PhasesSplitTheWindowInOrder) {
  ShutdownBudget budget(100'000, 102'000, 150);
  EXPECT_EQ(budget.lambda_deadline().unix_ms(), 102'000u);
  EXPECT_EQ(budget.exit_by().unix_ms(), 101'850u);
  EXPECT_EQ(budget.drain_until().unix_ms(), 100'925u);
  // A drain that ended at once: 1850 ms left, the reserve is capped at 200 ms.
  budget.end_drain(100'000);
  EXPECT_EQ(budget.deliver_until().unix_ms(), 101'650u);
  EXPECT_EQ(budget.close_until().unix_ms(), 101'800u);
  // A drain that took its whole share: 925 ms left, still the 200 ms cap.
  budget.end_drain(100'925);
  EXPECT_EQ(budget.deliver_until().unix_ms(), 101'650u);
  // 100 ms left: a quarter (25 ms) for spooling, flushing and destroying.
  budget.end_drain(101'750);
  EXPECT_EQ(budget.deliver_until().unix_ms(), 101'825u);
  EXPECT_EQ(budget.close_until().unix_ms(), 101'844u);
  EXPECT_LE(budget.deliver_until(), budget.close_until());
  EXPECT_LE(budget.close_until(), budget.exit_by());
}

TEST(ShutdownBudget, MissingOrPastDeadlinesNeverGoBackInTime) {
  ShutdownBudget missing(100'000, 0, 150);  // no deadlineMs: Lambda's documented 2 s
  EXPECT_EQ(missing.lambda_deadline().unix_ms(), 102'000u);
  ShutdownBudget past(100'000, 99'000, 150);
  EXPECT_EQ(past.exit_by().unix_ms(), 100'000u);
  EXPECT_EQ(past.drain_until().unix_ms(), 100'000u);
  EXPECT_EQ(past.deliver_until().unix_ms(), 100'000u);
  EXPECT_EQ(past.close_until().unix_ms(), 100'000u);
  past.end_drain(100'500);  // the drain ended after the exit time
  EXPECT_EQ(past.deliver_until().unix_ms(), 100'000u);
}

TEST(RunInParallel, RunsEveryItemAtOnce) {
  // Each item waits until all three started: only running them at once can finish.
  std::mutex mutex;
  std::condition_variable started_cv;
  int started = 0;
  const std::vector<bool> done = run_in_parallel(
      3,
      [&](size_t) {
        std::unique_lock lock(mutex);
        ++started;
        started_cv.notify_all();
        started_cv.wait_for(lock, std::chrono::seconds(20), [&] { return started == 3; });
      },
      Deadline::in(std::chrono::seconds(30)));
  EXPECT_EQ(done, std::vector<bool>(3, true));
  EXPECT_EQ(started, 3);
}

TEST(RunInParallel, ReturnsAtTheDeadlineWithoutTheStuckItem) {
  // Shared with the stuck thread, which outlives this test's stack.
  struct Gate {
    std::mutex mutex;
    std::condition_variable opened_cv;
    bool opened = false;
  };
  auto gate = std::make_shared<Gate>();
  const auto started = std::chrono::steady_clock::now();
  const std::vector<bool> done = run_in_parallel(
      2,
      [gate](size_t i) {
        if (i == 0) return;
        std::unique_lock lock(gate->mutex);
        gate->opened_cv.wait(lock, [&] { return gate->opened; });
      },
      Deadline::in(milliseconds(100)));
  EXPECT_GE(std::chrono::steady_clock::now() - started, milliseconds(90));
  EXPECT_EQ(done, (std::vector<bool>{true, false}));
  {
    std::lock_guard lock(gate->mutex);
    gate->opened = true;
  }
  gate->opened_cv.notify_all();
}

TEST(RunInParallel, WithoutADeadlineWaitsForEveryItemAndRunsTheLastHere) {
  std::atomic<int> finished{0};
  std::thread::id last_on;
  const std::vector<bool> done = run_in_parallel(3, [&](size_t i) {
    if (i == 0) std::this_thread::sleep_for(milliseconds(50));  // the slowest is waited for
    if (i == 2) last_on = std::this_thread::get_id();
    ++finished;
  });
  EXPECT_EQ(done, std::vector<bool>(3, true));
  EXPECT_EQ(finished.load(), 3);
  EXPECT_EQ(last_on, std::this_thread::get_id());
}

TEST(RunInParallel, NothingToRunReturnsAtOnce) {
  EXPECT_TRUE(run_in_parallel(
                  0, [](size_t) {}, Deadline::in(std::chrono::seconds(30)))
                  .empty());
}

}  // namespace
}  // namespace relay
