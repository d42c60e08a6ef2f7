#include "outlet.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>

#include "test_support.h"

namespace relay {
namespace {

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
  std::vector<size_t> counts;
  void add(const Delivery& d) {
    std::lock_guard lock(mutex);
    payloads.push_back(d.json);
    counts.push_back(d.events.size());
  }
  size_t size() {
    std::lock_guard lock(mutex);
    return payloads.size();
  }
};

uint64_t far_deadline() { return now_unix_ms() + 20000; }

TEST(Outlet, InvokeReleasesOnlyWhenMoreThanMinBatchSize) {
  auto sink = std::make_unique<NiceMock<MockSink>>();
  Recorder seen;
  ON_CALL(*sink, deliver(_, _)).WillByDefault(Invoke([&](const Delivery& d, uint64_t) {
    seen.add(d);
    return DeliveryResult{};
  }));
  Outlet outlet(std::move(sink), OutletOptions{.min_batch_size = 3});

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

TEST(Outlet, EqualToMinBatchSizeStaysQueuedUntilShutdown) {
  auto sink = std::make_unique<NiceMock<MockSink>>();
  auto* raw = sink.get();
  Recorder seen;
  ON_CALL(*raw, deliver(_, _)).WillByDefault(Invoke([&](const Delivery& d, uint64_t) {
    seen.add(d);
    return DeliveryResult{};
  }));
  Outlet outlet(std::move(sink), OutletOptions{.min_batch_size = 5});
  outlet.enqueue(make_batch(5));
  outlet.on_invoke();
  EXPECT_EQ(outlet.counters().delivered, 0u);
  EXPECT_CALL(*raw, flush(_)).WillOnce(Return(DeliveryResult{}));
  outlet.begin_shutdown(far_deadline());
  EXPECT_TRUE(outlet.finish_shutdown(far_deadline()));
  EXPECT_EQ(outlet.counters().delivered, 5u);
  ASSERT_EQ(seen.size(), 1u);
}

TEST(Outlet, DeliveryIsTheOriginalEventBytesAsAJsonArray) {
  auto sink = std::make_unique<NiceMock<MockSink>>();
  Recorder seen;
  std::string types;
  ON_CALL(*sink, deliver(_, _)).WillByDefault(Invoke([&](const Delivery& d, uint64_t) {
    seen.add(d);
    for (const auto& e : d.events) types += std::string(e.type) + "|" + std::string(e.record) + ";";
    return DeliveryResult{};
  }));
  Outlet outlet(std::move(sink), OutletOptions{});
  outlet.enqueue(make_batch(2, "a"));
  outlet.enqueue(make_batch(1, "b", "platform.start"));
  outlet.begin_shutdown(far_deadline());
  ASSERT_TRUE(outlet.finish_shutdown(far_deadline()));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen.payloads[0],
            R"([{"time":"2024-05-14T09:12:05.321Z","type":"function","record":"a 0"},)"
            R"({"time":"2024-05-14T09:12:05.321Z","type":"function","record":"a 1"},)"
            R"({"time":"2024-05-14T09:12:05.321Z","type":"platform.start","record":"b 0"}])");
  EXPECT_EQ(types, "function|\"a 0\";function|\"a 1\";platform.start|\"b 0\";");
}

TEST(Outlet, RetriesTheSameBytesUntilAccepted) {
  auto sink = std::make_unique<NiceMock<MockSink>>();
  Recorder seen;
  std::atomic<int> calls{0};
  ON_CALL(*sink, deliver(_, _)).WillByDefault(Invoke([&](const Delivery& d, uint64_t) {
    seen.add(d);
    return ++calls < 3 ? DeliveryResult{DeliveryStatus::kRetry, "HTTP 500"} : DeliveryResult{};
  }));
  Outlet outlet(std::move(sink), OutletOptions{.retry_base_ms = 1, .retry_max_ms = 5});
  outlet.enqueue(make_batch(4));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 4; }));
  const OutletCounters c = outlet.counters();
  EXPECT_EQ(c.retries, 2u);
  EXPECT_EQ(c.deliveries, 1u);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen.payloads[0], seen.payloads[2]);
}

TEST(Outlet, DropIsCountedAndTheNextBatchStillGoes) {
  auto sink = std::make_unique<NiceMock<MockSink>>();
  std::atomic<int> calls{0};
  ON_CALL(*sink, deliver(_, _)).WillByDefault(Invoke([&](const Delivery&, uint64_t) {
    return ++calls == 1 ? DeliveryResult{DeliveryStatus::kDrop, "HTTP 400"} : DeliveryResult{};
  }));
  Outlet outlet(std::move(sink), OutletOptions{});
  outlet.enqueue(make_batch(2));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().dropped_by_sink == 2; }));
  outlet.enqueue(make_batch(3));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().delivered == 3; }));
  EXPECT_EQ(outlet.counters().received, 5u);
}

