#include "outlet.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <set>
#include <sstream>

#include "mock_sink.h"
#include "pipeline.h"
#include "spool.h"
#include "test_support.h"

namespace relay {
namespace {

namespace fs = std::filesystem;
using ::testing::_;
using testing::eventually;
using ::testing::Invoke;
using testing::make_batch;
using testing::MockSink;
using ::testing::NiceMock;
using ::testing::Return;

// Records what the mock sink was handed; the outlet thread writes, the test thread reads.
struct Recorder {
  std::mutex mutex;
  std::vector<std::string> payloads;
  std::vector<std::string> ids;
  std::vector<size_t> counts;
  std::vector<std::string> first_events;  // what the first event's view reads at delivery
  std::vector<std::chrono::steady_clock::time_point> times;
  void add(const Delivery& d) {
    std::lock_guard lock(mutex);
    payloads.push_back(d.json);
    first_events.emplace_back(d.events.empty() ? std::string_view() : d.events[0].json);
    ids.push_back(d.batch_id);
    counts.push_back(d.events.size());
    times.push_back(std::chrono::steady_clock::now());
  }
  size_t size() {
    std::lock_guard lock(mutex);
    return payloads.size();
  }
};

// Holds a sink call until the test opens it.
class Gate {
 public:
  void wait() {
    std::unique_lock lock(mutex_);
    ++waiting_;
    changed_.notify_all();
    changed_.wait(lock, [this] { return open_; });
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }
  bool someone_waiting() {
    std::lock_guard lock(mutex_);
    return waiting_ > 0;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = false;
  int waiting_ = 0;
};

Deadline far_deadline() { return Deadline::in(std::chrono::seconds(20)); }

bool is_hex_id(const std::string& id) {
  return id.size() == 32 && id.find_first_not_of("0123456789abcdef") == std::string::npos;
}

std::string describe(const OutletCounters& c) {
  std::ostringstream out;
  out << "received=" << c.received << " inherited=" << c.inherited << " delivered=" << c.delivered
      << " discarded=" << c.discarded << " dropped_by_cap=" << c.dropped_by_cap
      << " dropped_by_sink=" << c.dropped_by_sink
      << " dropped_at_shutdown=" << c.dropped_at_shutdown
      << " dropped_disabled=" << c.dropped_disabled << " dropped_corrupt=" << c.dropped_corrupt
      << " still_spooled=" << c.still_spooled << " queued=" << c.queued;
  return out.str();
}

// Every test's outlets are checked against the loss-accounting invariant when it ends. Sinks
// capture only members of the fixture, which outlive the outlets.
class OutletTest : public ::testing::Test {
 protected:
  void TearDown() override {
    gate.open();  // never leave a sink call blocked
    for (const auto& outlet : outlets_) {
      const OutletCounters c = outlet->counters();
      EXPECT_TRUE(c.reconciles()) << outlet->name() << ": " << describe(c);
    }
    outlets_.clear();
    for (const std::string& dir : dirs_) fs::remove_all(dir);
  }

  Outlet& make(std::unique_ptr<MockSink> sink, OutletOptions options) {
    outlets_.push_back(std::make_unique<Outlet>(std::move(sink), std::move(options)));
    return *outlets_.back();
  }
  void destroy(Outlet& outlet) {  // after checking its balance, like TearDown
    const OutletCounters c = outlet.counters();
    EXPECT_TRUE(c.reconciles()) << describe(c);
    std::erase_if(outlets_, [&](const auto& held) { return held.get() == &outlet; });
  }

  // A fresh spool folder for this test, removed at the end.
  std::string new_spool_dir() {
    const std::string dir =
        (fs::temp_directory_path() /
         ("relay-outlet-test-" + std::to_string(getpid()) + "-" + std::to_string(dirs_.size()) +
          "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name()))
            .string();
    fs::remove_all(dir);
    dirs_.push_back(dir);
    return dir;
  }
  static OutletOptions no_spool(OutletOptions options = {}) {
    options.spool.enabled = false;
    return options;
  }
  static OutletOptions spooling(const std::string& dir, OutletOptions options = {}) {
    options.spool.enabled = true;
    options.spool.dir = dir;
    return options;
  }
  static size_t spool_files(const std::string& dir) {
    size_t n = 0;
    for (const auto& entry : fs::directory_iterator(dir)) {
      n += entry.path().extension() == ".batch" ? 1 : 0;
    }
    return n;
  }

  // A sink that records every call and answers with what respond(call number from 1) says.
  std::unique_ptr<NiceMock<MockSink>> sink_answering(
      std::function<DeliveryResult(int call)> respond) {
    auto sink = std::make_unique<NiceMock<MockSink>>();
    respond_ = std::move(respond);
    ON_CALL(*sink, deliver(_, _)).WillByDefault(Invoke([this](const Delivery& d, uint64_t) {
      seen.add(d);
      return respond_(++calls);
    }));
    return sink;
  }
  // Likewise, answering from what it was handed.
  std::unique_ptr<NiceMock<MockSink>> sink_judging(
      std::function<DeliveryResult(const Delivery&)> judge) {
    auto sink = std::make_unique<NiceMock<MockSink>>();
    judge_ = std::move(judge);
    ON_CALL(*sink, deliver(_, _)).WillByDefault(Invoke([this](const Delivery& d, uint64_t) {
      seen.add(d);
      ++calls;
      return judge_(d);
    }));
    return sink;
  }
  std::unique_ptr<NiceMock<MockSink>> accepting_sink() {
    return sink_answering([](int) { return DeliveryResult{}; });
  }

  // What the outlet counts in memory for one batch (bytes, per-event views, a constant): caps
  // and marks below are multiples of it.
  static size_t held_bytes(int events, const std::string& prefix = "line") {
    auto sink = std::make_unique<NiceMock<MockSink>>();
    Outlet probe(std::move(sink), no_spool({.min_batch_size = 1000000}));
    probe.enqueue(make_batch(events, prefix));
    return probe.counters().queued_bytes;
  }

  Recorder seen;
  std::atomic<int> calls{0};
  Gate gate;
  std::atomic<bool> receiver_down{false};

 private:
  std::function<DeliveryResult(int)> respond_;
  std::function<DeliveryResult(const Delivery&)> judge_;
  std::vector<std::string> dirs_;
  std::vector<std::unique_ptr<Outlet>> outlets_;
};

DeliveryResult retry(uint64_t retry_after_ms = 0) {
  DeliveryResult result{DeliveryStatus::kRetry, "HTTP 503"};
  result.retry_after_ms = retry_after_ms;
  return result;
}

// ---- flush modes ----------------------------------------------------------------------------

TEST_F(OutletTest, NextInvokeReleasesOnlyWhenMoreThanMinBatchSize) {
  Outlet& outlet = make(accepting_sink(), no_spool({.min_batch_size = 3}));
  outlet.enqueue(make_batch(3));
  outlet.on_invoke();  // 3 is not more than 3: nothing goes
  outlet.enqueue(make_batch(1, "late"));
  EXPECT_EQ(seen.size(), 0u);
  EXPECT_EQ(outlet.counters().queued, 4u);
  outlet.on_invoke();  // 4 > 3
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 4; }));
  EXPECT_EQ(seen.counts.at(0), 4u);
  outlet.begin_shutdown(far_deadline());
  EXPECT_TRUE(outlet.finish_shutdown(far_deadline()));
}

TEST_F(OutletTest, ContinuousReleasesEveryBatchAsItArrives) {
  Outlet& outlet = make(accepting_sink(), no_spool({.flush = {FlushMode::kContinuous}}));
  outlet.enqueue(make_batch(3));
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 3; }));
  outlet.enqueue(make_batch(2, "next"));
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 5; }));
  EXPECT_EQ(seen.size(), 2u);
}

