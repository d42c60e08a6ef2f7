// Pipeline: consume reads platform fields and own log lines from the parser, whatever the JSON's
// spacing or key order, and fans each POST out to every outlet; shutdown delivers, then flushes
// and destroys every sink; summary_json reports the listener and every sink.
#include "pipeline.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "batch_parser.h"
#include "mock_sink.h"
#include "test_support.h"

namespace relay {
namespace {

using ::testing::_;
using ::testing::Invoke;
using testing::make_batch;
using testing::MockSink;
using ::testing::NiceMock;
using ::testing::Return;

TelemetryPost report_for(const std::string& id) {
  std::string body = R"([{"time":"t","type":"platform.report","record":{"requestId":")" + id +
                     R"(","status":"success","metrics":{"durationMs":1.5}}}])";
  return std::move(*parse_batch(std::move(body)).batch);
}

OutletOptions min_batch(int64_t size) {
  OutletOptions options;
  options.min_batch_size = size;
  options.spool.enabled = false;
  return options;
}

OutletOptions no_spool() {
  OutletOptions options;
  options.spool.enabled = false;
  return options;
}

// A sink that answers RETRY to its first call and OK after.
std::unique_ptr<MockSink> answering_retry_once() {
  auto sink = std::make_unique<NiceMock<MockSink>>();
  auto calls = std::make_shared<std::atomic<int>>(0);
  ON_CALL(*sink, deliver(_, _)).WillByDefault(Invoke([calls](const Delivery&, uint64_t) {
    return ++*calls == 1 ? DeliveryResult{DeliveryStatus::kRetry, "later"} : DeliveryResult{};
  }));
  ON_CALL(*sink, flush(_)).WillByDefault(Return(DeliveryResult{}));
  return sink;
}

OutletOptions fast_retries() {
  OutletOptions options = no_spool();
  options.retry_base_ms = 1;
  options.retry_max_ms = 2;
  return options;
}

TelemetryPost parsed(std::string body) {
  ParseResult result = parse_batch(std::move(body));
  EXPECT_TRUE(result.batch.has_value()) << result.error.message;
  return result.batch ? std::move(*result.batch) : TelemetryPost{};
}

// One invocation's platform events, and lines of ours and of another extension, written three
// ways. The function log carries a requestId of its own that must not count as anything.
const char* const kCompact =
    R"([{"time":"t","type":"platform.start","record":{"requestId":"req-1","version":"$LATEST"}},)"
    R"({"time":"t","type":"function","record":{"requestId":"req-fn","message":"hello"}},)"
    R"({"time":"t","type":"platform.runtimeDone","record":{"requestId":"req-1","status":"success"}},)"
    R"({"time":"t","type":"platform.logsDropped","record":{"droppedBytes":100,"droppedRecords":7,"reason":"r"}},)"
    R"({"time":"t","type":"platform.logsDropped","record":{"droppedBytes":10,"droppedRecords":3,"reason":"r"}},)"
    R"({"time":"t","type":"extension","record":"telemetry-relay Information [relay.main] x"},)"
    R"({"time":"t","type":"extension","record":{"level":"INFO","message":"telemetry-relay Error [relay.x] y"}},)"
    R"({"time":"t","type":"extension","record":{"message":"another extension says telemetry-relay is fine"}},)"
    R"({"time":"t","type":"platform.report","record":{"requestId":"req-1","metrics":{"durationMs":1.5}}}])";

const char* const kPretty = R"([
  { "time" : "t", "type" : "platform.start", "record" : { "requestId" : "req-1", "version" : "$LATEST" } },
  { "time" : "t", "type" : "function", "record" : { "requestId" : "req-fn", "message" : "hello" } },
  { "time" : "t", "type" : "platform.runtimeDone",
    "record" : {
      "requestId" : "req-1",
      "status" : "success"
    }
  },
  { "time" : "t", "type" : "platform.logsDropped", "record" : { "droppedBytes" : 100, "droppedRecords" : 7, "reason" : "r" } },
  { "time" : "t", "type" : "platform.logsDropped", "record" : { "droppedBytes" : 10, "droppedRecords" :	3, "reason" : "r" } },
  { "time" : "t", "type" : "extension", "record" : "telemetry-relay Information [relay.main] x" },
  { "time" : "t", "type" : "extension", "record" : { "level" : "INFO", "message" : "telemetry-relay Error [relay.x] y" } },
  { "time" : "t", "type" : "extension", "record" : { "message" : "another extension says telemetry-relay is fine" } },
  { "time" : "t", "type" : "platform.report", "record" : { "requestId" : "req-1", "metrics" : { "durationMs" : 1.5 } } }
])";