TEST(Outlet, FatalDisablesTheSinkAndCountsEverythingAfter) {
  auto sink = std::make_unique<NiceMock<MockSink>>();
  EXPECT_CALL(*sink, deliver(_, _))
      .WillOnce(Return(DeliveryResult{DeliveryStatus::kFatal, "credentials revoked"}));
  Outlet outlet(std::move(sink), OutletOptions{});
  outlet.enqueue(make_batch(2));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().dropped_disabled == 2; }));
  outlet.enqueue(make_batch(3));
  outlet.on_invoke();
  EXPECT_EQ(outlet.counters().dropped_disabled, 5u);
  EXPECT_EQ(outlet.counters().received, 5u);
}

TEST(Outlet, QueueCapDropsOldestAndCounts) {
  auto sink = std::make_unique<NiceMock<MockSink>>();
  ON_CALL(*sink, deliver(_, _)).WillByDefault(Return(DeliveryResult{}));
  const TelemetryBatch sample = make_batch(10);
  // Room for two batches of this size, not three.
  Outlet outlet(std::move(sink),
                OutletOptions{.queue_max_bytes = sample.byte_size() * 2 + sample.byte_size() / 2});
  outlet.enqueue(make_batch(10, "first"));
  outlet.enqueue(make_batch(10, "second"));
  outlet.enqueue(make_batch(10, "third"));
  const OutletCounters c = outlet.counters();
  EXPECT_EQ(c.dropped_by_cap, 10u);
  EXPECT_EQ(c.queued, 20u);
  EXPECT_LE(c.queued_bytes, sample.byte_size() * 2 + sample.byte_size() / 2);
}

TEST(Outlet, DeliveriesAreSplitAtDeliveryMaxBytesInOrder) {
  auto sink = std::make_unique<NiceMock<MockSink>>();
  Recorder seen;
  ON_CALL(*sink, deliver(_, _)).WillByDefault(Invoke([&](const Delivery& d, uint64_t) {
    seen.add(d);
    return DeliveryResult{};
  }));
  const TelemetryBatch sample = make_batch(1);
  Outlet outlet(std::move(sink), OutletOptions{.delivery_max_bytes = sample.byte_size() * 3});
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

TEST(Outlet, ShutdownDeadlineCountsWhatASinkNeverAccepted) {
  auto sink = std::make_unique<NiceMock<MockSink>>();
  ON_CALL(*sink, deliver(_, _))
      .WillByDefault(Return(DeliveryResult{DeliveryStatus::kRetry, "down"}));
  Outlet outlet(std::move(sink), OutletOptions{.retry_base_ms = 1, .retry_max_ms = 2});
  outlet.enqueue(make_batch(7));
  const uint64_t deadline = now_unix_ms() + 200;
  outlet.begin_shutdown(deadline);
  EXPECT_FALSE(outlet.finish_shutdown(deadline));
  const OutletCounters c = outlet.counters();
  EXPECT_EQ(c.dropped_at_shutdown, 7u);
  EXPECT_EQ(c.delivered, 0u);
  EXPECT_GE(c.retries, 1u);
}

TEST(Outlet, ShutdownRetriesAtOnceInsteadOfWaitingOutTheBackoff) {
  auto sink = std::make_unique<NiceMock<MockSink>>();
  std::atomic<int> calls{0};
  ON_CALL(*sink, deliver(_, _)).WillByDefault(Invoke([&](const Delivery&, uint64_t) {
    return ++calls == 1 ? DeliveryResult{DeliveryStatus::kRetry, "once"} : DeliveryResult{};
  }));
  // A backoff far longer than the test bound: only the shutdown kick can deliver in time.
  Outlet outlet(std::move(sink), OutletOptions{.retry_base_ms = 600000, .retry_max_ms = 600000});
  outlet.enqueue(make_batch(1));
  outlet.on_invoke();
  ASSERT_TRUE(eventually([&] { return outlet.counters().retries == 1; }));
  outlet.begin_shutdown(far_deadline());
  EXPECT_TRUE(outlet.finish_shutdown(far_deadline()));
  EXPECT_EQ(outlet.counters().delivered, 1u);
}

}  // namespace
}  // namespace relay

namespace relay {
namespace {

TEST(Outlet, BatchesArrivingAfterShutdownSettledAreCountedAsDropped) {
  auto sink = std::make_unique<NiceMock<MockSink>>();
  ON_CALL(*sink, deliver(_, _)).WillByDefault(Return(DeliveryResult{}));
  Outlet outlet(std::move(sink), OutletOptions{});
  outlet.begin_shutdown(now_unix_ms() + 10000);
  ASSERT_TRUE(outlet.finish_shutdown(now_unix_ms() + 10000));
  outlet.enqueue(make_batch(4));
  const OutletCounters c = outlet.counters();
  EXPECT_EQ(c.received, 4u);
  EXPECT_EQ(c.dropped_at_shutdown, 4u);
  EXPECT_EQ(c.queued, 0u);
}

}  // namespace
}  // namespace relay