TEST_F(OutletTest, PeriodicReleasesOnItsOwnTimerRepeatedly) {
  Outlet& outlet = make(accepting_sink(), no_spool({.flush = {FlushMode::kPeriodic, 20}}));
  outlet.enqueue(make_batch(2));
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 2; }));
  outlet.enqueue(make_batch(3, "later"));
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 5; }));
}

TEST_F(OutletTest, PeriodicHoldsUntilItsTimerNotOnInvoke) {
  Outlet& outlet = make(accepting_sink(), no_spool({.flush = {FlushMode::kPeriodic, 3600000}}));
  outlet.enqueue(make_batch(2));
  outlet.on_invoke();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(seen.size(), 0u);
  EXPECT_TRUE(outlet.flush_until(far_deadline()));  // the budget flush still releases
  EXPECT_EQ(outlet.counters().delivered, 2u);
}

TEST_F(OutletTest, EndModeDeliversInsideFlushUntil) {
  Outlet& outlet = make(accepting_sink(), no_spool({.flush = {FlushMode::kEnd}}));
  outlet.enqueue(make_batch(4));
  outlet.on_invoke();  // end mode releases at runtimeDone, not on INVOKE
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(seen.size(), 0u);
  EXPECT_TRUE(outlet.flush_until(far_deadline()));
  const OutletCounters c = outlet.counters();  // settled when flush_until returned
  EXPECT_EQ(c.delivered, 4u);
  EXPECT_EQ(c.queued, 0u);
  EXPECT_EQ(c.deferred, 0u);
}

TEST_F(OutletTest, EndModeFlushDoesNotWaitForTelemetryArrivingDuringIt) {
  auto sink = sink_answering([this](int) {
    gate.wait();
    return DeliveryResult{};
  });
  Outlet& outlet = make(std::move(sink), no_spool({.flush = {FlushMode::kEnd}}));
  outlet.enqueue(make_batch(2));
  auto flushed = std::async(std::launch::async,
                            [&] { return outlet.flush_until(Deadline(now_unix_ms() + 30000)); });
  ASSERT_TRUE(eventually([&] { return gate.someone_waiting(); }));
  outlet.enqueue(make_batch(3, "the next invocation's"));  // while the flush's POST is in flight
  gate.open();
  // The flush ends with this invocation's telemetry, not at the 30 s budget.
  ASSERT_EQ(flushed.wait_for(std::chrono::seconds(15)), std::future_status::ready);
  EXPECT_TRUE(flushed.get());
  const OutletCounters c = outlet.counters();
  EXPECT_EQ(c.delivered, 2u);
  EXPECT_EQ(c.queued, 3u);
  EXPECT_EQ(c.deferred, 0u);
}

TEST_F(OutletTest, FlushUntilReturnsAtTheDeadlineAndTheRestIsDeliveredInTheBackground) {
  auto sink = sink_answering([this](int) {
    gate.wait();
    return DeliveryResult{};
  });
  Outlet& outlet = make(std::move(sink), no_spool({.flush = {FlushMode::kEnd}}));
  outlet.enqueue(make_batch(4));
  EXPECT_FALSE(outlet.flush_until(Deadline(now_unix_ms() + 100)));
  OutletCounters c = outlet.counters();
  EXPECT_EQ(c.deferred, 4u);
  EXPECT_EQ(c.queued, 4u);
  EXPECT_EQ(c.delivered, 0u);
  gate.open();
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 4; }));
  EXPECT_EQ(outlet.counters().queued, 0u);
}

TEST_F(OutletTest, AnEventOutlivingSeveralBudgetsIsDeferredOnce) {
  auto sink = sink_answering([this](int) {
    gate.wait();
    return DeliveryResult{};
  });
  Outlet& outlet = make(std::move(sink), no_spool({.flush = {FlushMode::kEnd}}));
  outlet.enqueue(make_batch(4));
  EXPECT_FALSE(outlet.flush_until(Deadline(now_unix_ms() + 50)));
  EXPECT_FALSE(outlet.flush_until(Deadline(now_unix_ms() + 50)));  // same four still stuck
  EXPECT_EQ(outlet.counters().deferred, 4u);
  outlet.enqueue(make_batch(2, "later"));
  EXPECT_FALSE(outlet.flush_until(Deadline(now_unix_ms() + 50)));
  EXPECT_EQ(outlet.counters().deferred, 6u);  // only the two new ones were added
  gate.open();
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 6; }));
}

// ---- retries and batch ids ------------------------------------------------------------------

TEST_F(OutletTest, RetriesTheSameBytesWithTheSameIdUntilAccepted) {
  auto sink = sink_answering([](int call) { return call < 3 ? retry() : DeliveryResult{}; });
  Outlet& outlet = make(std::move(sink), no_spool({.retry_base_ms = 1, .retry_max_ms = 5}));
  outlet.enqueue(make_batch(4));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 4; }));
  const OutletCounters c = outlet.counters();
  EXPECT_EQ(c.events_retried, 8u);  // two failed attempts of four events
  EXPECT_EQ(c.calls_ok, 1u);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen.payloads[0], seen.payloads[2]);
  EXPECT_TRUE(is_hex_id(seen.ids[0])) << seen.ids[0];
  EXPECT_EQ(seen.ids[0], seen.ids[1]);
  EXPECT_EQ(seen.ids[0], seen.ids[2]);
}

TEST_F(OutletTest, EveryDeliveryHasItsOwnId) {
  const TelemetryPost sample = make_batch(1);
  Outlet& outlet = make(accepting_sink(), no_spool({.delivery_max_bytes = sample.byte_size() * 2}));
  outlet.enqueue(make_batch(6));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 6; }));
  std::lock_guard lock(seen.mutex);
  ASSERT_GE(seen.ids.size(), 3u);
  std::set<std::string> distinct(seen.ids.begin(), seen.ids.end());
  EXPECT_EQ(distinct.size(), seen.ids.size());
}

