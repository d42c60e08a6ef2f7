#include "invocation_tracker.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace relay {
namespace {

using std::chrono::milliseconds;

std::vector<PlatformFields> platform(PlatformType type, std::string_view request_id) {
  PlatformFields fields;
  fields.type = type;
  fields.request_id = request_id;
  return {fields};
}

TEST(InvocationTracker, RuntimeDoneAndReportAreToldApart) {
  InvocationTracker tracker;
  tracker.note_arrival(platform(PlatformType::kRuntimeDone, "req-1"));
  const Deadline past(0);  // only what was noted can make these true
  EXPECT_TRUE(tracker.wait_for_runtime_done("req-1", past));
  EXPECT_FALSE(tracker.wait_for_report("req-1", 0, past));
  EXPECT_FALSE(tracker.wait_for_runtime_done("req-2", past));
  tracker.note_arrival(platform(PlatformType::kReport, "req-1"));
  EXPECT_TRUE(tracker.wait_for_report("req-1", 0, past));
  tracker.note_arrival(platform(PlatformType::kStart, "req-3"));
  EXPECT_FALSE(tracker.wait_for_runtime_done("req-3", past));
}

TEST(InvocationTracker, AWaitEndsWhenItsEventArrives) {
  InvocationTracker tracker;
  std::thread listener([&] {
    std::this_thread::sleep_for(milliseconds(20));
    tracker.note_arrival(platform(PlatformType::kRuntimeDone, "req-1"));
  });
  const auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(tracker.wait_for_runtime_done("req-1", Deadline::in(std::chrono::seconds(20))));
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
  listener.join();
}

TEST(InvocationTracker, TheReportWaitEndsOnTheQuietPeriodOrTheDeadline) {
  InvocationTracker tracker;
  auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(tracker.wait_for_report("req-1", 50, Deadline::in(std::chrono::seconds(20))));
  const auto quiet = std::chrono::steady_clock::now() - started;
  EXPECT_GE(quiet, milliseconds(45));
  EXPECT_LT(quiet, std::chrono::seconds(10));
  started = std::chrono::steady_clock::now();
  EXPECT_FALSE(tracker.wait_for_report("req-1", 20000, Deadline::in(milliseconds(50))));
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
}

TEST(InvocationTracker, WithoutARequestIdOnlyTheQuietPeriodCounts) {
  InvocationTracker tracker;
  tracker.note_arrival(platform(PlatformType::kReport, ""));
  EXPECT_FALSE(tracker.wait_for_report("", 10, Deadline::in(std::chrono::seconds(20))));
}

TEST(InvocationTracker, RemembersTheLastSixteenIds) {
  InvocationTracker tracker;
  for (int i = 0; i < 17; ++i) {
    const std::string id = "req-" + std::to_string(i);
    tracker.note_arrival(platform(PlatformType::kReport, id));
  }
  EXPECT_FALSE(tracker.wait_for_report("req-0", 0, Deadline(0)));
  EXPECT_TRUE(tracker.wait_for_report("req-1", 0, Deadline(0)));
  EXPECT_TRUE(tracker.wait_for_report("req-16", 0, Deadline(0)));
}

}  // namespace
}  // namespace relay
