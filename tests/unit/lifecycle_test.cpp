#include "lifecycle.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>

#include "test_support.h"

namespace relay {
namespace {

using ::testing::_;
using ::testing::Invoke;
using testing::make_batch;
using testing::MockSink;
using ::testing::NiceMock;
using ::testing::Return;
using ::testing::StrictMock;

class MockExtensionsApi : public ExtensionsApi {
 public:
  MOCK_METHOD(Registration, register_extension,
              (const std::string&, const std::vector<std::string>&), (override));
  MOCK_METHOD(LifecycleEvent, next, (), (override));
  MOCK_METHOD(SubscribeResult, subscribe, (const SubscribeRequest&), (override));
  MOCK_METHOD(bool, init_error, (const std::string&, const std::string&), (override));
  MOCK_METHOD(bool, exit_error, (const std::string&, const std::string&), (override));
};

LifecycleEvent invoke(const std::string& id) {
  LifecycleEvent e;
  e.type = LifecycleEvent::Type::kInvoke;
  e.request_id = id;
  e.deadline_ms = static_cast<int64_t>(now_unix_ms()) + 3000;
  return e;
}

LifecycleEvent shutdown_event(int64_t in_ms) {
  LifecycleEvent e;
  e.type = LifecycleEvent::Type::kShutdown;
  e.shutdown_reason = "spindown";
  e.deadline_ms = static_cast<int64_t>(now_unix_ms()) + in_ms;
  return e;
}

TelemetryBatch report_for(const std::string& id) {
  std::string body = R"([{"time":"t","type":"platform.report","record":{"requestId":")" + id +
                     R"(","status":"success","metrics":{"durationMs":1.5}}}])";
  return std::move(*parse_batch(std::move(body)).batch);
}

TEST(Lifecycle, InvokeReleasesAndShutdownDeliversEverythingThenReturnsZero) {
  auto sink = std::make_unique<NiceMock<MockSink>>();
  std::atomic<int> delivered{0};
  ON_CALL(*sink, deliver(_, _)).WillByDefault(Invoke([&](const Delivery& d, uint64_t) {
    delivered += static_cast<int>(d.events.size());
    return DeliveryResult{};
  }));
  ON_CALL(*sink, flush(_)).WillByDefault(Return(DeliveryResult{}));
  std::vector<std::unique_ptr<Outlet>> outlets;
  outlets.push_back(std::make_unique<Outlet>(std::move(sink), OutletOptions{}));
  Pipeline pipeline(std::move(outlets), PipelineOptions{});

  StrictMock<MockExtensionsApi> api;
  std::thread late_listener;
  EXPECT_CALL(api, next())
      .WillOnce(Invoke([&] {
        pipeline.consume(make_batch(3));
        return invoke("req-1");
      }))
      .WillOnce(Invoke([&] {
        // The report of req-1 arrives only after SHUTDOWN, as in Lambda.
        late_listener = std::thread([&] {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          pipeline.consume(report_for("req-1"));
        });
        return shutdown_event(10000);
      }));
  Lifecycle lifecycle(api, pipeline, LifecycleOptions{.shutdown_quiet_ms = 5000});
  EXPECT_EQ(lifecycle.run(), 0);
  late_listener.join();
  EXPECT_EQ(lifecycle.invocations(), 1u);
  // The quiet period is long: only seeing req-1's report can end the drain with it delivered.
  EXPECT_EQ(delivered.load(), 4);
  EXPECT_EQ(pipeline.outlets()[0]->counters().delivered, 4u);
}

TEST(Lifecycle, NextFailureReportsExitErrorAndReturnsNonZero) {
  Pipeline pipeline({}, PipelineOptions{});
  StrictMock<MockExtensionsApi> api;
  EXPECT_CALL(api, next())
      .WillOnce(::testing::Throw(LambdaApiError("event/next answered 403", 403, "{}")));
  EXPECT_CALL(api, exit_error("Extension.NextFailed", _)).WillOnce(Return(true));
  Lifecycle lifecycle(api, pipeline, LifecycleOptions{});
  EXPECT_EQ(lifecycle.run(), 1);
}

TEST(Lifecycle, UnknownEventTypesAreIgnored) {
  Pipeline pipeline({}, PipelineOptions{});
  StrictMock<MockExtensionsApi> api;
  LifecycleEvent odd;
  odd.raw_type = "RESTORE";
  EXPECT_CALL(api, next()).WillOnce(Return(odd)).WillOnce(Return(shutdown_event(2000)));
  Lifecycle lifecycle(api, pipeline, LifecycleOptions{.shutdown_quiet_ms = 10});
  EXPECT_EQ(lifecycle.run(), 0);
}