TEST_F(OutletTest, RetryAfterIsWaitedOutEvenWhenTheBackoffIsShorter) {
  auto sink = sink_answering([](int call) { return call == 1 ? retry(400) : DeliveryResult{}; });
  Outlet& outlet = make(std::move(sink), no_spool({.retry_base_ms = 1, .retry_max_ms = 2}));
  outlet.enqueue(make_batch(2));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 2; }));
  std::lock_guard lock(seen.mutex);
  ASSERT_EQ(seen.times.size(), 2u);
  // Deadlines are whole milliseconds of the wall clock: allow the rounding.
  EXPECT_GE(seen.times[1] - seen.times[0], std::chrono::milliseconds(398));
}

TEST_F(OutletTest, RetryAfterSurvivesAnInvokeAndIsBoundedByTheShutdownDeadline) {
  const std::string dir = new_spool_dir();
  auto sink = sink_answering([](int) { return retry(3600000); });  // an hour: capped, still long
  Outlet& outlet = make(std::move(sink), spooling(dir, {.retry_base_ms = 1, .retry_max_ms = 2}));
  outlet.enqueue(make_batch(3));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return calls == 1 && outlet.counters().still_spooled == 3; }));
  outlet.on_invoke();  // cuts our own backoff, not the server's Retry-After
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(calls, 1);
  const uint64_t deadline = now_unix_ms() + 10000;
  outlet.begin_shutdown(Deadline(deadline));
  // Nothing can happen before the deadline: shutdown does not wait for it.
  EXPECT_FALSE(outlet.finish_shutdown(Deadline(deadline)));
  EXPECT_LT(now_unix_ms(), deadline);
  EXPECT_EQ(calls, 1);
  const OutletCounters c = outlet.counters();
  EXPECT_EQ(c.still_spooled, 3u);
  EXPECT_EQ(c.dropped_at_shutdown, 0u);
}

TEST_F(OutletTest, ShutdownRetriesAtOnceInsteadOfWaitingOutTheBackoff) {
  auto sink = sink_answering([](int call) { return call == 1 ? retry() : DeliveryResult{}; });
  // A backoff far longer than the test bound: only the shutdown kick can deliver in time.
  Outlet& outlet =
      make(std::move(sink), no_spool({.retry_base_ms = 600000, .retry_max_ms = 600000}));
  outlet.enqueue(make_batch(1));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().events_retried == 1; }));
  outlet.begin_shutdown(far_deadline());
  EXPECT_TRUE(outlet.finish_shutdown(far_deadline()));
  EXPECT_EQ(outlet.counters().delivered, 1u);
}

TEST_F(OutletTest, DropIsCountedAndTheNextBatchStillGoes) {
  auto sink = sink_answering([](int call) {
    return call == 1 ? DeliveryResult{DeliveryStatus::kDrop, "HTTP 400"} : DeliveryResult{};
  });
  Outlet& outlet = make(std::move(sink), no_spool());
  outlet.enqueue(make_batch(2));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().dropped_by_sink == 2; }));
  outlet.enqueue(make_batch(3));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 3; }));
  EXPECT_EQ(outlet.counters().received, 5u);
}

TEST_F(OutletTest, DiscardedEventsAreCountedApartFromDelivered) {
  auto sink = sink_answering([](int) {
    DeliveryResult result;
    result.discarded = true;
    return result;
  });
  Outlet& outlet = make(std::move(sink), no_spool());
  outlet.enqueue(make_batch(5));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().discarded == 5; }));
  EXPECT_EQ(outlet.counters().delivered, 0u);
}

TEST_F(OutletTest, EventsTheReceiverRejectedAreDroppedTheRestDelivered) {
  auto sink = sink_answering([](int) {
    DeliveryResult result;
    result.rejected_events = 2;
    return result;
  });
  Outlet& outlet = make(std::move(sink), no_spool());
  outlet.enqueue(make_batch(5));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 3; }));
  EXPECT_EQ(outlet.counters().dropped_by_sink, 2u);
  EXPECT_TRUE(outlet.counters().reconciles());
}

TEST_F(OutletTest, ARejectedCountAboveTheDeliveryIsCappedAtIt) {
  auto sink = sink_answering([](int) {
    DeliveryResult result;
    result.rejected_events = 1000;
    return result;
  });
  Outlet& outlet = make(std::move(sink), no_spool());
  outlet.enqueue(make_batch(4));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().dropped_by_sink == 4; }));
  EXPECT_EQ(outlet.counters().delivered, 0u);
  EXPECT_TRUE(outlet.counters().reconciles());
}

TEST_F(OutletTest, DeliveriesAreSplitAtDeliveryMaxBytesInOrder) {
  const TelemetryPost sample = make_batch(1);
  Outlet& outlet = make(accepting_sink(), no_spool({.delivery_max_bytes = sample.byte_size() * 3}));
  outlet.enqueue(make_batch(10));
  outlet.begin_shutdown(far_deadline());
  ASSERT_TRUE(outlet.finish_shutdown(far_deadline()));
  size_t total = 0;
  for (size_t count : seen.counts) {
    EXPECT_LE(count, 3u);
    total += count;
  }
  EXPECT_EQ(total, 10u);
  EXPECT_GT(seen.size(), 3u);
  EXPECT_NE(seen.payloads.front().find("line 0"), std::string::npos);
  EXPECT_NE(seen.payloads.back().find("line 9"), std::string::npos);
}

// ---- spool ------------------------------------------------------------------------------------

TEST_F(OutletTest, AFailedFirstAttemptIsSpooledAtOnce) {
  const std::string dir = new_spool_dir();
  auto sink = sink_answering([](int) { return retry(); });
  Outlet& outlet =
      make(std::move(sink), spooling(dir, {.retry_base_ms = 600000, .retry_max_ms = 600000}));
  outlet.enqueue(make_batch(3));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().spooled == 3; }));
  const OutletCounters c = outlet.counters();
  EXPECT_EQ(c.still_spooled, 3u);
  EXPECT_EQ(c.queued, 0u);  // nothing of it left only in memory
  EXPECT_EQ(spool_files(dir), 1u);
}

TEST_F(OutletTest, RetriesRunFromTheSpoolWithTheSameIdAndBytes) {
  const std::string dir = new_spool_dir();
  auto sink = sink_answering([](int call) { return call < 3 ? retry() : DeliveryResult{}; });
  Outlet& outlet = make(std::move(sink), spooling(dir, {.retry_base_ms = 1, .retry_max_ms = 5}));
  outlet.enqueue(make_batch(3));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 3; }));
  const OutletCounters c = outlet.counters();
  EXPECT_EQ(c.spooled, 3u);
  EXPECT_EQ(c.replayed, 3u);
  EXPECT_EQ(c.still_spooled, 0u);
  EXPECT_EQ(spool_files(dir), 0u);
  std::lock_guard lock(seen.mutex);
  ASSERT_EQ(seen.ids.size(), 3u);
  EXPECT_EQ(seen.ids[0], seen.ids[2]);
  EXPECT_EQ(seen.payloads[0], seen.payloads[2]);
  EXPECT_EQ(seen.counts[2], 3u);  // the replayed delivery still hands the sink its events
}