const char* const kReordered =
    R"([{"record":{"version":"$LATEST","requestId":"req-1"},"type":"platform.start","time":"t"},)"
    R"({"record":{"message":"hello","requestId":"req-fn"},"time":"t","type":"function"},)"
    R"({"record":{"status":"success","requestId":"req-1"},"time":"t","type":"platform.runtimeDone"},)"
    R"({"record":{"reason":"r","droppedRecords":7,"droppedBytes":100},"type":"platform.logsDropped","time":"t"},)"
    R"({"type":"platform.logsDropped","record":{"reason":"r","droppedRecords":3,"droppedBytes":10},"time":"t"},)"
    R"({"record":"telemetry-relay Information [relay.main] x","type":"extension","time":"t"},)"
    R"({"record":{"message":"telemetry-relay Error [relay.x] y","level":"INFO"},"time":"t","type":"extension"},)"
    R"({"time":"t","record":{"nested":{"message":"telemetry-relay z"},"message":"another extension says telemetry-relay is fine"},"type":"extension"},)"
    R"({"record":{"metrics":{"durationMs":1.5,"requestId":"not-this-one"},"requestId":"req-1"},"time":"t","type":"platform.report"}])";

struct Observed {
  PipelineCounters counters;
  bool runtime_done_seen = false;
  bool report_seen = false;
  bool function_request_id_seen = false;
};

Observed consume(const char* body) {
  Pipeline pipeline({}, PipelineOptions{.drop_own_log_lines = true});
  pipeline.consume(parsed(body));
  Observed seen;
  seen.counters = pipeline.counters();
  // The deadlines are already past: only what consume() noted can make these true.
  seen.runtime_done_seen = pipeline.tracker().wait_for_runtime_done("req-1", Deadline(0));
  seen.report_seen = pipeline.tracker().wait_for_report("req-1", 0, Deadline(0));
  seen.function_request_id_seen = pipeline.tracker().wait_for_report("req-fn", 0, Deadline(0)) ||
                                  pipeline.tracker().wait_for_runtime_done("req-fn", Deadline(0));
  return seen;
}

TEST(PipelinePlatformFields, PrettyAndReorderedJsonGiveTheSameResultsAsCompact) {
  for (const char* body : {kCompact, kPretty, kReordered}) {
    const Observed seen = consume(body);
    EXPECT_TRUE(seen.runtime_done_seen) << body;
    EXPECT_TRUE(seen.report_seen) << body;
    EXPECT_FALSE(seen.function_request_id_seen) << body;
    EXPECT_EQ(seen.counters.platform_logs_dropped_records, 10u) << body;
    EXPECT_EQ(seen.counters.own_log_lines_dropped, 2u) << body;
    EXPECT_EQ(seen.counters.events, 7u) << body;
    EXPECT_EQ(seen.counters.posts, 1u) << body;
  }
}

TEST(PipelinePlatformFields, OwnLogLinesAreKeptWhenTheGuardIsOff) {
  Pipeline pipeline({}, PipelineOptions{.drop_own_log_lines = false});
  pipeline.consume(parsed(kPretty));
  EXPECT_EQ(pipeline.counters().own_log_lines_dropped, 0u);
  EXPECT_EQ(pipeline.counters().events, 9u);
}

