// The built otlp sink (librelay-sink-otlp.so), loaded like the host loads it and driven against
// local HTTP servers: its configuration, the requests it sends, and what it tells the host about
// retries, refusals and partial successes. End-to-end runs in the emulator are in
// tests/integration/otlp_test.cpp.
#include <Poco/InflatingStream.h>
#include <gtest/gtest.h>
#include <opentelemetry/proto/collector/logs/v1/logs_service.pb.h>
#include <opentelemetry/proto/collector/metrics/v1/metrics_service.pb.h>
#include <opentelemetry/proto/collector/trace/v1/trace_service.pb.h>
#include <stdlib.h>

#include <sstream>
#include <string>
#include <telemetry_relay/testing.hpp>
#include <vector>

#include "http_test_servers.hpp"

namespace {

namespace sdk_testing = relay::sdk::testing;
namespace logs_pb = opentelemetry::proto::collector::logs::v1;
namespace trace_pb = opentelemetry::proto::collector::trace::v1;
using relay::test::StubServer;

constexpr const char* kArn = "arn:aws:lambda:eu-west-1:123456789012:function:orders:prod";

std::string gunzip(const std::string& body) {
  std::istringstream in(body);
  Poco::InflatingInputStream inflate(in, Poco::InflatingStreamBuf::STREAM_GZIP);
  return std::string(std::istreambuf_iterator<char>(inflate), {});
}

std::string attribute(const opentelemetry::proto::resource::v1::Resource& resource,
                      const std::string& key) {
  for (const auto& kv : resource.attributes()) {
    if (kv.key() == key) {
      return kv.value().has_int_value() ? std::to_string(kv.value().int_value())
                                        : kv.value().string_value();
    }
  }
  return "<absent>";
}

class OtlpSinkTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("AWS_LAMBDA_FUNCTION_NAME", "orders", 1);
    setenv("AWS_LAMBDA_FUNCTION_VERSION", "7", 1);
    setenv("AWS_REGION", "eu-west-1", 1);
    setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256", 1);
    setenv("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/29/[7]abc", 1);
    setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod,team=pay%2Cments", 1);
    library_ = new sdk_testing::Library(RELAY_PLUGIN_DIR "/librelay-sink-otlp.so");
  }
  static void TearDownTestSuite() {
    delete library_;
    library_ = nullptr;
  }

  void SetUp() override {
    // One invocation: its start, a text line and a JSON line, its end and its report.
    batch_.id("0123456789abcdef0123456789abcdef")
        .function_arn(kArn)
        .add(
            R"({"time":"2024-05-14T09:12:04.110Z","type":"platform.start","record":{"requestId":"r1","version":"7","tracing":{"spanId":"24cd7d670fa455f0","type":"X-Amzn-Trace-Id","value":"Root=1-6352a70e-1e2c502e358361800241fd45;Parent=35465b3a9e2f7c6a;Sampled=1"}}})")
        .add(
            R"({"time":"2024-05-14T09:12:04.115Z","type":"function","record":"2024-05-14T09:12:04.114Z\tr1\tWARN\tslow query"})")
        .add(
            R"({"time":"2024-05-14T09:12:04.116Z","type":"function","record":{"timestamp":"2024-05-14T09:12:04.116Z","level":"ERROR","requestId":"r1","message":"failed","code":42}})")
        .add(
            R"({"time":"2024-05-14T09:12:04.121Z","type":"platform.runtimeDone","record":{"requestId":"r1","status":"success","metrics":{"durationMs":10.6,"producedBytes":4}}})")
        .add(
            R"({"time":"2024-05-14T09:12:04.140Z","type":"platform.report","record":{"requestId":"r1","status":"success","metrics":{"durationMs":29.87,"billedDurationMs":30,"memorySizeMB":256,"maxMemoryUsedMB":71}}})");
  }

  sdk_testing::SinkInstance create(const sdk_testing::KeyValues& config) {
    return sdk_testing::SinkInstance::create(library_->descriptor(), host_, config);
  }

  static std::vector<relay::test::Recorded> to_path(const StubServer& server,
                                                    const std::string& path) {
    std::vector<relay::test::Recorded> out;
    for (auto& request : server.requests()) {
      if (request.uri == path) out.push_back(request);
    }
    return out;
  }

  static sdk_testing::Library* library_;
  sdk_testing::FakeHost host_;
  sdk_testing::BatchBuilder batch_;
};