// "[{}]" fits a std::string's inline buffer: views into it would be left behind when the
// delivery moves (from the spool reader into the attempt), unless its bytes stay on the heap.
TEST_F(OutletTest, ATinyDeliveryKeepsItsEventViewsThroughTheSpool) {
  const std::string dir = new_spool_dir();
  auto sink = sink_answering([](int call) { return call < 2 ? retry() : DeliveryResult{}; });
  Outlet& outlet = make(std::move(sink), spooling(dir, {.retry_base_ms = 1, .retry_max_ms = 5}));
  ParseResult parsed = parse_batch("[{}]");
  ASSERT_TRUE(parsed.batch);
  outlet.enqueue(std::move(*parsed.batch));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 1; }));
  std::lock_guard lock(seen.mutex);
  ASSERT_EQ(seen.first_events.size(), 2u);
  EXPECT_EQ(seen.first_events[0], "{}");
  EXPECT_EQ(seen.first_events[1], "{}");  // replayed from the spool
}

TEST_F(OutletTest, ANewOutletReplaysTheSpoolInOrderWithTheSameIds) {
  const std::string dir = new_spool_dir();
  std::vector<std::string> first_ids;
  std::vector<std::string> first_payloads;
  {
    auto sink = sink_answering([](int) { return retry(); });
    Outlet& outlet =
        make(std::move(sink), spooling(dir, {.retry_base_ms = 600000, .retry_max_ms = 600000}));
    outlet.enqueue(make_batch(2, "first"));
    outlet.on_invoke();
    ASSERT_TRUE(eventually([&] { return outlet.counters().spooled == 2; }));
    outlet.enqueue(make_batch(3, "second"));  // behind the spool: still in memory
    const uint64_t deadline = now_unix_ms() + 200;
    outlet.begin_shutdown(Deadline(deadline));
    EXPECT_FALSE(outlet.finish_shutdown(Deadline(deadline)));
    const OutletCounters c = outlet.counters();
    EXPECT_EQ(c.still_spooled, 5u);
    EXPECT_EQ(c.dropped_at_shutdown, 0u);
    std::lock_guard lock(seen.mutex);
    first_ids = seen.ids;
    first_payloads = seen.payloads;
    destroy(outlet);
  }
  ASSERT_FALSE(first_ids.empty());
  {
    std::lock_guard lock(seen.mutex);
    seen.ids.clear();
    seen.payloads.clear();
  }
  // The next process in the same environment: a new outlet on the same folder.
  Outlet& next = make(accepting_sink(), spooling(dir));
  ASSERT_TRUE(eventually([&] { return next.counters().delivered == 5; }));
  const OutletCounters c = next.counters();
  EXPECT_EQ(c.inherited, 5u);
  EXPECT_EQ(c.replayed, 5u);
  EXPECT_EQ(c.received, 0u);
  EXPECT_EQ(c.still_spooled, 0u);
  std::lock_guard lock(seen.mutex);
  ASSERT_EQ(seen.payloads.size(), 2u);
  EXPECT_EQ(seen.ids[0], first_ids[0]);
  EXPECT_EQ(seen.payloads[0], first_payloads[0]);
  EXPECT_NE(seen.payloads[0].find("first 0"), std::string::npos);
  EXPECT_NE(seen.payloads[1].find("second 0"), std::string::npos);
  EXPECT_TRUE(is_hex_id(seen.ids[1]));
}

TEST_F(OutletTest, MemoryCapSpillsTheOldestToTheSpool) {
  const std::string dir = new_spool_dir();
  const size_t batch = held_bytes(10, "first");
  // Room for two batches of this size, not three.
  const size_t cap = batch * 2 + batch / 2;
  auto sink = sink_answering([this](int) {
    gate.wait();  // the spilled batch is replayed at once: hold it to look at the counters
    return DeliveryResult{};
  });
  Outlet& outlet = make(std::move(sink), spooling(dir, {.buffer_max_bytes = cap}));
  outlet.enqueue(make_batch(10, "first"));
  outlet.enqueue(make_batch(10, "second"));
  outlet.enqueue(make_batch(10, "third"));
  OutletCounters c = outlet.counters();
  EXPECT_EQ(c.spooled, 10u);
  EXPECT_EQ(c.still_spooled, 10u);
  EXPECT_EQ(c.dropped_by_cap, 0u);
  EXPECT_EQ(c.queued, 20u);
  EXPECT_LE(c.queued_bytes, cap);
  gate.open();
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 30; }));
  EXPECT_EQ(outlet.counters().replayed, 10u);
  std::lock_guard lock(seen.mutex);
  EXPECT_NE(seen.payloads.front().find("first 0"), std::string::npos);  // the spool goes first
}

TEST_F(OutletTest, TheCapCountsTheViewsOfEveryEventNotJustTheBytes) {
  // 200 tiny events: their 64-byte views outweigh their bytes, and memory holds both.
  const TelemetryPost batch = make_batch(200, "x");
  EXPECT_GE(held_bytes(200, "x"), batch.byte_size() + 200 * sizeof(TelemetryEvent));
}

TEST_F(OutletTest, MemoryCapDropsTheOldestWithoutASpool) {
  const size_t batch = held_bytes(10, "first");
  const size_t cap = batch * 2 + batch / 2;
  Outlet& outlet = make(accepting_sink(), no_spool({.buffer_max_bytes = cap}));
  outlet.enqueue(make_batch(10, "first"));
  outlet.enqueue(make_batch(10, "second"));
  outlet.enqueue(make_batch(10, "third"));
  const OutletCounters c = outlet.counters();
  EXPECT_EQ(c.dropped_by_cap, 10u);
  EXPECT_EQ(c.queued, 20u);
  EXPECT_LE(c.queued_bytes, cap);
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 20; }));
  std::lock_guard lock(seen.mutex);
  EXPECT_EQ(seen.payloads.front().find("first"), std::string::npos);
}

TEST_F(OutletTest, MemoryCapDropsAndCountsWhenTheSpoolIsFull) {
  const std::string dir = new_spool_dir();
  OutletOptions options = spooling(dir, {.buffer_max_bytes = held_bytes(10, "a") + 1});
  options.spool.max_files = 1;
  auto sink = sink_answering([this](int) {
    gate.wait();  // keeps the spooled file from being replayed and removed
    return DeliveryResult{};
  });
  Outlet& outlet = make(std::move(sink), options);
  outlet.enqueue(make_batch(10, "a"));
  outlet.enqueue(make_batch(10, "b"));  // a -> spool
  outlet.enqueue(make_batch(10, "c"));  // b -> spool full -> dropped
  const OutletCounters c = outlet.counters();
  EXPECT_EQ(c.spooled, 10u);
  EXPECT_EQ(c.dropped_by_cap, 10u);
  EXPECT_EQ(c.queued, 10u);
}