TEST(PipelinePlatformFields, OnlyTheTopLevelMessageMarksAnOwnLine) {
  Pipeline pipeline({}, PipelineOptions{.drop_own_log_lines = true});
  pipeline.consume(parsed(
      R"([{"type":"extension","record":{"data":{"message":"telemetry-relay nested"}}},)"
      R"({"type":"extension","record":{"message":"says \"telemetry-relay x\""}},)"
      R"({"type":"extension","record":"another line: telemetry-relay x"},)"
      R"({"type":"function","record":"telemetry-relay Information [relay.main] a function's line"},)"
      R"({"type":"extension","record":{ "message"  :  "telemetry-relay Warning [relay.y] z" }}])"));
  EXPECT_EQ(pipeline.counters().own_log_lines_dropped, 1u);
  EXPECT_EQ(pipeline.counters().events, 4u);
}

TEST(PipelinePlatformFields, AHostileDroppedRecordsCountSaturates) {
  Pipeline pipeline({}, PipelineOptions{});
  pipeline.consume(
      parsed(R"([{"type":"platform.logsDropped","record":{"droppedRecords":18446744073709551615}},)"
             R"({"type":"platform.logsDropped","record":{"droppedRecords":5}}])"));
  EXPECT_EQ(pipeline.counters().platform_logs_dropped_records, UINT64_MAX);
}

Poco::JSON::Object::Ptr summary_of(const Pipeline& pipeline) {
  return Poco::JSON::Parser().parse(pipeline.summary_json()).extract<Poco::JSON::Object::Ptr>();
}

TEST(PipelineSummary, HasTheListenerSectionOnceWatched) {
  Pipeline pipeline({}, PipelineOptions{});
  EXPECT_FALSE(summary_of(pipeline)->has("listener"));

  ListenerStats stats;
  stats.posts = 9;
  stats.bytes = 9000;
  stats.events = 90;
  stats.rejected_malformed = 2;
  stats.rejected_malformed_bytes = 20;
  stats.rejected_method = 1;
  stats.rejected_too_large = 3;
  stats.rejected_too_large_bytes = 3'000'000;
  stats.internal_errors = 4;
  stats.internal_error_bytes = 400;
  pipeline.watch_listener(stats);
  Poco::JSON::Object::Ptr listener = summary_of(pipeline)->getObject("listener");
  ASSERT_TRUE(listener);
  EXPECT_EQ(listener->getValue<uint64_t>("accepted_requests"), 9u);
  EXPECT_EQ(listener->getValue<uint64_t>("accepted_bytes"), 9000u);
  EXPECT_EQ(listener->getValue<uint64_t>("rejected_requests"), 2u + 1u + 3u + 4u);
  EXPECT_EQ(listener->getValue<uint64_t>("rejected_bytes"), 20u + 3'000'000u + 400u);
  auto tally = [&](const std::string& name, const std::string& field) {
    Poco::JSON::Object::Ptr reason = listener->getObject(name);
    return reason ? reason->getValue<uint64_t>(field) : UINT64_MAX;
  };
  EXPECT_EQ(tally("bad_request", "requests"), 2u);
  EXPECT_EQ(tally("bad_request", "bytes"), 20u);
  EXPECT_EQ(tally("method_not_allowed", "requests"), 1u);
  EXPECT_EQ(tally("method_not_allowed", "bytes"), 0u);
  EXPECT_EQ(tally("too_large", "requests"), 3u);
  EXPECT_EQ(tally("too_large", "bytes"), 3'000'000u);
  EXPECT_EQ(tally("internal_error", "requests"), 4u);
  EXPECT_EQ(tally("internal_error", "bytes"), 400u);
  // Read live: a later rejection shows in the next summary.
  ++stats.rejected_method;
  EXPECT_EQ(summary_of(pipeline)->getObject("listener")->getValue<uint64_t>("rejected_requests"),
            11u);
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
  pipeline.shutdown(testing::shutdown_window(std::chrono::seconds(10)));
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
  pipeline.shutdown(testing::shutdown_window(std::chrono::seconds(10)));
  EXPECT_EQ(pipeline.outlets()[0]->counters().delivered, 5u);
}