TEST(Pipeline, DropsOwnLogLinesAndCountsPlatformLogsDropped) {
  auto sink = std::make_unique<NiceMock<MockSink>>();
  std::atomic<int> delivered{0};
  ON_CALL(*sink, deliver(_, _)).WillByDefault(Invoke([&](const Delivery& d, uint64_t) {
    delivered += static_cast<int>(d.events.size());
    return DeliveryResult{};
  }));
  std::vector<std::unique_ptr<Outlet>> outlets;
  outlets.push_back(std::make_unique<Outlet>(std::move(sink), OutletOptions{}));
  Pipeline pipeline(std::move(outlets), PipelineOptions{.drop_own_log_lines = true});
  std::string body =
      R"([{"time":"t","type":"extension","record":"telemetry-relay Information [relay.main] x"},)"
      R"({"time":"t","type":"extension","record":{"message":"telemetry-relay Error [relay.x] y"}},)"
      R"({"time":"t","type":"extension","record":"another extension's line"},)"
      R"({"time":"t","type":"platform.logsDropped","record":{"droppedBytes":10,"droppedRecords":7,"reason":"r"}}])";
  pipeline.consume(std::move(*parse_batch(std::move(body)).batch));
  const PipelineCounters c = pipeline.counters();
  EXPECT_EQ(c.own_log_lines_dropped, 2u);
  EXPECT_EQ(c.platform_logs_dropped_records, 7u);
  EXPECT_EQ(c.events, 2u);
  pipeline.shutdown(now_unix_ms() + 10000);
  EXPECT_EQ(delivered.load(), 2);
  EXPECT_NE(pipeline.summary_json().find("\"platform_logs_dropped\":7"), std::string::npos);
}

TEST(Pipeline, FansOutToEverySinkIndependently) {
  auto slow = std::make_unique<NiceMock<MockSink>>("slow");
  auto fast = std::make_unique<NiceMock<MockSink>>("fast");
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  ON_CALL(*slow, deliver(_, _)).WillByDefault(Invoke([released](const Delivery&, uint64_t) {
    released.wait();  // blocks until the test lets it go
    return DeliveryResult{};
  }));
  ON_CALL(*fast, deliver(_, _)).WillByDefault(Return(DeliveryResult{}));
  std::vector<std::unique_ptr<Outlet>> outlets;
  outlets.push_back(std::make_unique<Outlet>(std::move(slow), OutletOptions{}));
  outlets.push_back(std::make_unique<Outlet>(std::move(fast), OutletOptions{}));
  Pipeline pipeline(std::move(outlets), PipelineOptions{});
  pipeline.consume(make_batch(2));
  pipeline.on_invoke();
  pipeline.consume(make_batch(3));
  pipeline.on_invoke();
  // The fast sink gets everything although the slow one is stuck in its first delivery.
  EXPECT_TRUE(
      testing::eventually([&] { return pipeline.outlets()[1]->counters().delivered == 5; }));
  EXPECT_EQ(pipeline.outlets()[0]->counters().delivered, 0u);
  release.set_value();
  pipeline.shutdown(now_unix_ms() + 10000);
  EXPECT_EQ(pipeline.outlets()[0]->counters().delivered, 5u);
}

}  // namespace
}  // namespace relay

namespace relay {
namespace {

TEST(Pipeline, AReportSeenByTheDrainIsAlreadyQueuedInEveryOutlet) {
  auto sink = std::make_unique<NiceMock<MockSink>>();
  ON_CALL(*sink, deliver(_, _)).WillByDefault(Return(DeliveryResult{}));
  std::vector<std::unique_ptr<Outlet>> outlets;
  // A minimum no batch reaches, so nothing leaves the queue while the test looks at it.
  outlets.push_back(
      std::make_unique<Outlet>(std::move(sink), OutletOptions{.min_batch_size = 1000}));
  Pipeline pipeline(std::move(outlets), PipelineOptions{});
  for (int round = 0; round < 50; ++round) {
    const std::string id = "req-" + std::to_string(round);
    std::thread listener([&] { pipeline.consume(report_for(id)); });
    ASSERT_TRUE(pipeline.wait_for_report(id, 20000, now_unix_ms() + 20000));
    EXPECT_EQ(pipeline.outlets()[0]->counters().received, static_cast<uint64_t>(round + 1));
    listener.join();
  }
}

}  // namespace
}  // namespace relay