sdk_testing::Library* OtlpSinkTest::library_ = nullptr;

TEST_F(OtlpSinkTest, WithoutAnEndpointTelemetryIsDiscardedAndSaidSo) {
  auto sink = create({});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  const auto outcome = sink.deliver(batch_.build());
  EXPECT_TRUE(outcome.ok());
  EXPECT_TRUE(outcome.discarded);
  EXPECT_TRUE(host_.logged("RELAY_OTLP_ENDPOINT is not set"));
}

TEST_F(OtlpSinkTest, GrpcUnknownSignalsAndBadHeadersAreRefusedClearly) {
  auto grpc = create({{"endpoint", "http://127.0.0.1:4317"}, {"protocol", "grpc"}});
  EXPECT_FALSE(grpc.created());
  EXPECT_NE(grpc.create_outcome().error.find("grpc is not supported"), std::string::npos);

  auto signals = create({{"endpoint", "http://127.0.0.1:4318"}, {"signals", "logs,profiles"}});
  EXPECT_FALSE(signals.created());
  EXPECT_NE(signals.create_outcome().error.find("unknown signal 'profiles'"), std::string::npos);

  auto headers =
      create({{"endpoint", "http://127.0.0.1:4318"}, {"headers", "api-key=s3cr3t,broken"}});
  EXPECT_FALSE(headers.created());
  EXPECT_NE(headers.create_outcome().error.find("RELAY_OTLP_HEADERS"), std::string::npos);
  EXPECT_EQ(headers.create_outcome().error.find("s3cr3t"), std::string::npos);
}