TEST(Pipeline, AReportSeenByTheDrainIsAlreadyQueuedInEveryOutlet) {
  auto sink = std::make_unique<NiceMock<MockSink>>();
  ON_CALL(*sink, deliver(_, _)).WillByDefault(Return(DeliveryResult{}));
  std::vector<std::unique_ptr<Outlet>> outlets;
  // A minimum no batch reaches, so nothing leaves the queue while the test looks at it.
  outlets.push_back(std::make_unique<Outlet>(std::move(sink), min_batch(1000)));
  Pipeline pipeline(std::move(outlets), PipelineOptions{});
  for (int round = 0; round < 50; ++round) {
    const std::string id = "req-" + std::to_string(round);
    std::thread listener([&] { pipeline.consume(report_for(id)); });
    ASSERT_TRUE(
        pipeline.tracker().wait_for_report(id, 20000, Deadline::in(std::chrono::seconds(20))));
    EXPECT_EQ(pipeline.outlets()[0]->counters().received, static_cast<uint64_t>(round + 1));
    listener.join();
  }
}

// The close phase of SHUTDOWN: each sink is flushed once, then destroyed once; a failed flush
// shows in the summary.
TEST(PipelineShutdown, FlushesThenDestroysEverySinkAndReportsAFailedFlush) {
  auto good = std::make_unique<::testing::StrictMock<MockSink>>("good");
  auto bad = std::make_unique<::testing::StrictMock<MockSink>>("bad");
  for (MockSink* sink : {static_cast<MockSink*>(good.get()), static_cast<MockSink*>(bad.get())}) {
    ::testing::InSequence order;
    EXPECT_CALL(*sink, deliver(_, _)).WillOnce(Return(DeliveryResult{}));
    EXPECT_CALL(*sink, flush(_))
        .WillOnce(Return(sink->name() == "good"
                             ? DeliveryResult{}
                             : DeliveryResult{DeliveryStatus::kRetry, "still buffered"}));
    EXPECT_CALL(*sink, destroy());
  }
  std::vector<std::unique_ptr<Outlet>> outlets;
  outlets.push_back(std::make_unique<Outlet>(std::move(good), no_spool()));
  outlets.push_back(std::make_unique<Outlet>(std::move(bad), no_spool()));
  Pipeline pipeline(std::move(outlets), PipelineOptions{});
  pipeline.consume(make_batch(2));
  EXPECT_TRUE(pipeline.shutdown(testing::shutdown_window(std::chrono::seconds(20))));
  const auto root =
      Poco::JSON::Parser().parse(pipeline.summary_json()).extract<Poco::JSON::Object::Ptr>();
  EXPECT_FALSE(root->getObject("sinks")->getObject("good")->has("flush_failed"));
  EXPECT_TRUE(root->getObject("sinks")->getObject("bad")->getValue<bool>("flush_failed"));
}

TEST(PipelineSummary, CarriesEveryCounterAndTheBalance) {
  std::vector<std::unique_ptr<Outlet>> outlets;
  outlets.push_back(std::make_unique<Outlet>(answering_retry_once(), fast_retries()));
  Pipeline pipeline(std::move(outlets), PipelineOptions{});
  pipeline.consume(make_batch(3));
  pipeline.shutdown(testing::shutdown_window(std::chrono::seconds(20)));
  Poco::JSON::Parser parser;
  const auto root = parser.parse(pipeline.summary_json()).extract<Poco::JSON::Object::Ptr>();
  EXPECT_EQ(root->getValue<uint64_t>("received_events"), 3u);
  const auto sink = root->getObject("sinks")->getObject("mock");
  ASSERT_TRUE(sink);
  EXPECT_EQ(sink->getValue<uint64_t>("received"), 3u);
  EXPECT_EQ(sink->getValue<uint64_t>("delivered"), 3u);
  EXPECT_EQ(sink->getValue<uint64_t>("events_retried"), 3u);
  EXPECT_TRUE(sink->getValue<bool>("balanced"));
  for (const char* key :
       {"discarded", "dropped_by_cap", "dropped_by_sink", "dropped_at_shutdown", "dropped_disabled",
        "dropped_corrupt", "still_spooled", "queued", "deferred", "spooled", "replayed"}) {
    EXPECT_TRUE(sink->has(key)) << key;
  }
}

}  // namespace
}  // namespace relay