TEST_F(OutletTest, ACorruptSpoolFileIsCountedAndSkipped) {
  const std::string dir = new_spool_dir();
  {
    auto sink = sink_answering([](int) { return retry(); });
    Outlet& outlet =
        make(std::move(sink), spooling(dir, {.retry_base_ms = 600000, .retry_max_ms = 600000}));
    outlet.enqueue(make_batch(4));
    outlet.on_invoke();
    ASSERT_TRUE(eventually([&] { return outlet.counters().spooled == 4; }));
    destroy(outlet);
  }
  ASSERT_EQ(spool_files(dir), 1u);
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".batch") continue;
    std::fstream file(entry.path(), std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(fs::file_size(entry.path()) - 3));
    file.put('#');  // inside the payload: the checksum no longer matches
  }
  Outlet& next = make(accepting_sink(), spooling(dir));
  next.enqueue(make_batch(2, "fresh"));
  next.on_invoke();
  ASSERT_TRUE(eventually([&] { return next.counters().delivered == 2; }));
  const OutletCounters c = next.counters();
  EXPECT_EQ(c.dropped_corrupt, 4u);
  EXPECT_EQ(c.spool_quarantined_files, 1u);
  EXPECT_EQ(c.still_spooled, 0u);
}

// ---- poison deliveries, splits and the dead-letter folder ---------------------------------------

// n events, one of them ("poison") refused by the receiver wherever it is.
TelemetryPost batch_with_poison(int n, int poison_at) {
  std::string body = "[";
  for (int i = 0; i < n; ++i) {
    if (i > 0) body += ",";
    body += R"({"time":"2024-05-14T09:12:05.321Z","type":"function","record":")" +
            std::string(i == poison_at ? "poison" : "fine " + std::to_string(i)) + "\"}";
  }
  ParseResult parsed = parse_batch(body + "]");
  return std::move(*parsed.batch);
}

DeliveryResult refuse_poison(const Delivery& d) {
  if (d.json.find("poison") != std::string::npos) {
    return DeliveryResult{DeliveryStatus::kRetry, "HTTP 500 (the receiver's parser gave up)"};
  }
  return DeliveryResult{};
}

OutletOptions quick_retries(OutletOptions options) {
  options.flush = {FlushMode::kContinuous};
  options.retry_base_ms = 1;
  options.retry_max_ms = 5;
  return options;
}

TEST_F(OutletTest, APoisonIsIsolatedByHalvingWhileTheRestIsDeliveredThenDeadLettered) {
  const std::string dir = new_spool_dir();
  OutletOptions options = quick_retries(spooling(dir));
  options.retry_max_attempts = 2;
  options.retry_max_age_ms = 0;
  Outlet& outlet = make(sink_judging(refuse_poison), options);
  outlet.enqueue(batch_with_poison(20, 7));
  // Lambda keeps sending: later telemetry arrives after the poison's first failure.
  ASSERT_TRUE(eventually([&] { return outlet.counters().calls_retry >= 1; }));
  for (int i = 0; i < 5; ++i) outlet.enqueue(make_batch(3, "later " + std::to_string(i)));
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 34; }))
      << describe(outlet.counters());
  // Telemetry goes on arriving and being delivered: that is the evidence against the poison.
  ASSERT_TRUE(eventually([&] {
    outlet.enqueue(make_batch(1, "tick"));
    return outlet.counters().dead_lettered == 1;
  })) << describe(outlet.counters());
  ASSERT_TRUE(eventually([&] {
    const OutletCounters c = outlet.counters();
    return c.delivered + 1 == c.received;
  })) << describe(outlet.counters());
  const OutletCounters c = outlet.counters();
  EXPECT_EQ(c.dropped(), 0u);
  EXPECT_EQ(c.still_spooled, 0u);
  EXPECT_GE(c.splits, 4u);  // 20 -> 10 -> 5 -> 3 -> 2 -> 1
  EXPECT_EQ(spool_files(dir), 0u);
  EXPECT_EQ(spool_files(dir + "/dead-letter"), 1u);
  // Halves carry ids derived from the whole's: their retries stay deduplicable.
  std::lock_guard lock(seen.mutex);
  const auto split = std::find_if(seen.ids.begin(), seen.ids.end(), [](const std::string& id) {
    return id.size() > 32 && is_hex_id(id.substr(0, 32)) && id.substr(32, 2) == ".1";
  });
  EXPECT_NE(split, seen.ids.end());
}

TEST_F(OutletTest, ASinkWideOutageNeverDeadLettersOrSplits) {
  const std::string dir = new_spool_dir();
  OutletOptions options = quick_retries(spooling(dir));
  options.retry_max_attempts = 1;
  options.retry_max_age_ms = 0;
  receiver_down = true;
  Outlet& outlet = make(
      sink_judging([this](const Delivery&) { return receiver_down ? retry() : DeliveryResult{}; }),
      options);
  for (int i = 0; i < 5; ++i) outlet.enqueue(make_batch(2, "batch " + std::to_string(i)));
  ASSERT_TRUE(eventually([&] { return calls >= 40; }));
  OutletCounters c = outlet.counters();
  EXPECT_EQ(c.dead_lettered, 0u);
  EXPECT_EQ(c.splits, 0u);
  receiver_down = false;
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 10; }));
  c = outlet.counters();
  EXPECT_EQ(c.dead_lettered, 0u);
  EXPECT_EQ(c.still_spooled, 0u);
}

TEST_F(OutletTest, TheNextProcessOnTheSameSpoolIsNotBlockedByAPoisonEither) {
  const std::string dir = new_spool_dir();
  OutletOptions options = quick_retries(spooling(dir));  // no dead-lettering within this test
  {
    Outlet& first = make(sink_judging(refuse_poison), options);
    first.enqueue(batch_with_poison(1, 0));
    ASSERT_TRUE(eventually([&] { return first.counters().calls_retry >= 2; }));
    first.begin_shutdown(Deadline(now_unix_ms() + 100));
    first.finish_shutdown(Deadline(now_unix_ms() + 100));
    EXPECT_EQ(first.counters().still_spooled, 1u);
    destroy(first);
  }
  Outlet& second = make(sink_judging(refuse_poison), options);
  second.enqueue(make_batch(3, "fresh"));
  ASSERT_TRUE(eventually([&] { return second.counters().delivered == 3; }))
      << describe(second.counters());
  EXPECT_EQ(second.counters().inherited, 1u);
  EXPECT_EQ(second.counters().still_spooled, 1u);
}

TEST_F(OutletTest, TooLargeIsSplitDownToSingleEventsAndOnlyTheOneTooLargeIsDropped) {
  auto too_large = [](const Delivery& d) {
    if (d.events.size() > 3 || d.json.find("poison") != std::string::npos) {
      DeliveryResult result{DeliveryStatus::kDrop, "HTTP 413 Payload Too Large"};
      result.too_large = true;
      return result;
    }
    return DeliveryResult{};
  };
  Outlet& outlet = make(sink_judging(too_large), no_spool({.flush = {FlushMode::kContinuous}}));
  outlet.enqueue(batch_with_poison(10, 4));
  ASSERT_TRUE(eventually([&] {
    const OutletCounters c = outlet.counters();
    return c.delivered == 9 && c.dropped_by_sink == 1;
  })) << describe(outlet.counters());
  EXPECT_EQ(outlet.counters().queued, 0u);
  std::lock_guard lock(seen.mutex);
  const std::string whole = seen.ids.front();
  ASSERT_TRUE(is_hex_id(whole));
  for (const std::string& id : seen.ids) {
    EXPECT_EQ(id.substr(0, 32), whole);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef.12"), std::string::npos) << id;
  }
}