TEST_F(OtlpSinkTest, ABaseEndpointGetsEachSignalsPathWithHeadersGzipAndTheBatchId) {
  StubServer server;
  auto sink = create({{"endpoint", server.url("http", "127.0.0.1", "/otlp/")},
                      {"headers", "x-api-key=k%3D1, x-team = pay"}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  ASSERT_TRUE(sink.deliver(batch_.build()).ok());

  const auto logs = to_path(server, "/otlp/v1/logs");
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(to_path(server, "/otlp/v1/traces").size(), 1u);
  EXPECT_EQ(to_path(server, "/otlp/v1/metrics").size(), 1u);
  EXPECT_EQ(logs[0].content_type, "application/x-protobuf");
  EXPECT_EQ(logs[0].headers.get("Content-Encoding", ""), "gzip");
  EXPECT_EQ(logs[0].headers.get("x-api-key", ""), "k=1");
  EXPECT_EQ(logs[0].headers.get("x-team", ""), "pay");
  EXPECT_EQ(logs[0].headers.get("X-Telemetry-Relay-Batch-Id", ""),
            "0123456789abcdef0123456789abcdef");

  logs_pb::ExportLogsServiceRequest request;
  ASSERT_TRUE(request.ParseFromString(gunzip(logs[0].body)));
  ASSERT_EQ(request.resource_logs_size(), 1);
  const auto& resource = request.resource_logs(0).resource();
  EXPECT_EQ(attribute(resource, "service.name"), "orders");
  EXPECT_EQ(attribute(resource, "cloud.account.id"), "123456789012");
  EXPECT_EQ(attribute(resource, "cloud.region"), "eu-west-1");
  EXPECT_EQ(attribute(resource, "faas.max_memory"), std::to_string(256 * 1024 * 1024));
  EXPECT_EQ(attribute(resource, "faas.instance"), "2026/11/29/[7]abc");
  EXPECT_EQ(attribute(resource, "team"), "pay,ments");
  const auto& scope_logs = request.resource_logs(0).scope_logs(0);
  EXPECT_EQ(scope_logs.scope().name(), "telemetry-relay");
  ASSERT_EQ(scope_logs.log_records_size(), 2);
  EXPECT_EQ(scope_logs.log_records(0).body().string_value(), "slow query");
  EXPECT_EQ(scope_logs.log_records(0).severity_text(), "WARN");
  EXPECT_EQ(scope_logs.log_records(1).body().string_value(), "failed");
  EXPECT_EQ(scope_logs.log_records(1).trace_id().size(), 16u);
}

TEST_F(OtlpSinkTest, ARetryResendsOnlyTheSignalsNotYetAccepted) {
  StubServer logs_and_metrics;
  StubServer traces;
  traces.respond(503, "busy", {{"Retry-After", "2"}});
  auto sink = create({{"logs_endpoint", logs_and_metrics.url("http", "127.0.0.1", "/logs")},
                      {"metrics_endpoint", logs_and_metrics.url("http", "127.0.0.1", "/metrics")},
                      {"traces_endpoint", traces.url("http", "127.0.0.1", "/traces")},
                      {"compression", "none"}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;

  const auto first = sink.deliver(batch_.build());
  EXPECT_EQ(first.status, RELAY_RETRY);
  EXPECT_EQ(first.retry_after_ms, 2000u);
  EXPECT_NE(first.error.find("traces"), std::string::npos);
  EXPECT_EQ(to_path(logs_and_metrics, "/logs").size(), 1u);
  EXPECT_EQ(to_path(logs_and_metrics, "/metrics").size(), 0u);  // after traces: not reached

  traces.respond(200);
  EXPECT_TRUE(sink.deliver(batch_.build()).ok());            // the host's retry: same batch id
  EXPECT_EQ(to_path(logs_and_metrics, "/logs").size(), 1u);  // not sent twice
  EXPECT_EQ(to_path(traces, "/traces").size(), 2u);
  EXPECT_EQ(to_path(logs_and_metrics, "/metrics").size(), 1u);
  trace_pb::ExportTraceServiceRequest spans;
  ASSERT_TRUE(spans.ParseFromString(to_path(traces, "/traces").back().body));
  EXPECT_GE(spans.resource_spans(0).scope_spans(0).spans_size(), 1);
}

TEST_F(OtlpSinkTest, RejectedLogRecordsOfAPartialSuccessAreDroppedEventsForTheHost) {
  StubServer server;
  server.respond(200, R"({"partialSuccess":{"rejectedLogRecords":"1","errorMessage":"too old"}})",
                 {{"Content-Type", "application/json"}});
  auto sink = create({{"endpoint", server.url("http", "127.0.0.1", "")},
                      {"protocol", "http/json"},
                      {"signals", "logs"}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  const auto outcome = sink.deliver(batch_.build());
  EXPECT_TRUE(outcome.ok());
  EXPECT_EQ(outcome.rejected_events, 1u);
  EXPECT_TRUE(host_.logged("the receiver rejected 1 log records: too old"));
  EXPECT_EQ(to_path(server, "/v1/traces").size(), 0u);  // signals=logs
  EXPECT_EQ(to_path(server, "/v1/logs")[0].content_type, "application/json");
}

TEST_F(OtlpSinkTest, ARefusedRequestIsCountedAndLoggedOncePerStatus) {
  StubServer server;
  server.respond(400, "bad request");
  auto sink = create({{"endpoint", server.url("http", "127.0.0.1", "")}, {"signals", "logs"}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  for (int i = 0; i < 3; ++i) {
    const auto outcome = sink.deliver(batch_.id("batch" + std::to_string(i)).build());
    EXPECT_TRUE(outcome.ok());
    EXPECT_EQ(outcome.rejected_events, 2u);  // both log records: dropped for the host's counts
  }
  size_t lines = 0;
  std::string all;
  for (const auto& line : host_.lines()) {
    // At the host's default level (info): the client's per-request lines are debug.
    lines += line.level != RELAY_LOG_DEBUG && line.message.find("HTTP 400") != std::string::npos;
    all += line.message + "\n";
  }
  EXPECT_EQ(lines, 1u) << all;
}

TEST_F(OtlpSinkTest, LogRecordsWaitingForTheirStartAreExportedAtFlush) {
  StubServer server;
  auto sink = create({{"endpoint", server.url("http", "127.0.0.1", "")},
                      {"compression", "none"},
                      {"signals", "logs"}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  sdk_testing::BatchBuilder early;
  early.add(
      R"({"time":"2024-05-14T09:12:04.115Z","type":"function","record":"2024-05-14T09:12:04.114Z\tr9\tINFO\tbefore my start"})");
  EXPECT_TRUE(sink.deliver(early.build()).ok());
  EXPECT_TRUE(to_path(server, "/v1/logs").empty());  // held for its platform.start
  EXPECT_TRUE(sink.flush().ok());
  const auto logs = to_path(server, "/v1/logs");
  ASSERT_EQ(logs.size(), 1u);
  logs_pb::ExportLogsServiceRequest request;
  ASSERT_TRUE(request.ParseFromString(logs[0].body));
  EXPECT_EQ(request.resource_logs(0).scope_logs(0).log_records(0).body().string_value(),
            "before my start");
}

}  // namespace