TEST_F(OutletTest, ASpooledFileIsCountedByTheEventsItHoldsNotByItsHeader) {
  const std::string dir = new_spool_dir();
  const TelemetryPost three = make_batch(3, "forged");
  {
    Spool spool(SpoolLimits{dir});
    // The count is the offset table's length: the spool refuses a forged one (spool_test).
    ASSERT_TRUE(spool.put("forged", *three.body, three.events, nullptr));
  }
  Outlet& outlet = make(accepting_sink(), spooling(dir));
  ASSERT_TRUE(eventually([&] { return outlet.counters().still_spooled == 0; }));
  const OutletCounters c = outlet.counters();
  EXPECT_EQ(c.delivered, 3u);
  EXPECT_EQ(c.replayed, 3u);
  EXPECT_EQ(c.inherited, 3u);
}

// ---- FATAL --------------------------------------------------------------------------------------

TEST_F(OutletTest, FatalDisablesTheSinkAndSpoolsItsTelemetry) {
  const std::string dir = new_spool_dir();
  auto sink = sink_answering([](int) {
    return DeliveryResult{DeliveryStatus::kFatal, "credentials revoked"};
  });
  Outlet& outlet = make(std::move(sink), spooling(dir));
  outlet.enqueue(make_batch(2));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().disabled; }));
  outlet.enqueue(make_batch(3));
  outlet.on_invoke();
  EXPECT_TRUE(outlet.flush_until(Deadline(now_unix_ms() + 1000)));
  const OutletCounters c = outlet.counters();
  EXPECT_EQ(c.spooled, 5u);
  EXPECT_EQ(c.still_spooled, 5u);
  EXPECT_EQ(c.dropped_disabled, 0u);
  EXPECT_EQ(calls, 1);  // never called again
  outlet.begin_shutdown(far_deadline());
  outlet.finish_shutdown(far_deadline());
  EXPECT_EQ(calls, 1);
}

TEST_F(OutletTest, FatalWithoutASpoolCountsEverythingAsDroppedDisabled) {
  auto sink = sink_answering([](int) {
    return DeliveryResult{DeliveryStatus::kFatal, "credentials revoked"};
  });
  Outlet& outlet = make(std::move(sink), no_spool());
  outlet.enqueue(make_batch(2));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().dropped_disabled == 2; }));
  outlet.enqueue(make_batch(3));
  outlet.on_invoke();
  EXPECT_EQ(outlet.counters().dropped_disabled, 5u);
  EXPECT_EQ(outlet.counters().received, 5u);
}

// ---- shutdown -----------------------------------------------------------------------------------

TEST_F(OutletTest, ShutdownLeftoversAreSpooled) {
  const std::string dir = new_spool_dir();
  auto sink = sink_answering([](int) { return retry(); });
  Outlet& outlet = make(std::move(sink), spooling(dir, {.retry_base_ms = 1, .retry_max_ms = 2}));
  outlet.enqueue(make_batch(7));
  const uint64_t deadline = now_unix_ms() + 200;
  outlet.begin_shutdown(Deadline(deadline));
  EXPECT_FALSE(outlet.finish_shutdown(Deadline(deadline)));
  const OutletCounters c = outlet.counters();
  EXPECT_EQ(c.still_spooled, 7u);
  EXPECT_EQ(c.dropped_at_shutdown, 0u);
  EXPECT_EQ(c.delivered, 0u);
  EXPECT_GE(c.events_retried, 7u);
}

TEST_F(OutletTest, ShutdownWithoutASpoolCountsWhatTheSinkNeverAccepted) {
  auto sink = sink_answering([](int) { return retry(); });
  Outlet& outlet = make(std::move(sink), no_spool({.retry_base_ms = 1, .retry_max_ms = 2}));
  outlet.enqueue(make_batch(7));
  const uint64_t deadline = now_unix_ms() + 200;
  outlet.begin_shutdown(Deadline(deadline));
  EXPECT_FALSE(outlet.finish_shutdown(Deadline(deadline)));
  const OutletCounters c = outlet.counters();
  EXPECT_EQ(c.dropped_at_shutdown, 7u);
  EXPECT_EQ(c.delivered, 0u);
  EXPECT_GE(c.events_retried, 7u);
}

TEST_F(OutletTest, ShutdownWithAHangingSinkSpoolsTheDeliveryInFlight) {
  const std::string dir = new_spool_dir();
  auto sink = sink_answering([this](int) {
    gate.wait();
    return DeliveryResult{};
  });
  Outlet& outlet = make(std::move(sink), spooling(dir));
  outlet.enqueue(make_batch(3));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return gate.someone_waiting(); }));
  outlet.enqueue(make_batch(2, "held"));
  const uint64_t deadline = now_unix_ms() + 200;
  outlet.begin_shutdown(Deadline(deadline));
  EXPECT_FALSE(outlet.finish_shutdown(Deadline(deadline)));
  const OutletCounters c = outlet.counters();
  EXPECT_EQ(c.still_spooled, 5u);
  EXPECT_EQ(c.queued, 0u);
  EXPECT_EQ(c.delivered, 0u);
}

TEST_F(OutletTest, BatchesArrivingAfterShutdownSettledAreSpooledOrCounted) {
  const std::string dir = new_spool_dir();
  Outlet& spooled = make(accepting_sink(), spooling(dir));
  Outlet& plain = make(accepting_sink(), no_spool());
  for (Outlet* outlet : {&spooled, &plain}) {
    outlet->begin_shutdown(far_deadline());
    ASSERT_TRUE(outlet->finish_shutdown(far_deadline()));
    outlet->enqueue(make_batch(4));
  }
  EXPECT_EQ(spooled.counters().still_spooled, 4u);
  EXPECT_EQ(plain.counters().dropped_at_shutdown, 4u);
  EXPECT_EQ(plain.counters().queued, 0u);
}

// ---- flush on pressure, outages, and the INVOKE path ----------------------------------------

// Modes that would otherwise hold the telemetry: the high-water mark releases it anyway.
class PressureTest : public OutletTest, public ::testing::WithParamInterface<FlushPolicy> {};

TEST_P(PressureTest, HeldTelemetryAtTheHighWaterMarkGoesWithoutAnInvoke) {
  const size_t batch_bytes = held_bytes(10, "a");
  Outlet& outlet = make(accepting_sink(), no_spool({.min_batch_size = 1000000,
                                                    .flush = GetParam(),
                                                    .flush_high_water_bytes = batch_bytes * 2}));
  outlet.enqueue(make_batch(10, "a"));
  EXPECT_EQ(outlet.counters().queued, 10u);  // below the mark: the mode decides
  outlet.enqueue(make_batch(10, "b"));
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 20; }))
      << describe(outlet.counters());
  EXPECT_EQ(outlet.counters().dropped_by_cap, 0u);
}

INSTANTIATE_TEST_SUITE_P(Modes, PressureTest,
                         ::testing::Values(FlushPolicy{FlushMode::kNextInvoke},
                                           FlushPolicy{FlushMode::kEnd},
                                           FlushPolicy{FlushMode::kPeriodic, 3600000}));

TEST_F(OutletTest, ABurstManyTimesTheCapLosesNothingWhileTheSinkAccepts) {
  // The seed's rule alone would hold all of it until the next INVOKE, and the cap would drop
  // most of it (the spool here takes two files).
  const std::string dir = new_spool_dir();
  const size_t batch_bytes = held_bytes(50, "burst100");
  OutletOptions options = spooling(dir, {.min_batch_size = 1000000,
                                         .flush_high_water_bytes = batch_bytes * 2,
                                         .buffer_max_bytes = batch_bytes * 8});
  options.spool.max_files = 2;
  Outlet& outlet = make(accepting_sink(), options);
  size_t peak = 0;
  for (int i = 0; i < 200; ++i) {  // 40x the cap
    outlet.enqueue(make_batch(50, "burst" + std::to_string(i)));
    peak = std::max<size_t>(peak, outlet.counters().queued_bytes);
    // A receiver that keeps up: memory comes back under the cap between arrivals.
    ASSERT_TRUE(eventually([&] { return outlet.counters().queued_bytes < batch_bytes * 4; }))
        << "at batch " << i << ": " << describe(outlet.counters());
  }
  outlet.begin_shutdown(far_deadline());  // the last batch is below the mark: held till now
  EXPECT_TRUE(outlet.finish_shutdown(far_deadline()));
  EXPECT_EQ(outlet.counters().delivered, 200u * 50) << describe(outlet.counters());
  const OutletCounters c = outlet.counters();
  EXPECT_EQ(c.dropped_by_cap, 0u);
  EXPECT_EQ(c.spooled, 0u);
  EXPECT_LE(peak, batch_bytes * 8);
}

TEST_F(OutletTest, ArrivalsDuringAnOutageAreOnDiskBeforeEnqueueReturns) {
  const std::string dir = new_spool_dir();
  {
    auto sink = sink_answering([](int) { return retry(600000); });  // a long Retry-After
    Outlet& outlet = make(std::move(sink), spooling(dir, {.flush = {FlushMode::kContinuous}}));
    outlet.enqueue(make_batch(4, "first"));
    ASSERT_TRUE(eventually([&] { return outlet.counters().spooled == 4; }));
    outlet.enqueue(make_batch(3, "during"));  // no waiting: on disk when this returns
    const OutletCounters c = outlet.counters();
    EXPECT_EQ(c.still_spooled, 7u);
    EXPECT_EQ(c.queued, 0u);
    EXPECT_EQ(spool_files(dir), 2u);
    destroy(outlet);  // as a SIGKILL would: no shutdown
  }
  Outlet& next = make(accepting_sink(), spooling(dir));
  ASSERT_TRUE(eventually([&] { return next.counters().delivered == 7; }));
  EXPECT_EQ(next.counters().inherited, 7u);
  std::lock_guard lock(seen.mutex);
  ASSERT_EQ(seen.payloads.size(), 3u);  // the failed attempt, then the replay in order
  EXPECT_NE(seen.payloads[1].find("first 0"), std::string::npos);
  EXPECT_NE(seen.payloads[2].find("during 0"), std::string::npos);
}

TEST_F(OutletTest, WhatWasHeldWhenAnOutageBeganIsSpooledToo) {
  const std::string dir = new_spool_dir();
  auto sink = sink_answering([this](int) {
    gate.wait();
    return retry(600000);
  });
  Outlet& outlet = make(std::move(sink), spooling(dir));
  outlet.enqueue(make_batch(4, "first"));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return gate.someone_waiting(); }));
  outlet.enqueue(make_batch(3, "held"));  // next-invoke: held in memory, the sink still healthy
  EXPECT_EQ(outlet.counters().queued, 7u);
  gate.open();  // the first attempt fails
  ASSERT_TRUE(eventually([&] { return outlet.counters().still_spooled == 7; }))
      << describe(outlet.counters());
  EXPECT_EQ(outlet.counters().queued, 0u);
}

TEST_F(OutletTest, ASpoolTooFullForAnOutageKeepsArrivalsInMemory) {
  const std::string dir = new_spool_dir();
  OutletOptions options = spooling(dir, {.flush = {FlushMode::kContinuous}});
  options.spool.max_files = 1;
  Outlet& outlet = make(sink_answering([](int) { return retry(600000); }), options);
  outlet.enqueue(make_batch(4, "first"));
  ASSERT_TRUE(eventually([&] { return outlet.counters().spooled == 4; }));
  outlet.enqueue(make_batch(3, "kept"));
  const OutletCounters c = outlet.counters();
  EXPECT_EQ(c.still_spooled, 4u);
  EXPECT_EQ(c.queued, 3u);
  EXPECT_EQ(c.dropped(), 0u);
}

// The INVOKE path (on_invoke, and the counters the lifecycle may log) takes the outlet's lock
// only for a few counters. Held by a latch, not a timer: the bound below only keeps a broken
// build from hanging the suite.
bool returns_while_held(const std::function<void()>& work) {
  auto done = std::async(std::launch::async, work);
  return done.wait_for(std::chrono::seconds(20)) == std::future_status::ready;
}

TEST_F(OutletTest, TheInvokePathIsNotHeldByASinkInDeliver) {
  auto sink = sink_answering([this](int) {
    gate.wait();
    return DeliveryResult{};
  });
  Outlet& outlet = make(std::move(sink), no_spool({.flush = {FlushMode::kContinuous}}));
  outlet.enqueue(make_batch(2, "first"));
  ASSERT_TRUE(eventually([&] { return gate.someone_waiting(); }));
  EXPECT_TRUE(returns_while_held([&] {
    outlet.enqueue(make_batch(3, "second"));
    outlet.on_invoke();
    (void)outlet.counters();
  }));
  EXPECT_EQ(calls.load(), 1);  // still inside the first deliver()
  gate.open();
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 5; }));
}

TEST_F(OutletTest, TheInvokePathIsNotHeldByASpoolWriteInItsFsync) {
  const std::string dir = new_spool_dir();
  Gate fsync_gate;
  std::atomic<int> in_fsync{0};
  OutletOptions options = spooling(dir, {.flush = {FlushMode::kContinuous}});
  options.spool.before_fsync_for_test = [&] {
    ++in_fsync;
    fsync_gate.wait();
  };
  Outlet& outlet = make(sink_answering([](int) { return retry(600000); }), options);
  outlet.enqueue(make_batch(2));  // fails, and the outlet thread spools it
  ASSERT_TRUE(eventually([&] { return in_fsync.load() == 1; }));
  EXPECT_TRUE(returns_while_held([&] {
    outlet.on_invoke();
    (void)outlet.counters();
  }));
  EXPECT_EQ(in_fsync.load(), 1);
  EXPECT_EQ(outlet.counters().spooled, 0u);  // the write has not finished
  fsync_gate.open();
  ASSERT_TRUE(eventually([&] { return outlet.counters().spooled == 2; }));
}

TEST_F(OutletTest, TheInvokePathIsNotHeldByAnOverflowBeingSpooled) {
  // The listener thread spills over the cap into the spool; an INVOKE meanwhile is not held.
  const std::string dir = new_spool_dir();
  const size_t batch_bytes = held_bytes(10, "a");
  Gate fsync_gate;
  std::atomic<int> in_fsync{0};
  OutletOptions options = spooling(
      dir, {.flush_high_water_bytes = batch_bytes * 100, .buffer_max_bytes = batch_bytes * 2});
  options.spool.before_fsync_for_test = [&] {
    ++in_fsync;
    fsync_gate.wait();
  };
  Outlet& outlet = make(accepting_sink(), options);
  outlet.enqueue(make_batch(10, "a"));
  outlet.enqueue(make_batch(10, "b"));
  auto listener = std::async(std::launch::async, [&] { outlet.enqueue(make_batch(10, "c")); });
  ASSERT_TRUE(eventually([&] { return in_fsync.load() == 1; }));
  EXPECT_TRUE(returns_while_held([&] {
    outlet.on_invoke();
    (void)outlet.counters();
  }));
  fsync_gate.open();
  listener.get();
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 30; }))
      << describe(outlet.counters());
  EXPECT_EQ(outlet.counters().dropped_by_cap, 0u);
}

// ---- the shutdown contract: flush once, then destroy once, after the last deliver --------------

TEST_F(OutletTest, FlushAndDestroyFollowTheLastDeliveryOnceEach) {
  auto sink = std::make_unique<::testing::StrictMock<MockSink>>();
  {
    ::testing::InSequence order;
    EXPECT_CALL(*sink, deliver(_, _)).WillOnce(Return(DeliveryResult{}));
    EXPECT_CALL(*sink, flush(_)).WillOnce(Return(DeliveryResult{}));
    EXPECT_CALL(*sink, destroy());
  }
  Outlet& outlet = make(std::move(sink), no_spool());
  outlet.enqueue(make_batch(3));
  outlet.begin_shutdown(far_deadline());
  ASSERT_TRUE(outlet.finish_shutdown(far_deadline()));
  EXPECT_TRUE(outlet.flush_sink(far_deadline()));
  EXPECT_FALSE(outlet.flush_sink(far_deadline())) << "once";
  outlet.destroy_sink();
  outlet.destroy_sink();  // once
  EXPECT_FALSE(outlet.counters().flush_failed);
  EXPECT_EQ(outlet.counters().delivered, 3u);
}

TEST_F(OutletTest, AFailedFlushIsLoggedWithTheSinksWordsAndCounted) {
  auto sink = std::make_unique<NiceMock<MockSink>>();
  ON_CALL(*sink, flush(_))
      .WillByDefault(Return(DeliveryResult{DeliveryStatus::kRetry, "buffer not sent: timeout"}));
  EXPECT_CALL(*sink, destroy());
  Outlet& outlet = make(std::move(sink), no_spool());
  const testing::LogCapture capture("relay.outlet");
  outlet.begin_shutdown(far_deadline());
  ASSERT_TRUE(outlet.finish_shutdown(far_deadline()));
  EXPECT_FALSE(outlet.flush_sink(far_deadline()));
  outlet.destroy_sink();
  EXPECT_TRUE(outlet.counters().flush_failed);
  EXPECT_THAT(capture.lines(),
              ::testing::Contains(::testing::AllOf(::testing::HasSubstr("flush at shutdown"),
                                                   ::testing::HasSubstr("RETRY"),
                                                   ::testing::HasSubstr("buffer not sent"))));
}

TEST_F(OutletTest, ADisabledSinkIsDestroyedWithoutAFlush) {
  auto sink = std::make_unique<::testing::StrictMock<MockSink>>();
  EXPECT_CALL(*sink, deliver(_, _))
      .WillOnce(Return(DeliveryResult{DeliveryStatus::kFatal, "unusable"}));
  EXPECT_CALL(*sink, destroy());
  Outlet& outlet = make(std::move(sink), no_spool({.flush = {FlushMode::kContinuous}}));
  outlet.enqueue(make_batch(1));
  ASSERT_TRUE(eventually([&] { return outlet.counters().disabled; }));
  outlet.begin_shutdown(far_deadline());
  outlet.finish_shutdown(far_deadline());
  EXPECT_FALSE(outlet.flush_sink(far_deadline()));
  outlet.destroy_sink();
  EXPECT_FALSE(outlet.counters().flush_failed);
}

TEST_F(OutletTest, ASinkStuckInDeliverIsNeitherFlushedNorDestroyed) {
  auto sink = std::make_unique<NiceMock<MockSink>>();
  ON_CALL(*sink, deliver(_, _)).WillByDefault(Invoke([this](const Delivery&, uint64_t) {
    gate.wait();
    return DeliveryResult{};
  }));
  EXPECT_CALL(*sink, flush(_)).Times(0);
  EXPECT_CALL(*sink, destroy()).Times(0);
  Outlet& outlet = make(std::move(sink), no_spool({.flush = {FlushMode::kContinuous}}));
  outlet.enqueue(make_batch(2));
  ASSERT_TRUE(eventually([&] { return gate.someone_waiting(); }));
  const Deadline soon = Deadline::in(std::chrono::milliseconds(50));
  outlet.begin_shutdown(soon);
  EXPECT_FALSE(outlet.finish_shutdown(soon));
  EXPECT_FALSE(outlet.flush_sink(far_deadline()));
  outlet.destroy_sink();
  EXPECT_EQ(outlet.counters().dropped_at_shutdown, 2u) << "no spool: counted";
  gate.open();  // the outlet's destructor joins its thread once the sink returns
  destroy(outlet);
}

TEST_F(OutletTest, NoFlushOnceTheCloseDeadlinePassed) {
  auto sink = std::make_unique<::testing::StrictMock<MockSink>>();
  EXPECT_CALL(*sink, destroy());
  Outlet& outlet = make(std::move(sink), no_spool());
  outlet.begin_shutdown(far_deadline());
  ASSERT_TRUE(outlet.finish_shutdown(far_deadline()));
  EXPECT_FALSE(outlet.flush_sink(Deadline(now_unix_ms() - 1)));
  outlet.destroy_sink();
}

}  // namespace
}  // namespace relay
