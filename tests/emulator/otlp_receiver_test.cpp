// The OTLP receiver itself, fed by hand-built requests (the official classes, serialized, or
// OTLP/JSON text as the specification writes it): decoding, refusals, scripted answers and the
// report the demo prints.

#include "otlp_receiver.h"

#include <Poco/DeflatingStream.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "otlp_report.h"

namespace relay::emu {
namespace {

using opentelemetry::proto::collector::logs::v1::ExportLogsServiceResponse;
using ::testing::HasSubstr;

struct Reply {
  int status = 0;
  std::string content_type;
  std::string retry_after;
  std::string body;
};

std::string gzip(const std::string& data) {
  std::ostringstream out;
  Poco::DeflatingOutputStream deflate(out, Poco::DeflatingStreamBuf::STREAM_GZIP);
  deflate << data;
  deflate.close();
  return out.str();
}

Reply post(const OtlpReceiver& receiver, const std::string& path, const std::string& body,
           const std::string& content_type, const std::string& encoding = "",
           const std::string& method = "POST") {
  Poco::Net::HTTPClientSession session("127.0.0.1", receiver.port());
  Poco::Net::HTTPRequest request(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
  request.setContentType(content_type);
  if (!encoding.empty()) request.set("Content-Encoding", encoding);
  request.setContentLength(static_cast<std::streamsize>(body.size()));
  session.sendRequest(request) << body;
  Poco::Net::HTTPResponse response;
  std::istream& in = session.receiveResponse(response);
  Reply reply;
  reply.status = response.getStatus();
  reply.content_type = response.getContentType();
  reply.retry_after = response.get("Retry-After", "");
  Poco::StreamCopier::copyToString(in, reply.body);
  return reply;
}

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (const int v : values) out += static_cast<char>(v);
  return out;
}

otlp_pb::ExportLogsServiceRequest two_log_records() {
  otlp_pb::ExportLogsServiceRequest request;
  auto* resource_logs = request.add_resource_logs();
  auto* attribute = resource_logs->mutable_resource()->add_attributes();
  attribute->set_key("service.name");
  attribute->mutable_value()->set_string_value("checkout");
  auto* scope_logs = resource_logs->add_scope_logs();
  scope_logs->mutable_scope()->set_name("telemetry-relay");
  for (const char* body : {"first", "second"}) {
    auto* record = scope_logs->add_log_records();
    record->set_time_unix_nano(1700000000123000000ull);
    record->set_severity_number(opentelemetry::proto::logs::v1::SEVERITY_NUMBER_INFO);
    record->mutable_body()->set_string_value(body);
    record->set_trace_id(bytes({0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6,
                                0x33, 0x81, 0x3f, 0xc6, 0x0c}));
    record->set_span_id(bytes({0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74}));
  }
  return request;
}

// OTLP/JSON as the specification's examples write it: hex ids, integer enums, 64-bit integers
// as strings. The body quotes a "traceId" key, which must stay as it is.
constexpr const char* kJsonTraces = R"({"resourceSpans":[{"resource":{"attributes":[
  {"key":"service.name","value":{"stringValue":"checkout"}}]},
  "scopeSpans":[{"scope":{"name":"telemetry-relay","version":"1.2.3"},"spans":[
   {"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
    "parentSpanId" : "EEE19B7EC3C1B173","name":"checkout-fn","kind":2,
    "startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000",
    "attributes":[{"key":"faas.invocation_id","value":{"stringValue":"\"traceId\":\"zz\""}}],
    "status":{"code":1}},
   {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"0000000000000001",
    "parentSpanId":"eee19b7ec3c1b174","name":"responseLatency","kind":1,
    "startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712660500000000"}]}]}]})";

class OtlpReceiverTest : public ::testing::Test {
 protected:
  void SetUp() override { receiver_.start(); }
  OtlpReceiver receiver_;
};

TEST_F(OtlpReceiverTest, GzippedProtobufLogsAreDecodedAndAnsweredWithAnEmptyResponse) {
  const Reply reply = post(receiver_, "/v1/logs", gzip(two_log_records().SerializeAsString()),
                           "application/x-protobuf", "gzip");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.content_type, "application/x-protobuf");
  ExportLogsServiceResponse response;
  ASSERT_TRUE(response.ParseFromString(reply.body));
  EXPECT_FALSE(response.has_partial_success());

  ASSERT_TRUE(receiver_.wait_for_logs(2, std::chrono::seconds(10)));
  const auto records = receiver_.log_records();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1].item.body().string_value(), "second");
  EXPECT_EQ(hex_id(records[0].item.trace_id()), "5b8efff798038103d269b633813fc60c");
  EXPECT_EQ(any_value_text(*find_attribute(records[0].resource.attributes(), "service.name")),
            "checkout");
  EXPECT_EQ(records[0].scope.name(), "telemetry-relay");
  const auto requests = receiver_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].items, 2u);
  EXPECT_EQ(requests[0].header("content-encoding"), "gzip");
  EXPECT_GT(requests[0].decoded_bytes, 0u);
  EXPECT_EQ(receiver_.request_count(OtlpSignal::kLogs), 1u);
}

TEST_F(OtlpReceiverTest, JsonWithHexIdsIsDecodedAndAnsweredInJson) {
  const Reply reply = post(receiver_, "/v1/traces", kJsonTraces, "application/json; charset=utf-8");
  EXPECT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.content_type, "application/json");
  EXPECT_EQ(reply.body, "{}");

  const auto spans = receiver_.spans();
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(hex_id(spans[0].item.trace_id()), "5b8efff798038103d269b633813fc60c");
  EXPECT_EQ(hex_id(spans[0].item.span_id()), "eee19b7ec3c1b174");
  EXPECT_EQ(hex_id(spans[0].item.parent_span_id()), "eee19b7ec3c1b173");
  EXPECT_EQ(spans[0].item.kind(), otlp_pb::Span::SPAN_KIND_SERVER);
  EXPECT_EQ(spans[0].item.end_time_unix_nano(), 1544712661000000000ull);
  EXPECT_EQ(any_value_text(*find_attribute(spans[0].item.attributes(), "faas.invocation_id")),
            R"("traceId":"zz")");
  EXPECT_EQ(hex_id(spans[1].item.parent_span_id()), "eee19b7ec3c1b174");
  EXPECT_EQ(spans[1].scope.version(), "1.2.3");
}

TEST(OtlpJsonIds, OnlyIdValuesAreConverted) {
  EXPECT_EQ(otlp_json_hex_ids_to_base64(R"({"traceId":"00ff","x":"traceId","spanId":null})"),
            R"({"traceId":"AP8=","x":"traceId","spanId":null})");
  EXPECT_EQ(otlp_json_hex_ids_to_base64(R"({"body":"a \"spanId\":\"zz\" b","spanId" : ""})"),
            R"({"body":"a \"spanId\":\"zz\" b","spanId" : ""})");
  EXPECT_FALSE(otlp_json_hex_ids_to_base64(R"({"traceId":"xyz1"})").has_value());
  EXPECT_FALSE(otlp_json_hex_ids_to_base64(R"({"spanId":"abc"})").has_value());
}

TEST_F(OtlpReceiverTest, RefusesWhatIsNotOtlp) {
  const std::string logs = two_log_records().SerializeAsString();
  EXPECT_EQ(post(receiver_, "/v1/logs", logs, "text/plain").status, 415);
  EXPECT_EQ(post(receiver_, "/v1/logs", "\xff\xff\xff", "application/x-protobuf").status, 400);
  EXPECT_EQ(post(receiver_, "/v1/logs", "{not json", "application/json").status, 400);
  EXPECT_EQ(post(receiver_, "/v1/logs", R"({"resourceLogs":[{"scopeLogs":[{"logRecords":[
    {"traceId":"not-hex"}]}]}]})",
                 "application/json")
                .status,
            400);
  // Strict JSON: a misspelt field fails rather than vanishing.
  EXPECT_EQ(post(receiver_, "/v1/logs", R"({"resourceLog":[]})", "application/json").status, 400);
  EXPECT_EQ(post(receiver_, "/v1/logs", logs, "application/x-protobuf", "gzip").status, 400);
  EXPECT_EQ(post(receiver_, "/v1/logs", logs, "application/x-protobuf", "br").status, 400);
  EXPECT_EQ(post(receiver_, "/v1/log", logs, "application/x-protobuf").status, 404);
  EXPECT_EQ(post(receiver_, "/v1/logs", logs, "application/x-protobuf", "", "PUT").status, 405);
  EXPECT_EQ(receiver_.log_record_count(), 0u);
  const auto requests = receiver_.requests();
  ASSERT_EQ(requests.size(), 9u);
  EXPECT_THAT(requests[0].error, HasSubstr("text/plain"));
  for (const auto& request : requests) EXPECT_FALSE(request.error.empty()) << request.status;
}

TEST_F(OtlpReceiverTest, ScriptedAnswersArePerSignalAndOnlyAcceptedBodiesAreKept) {
  receiver_.push_answers(OtlpSignal::kLogs, {OtlpAnswer::status_only(503, "2")});
  const std::string logs = two_log_records().SerializeAsString();
  const Reply refused = post(receiver_, "/v1/logs", logs, "application/x-protobuf");
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(refused.retry_after, "2");
  EXPECT_EQ(receiver_.log_record_count(), 0u);
  EXPECT_EQ(post(receiver_, "/v1/traces", kJsonTraces, "application/json").status, 200);
  EXPECT_EQ(post(receiver_, "/v1/logs", logs, "application/x-protobuf").status, 200);
  EXPECT_EQ(receiver_.log_record_count(), 2u);
  EXPECT_EQ(receiver_.requests()[0].items, 2u);  // what the refused body held
}

TEST_F(OtlpReceiverTest, PartialSuccessAndRawAnswers) {
  receiver_.push_answers(OtlpSignal::kLogs,
                         {OtlpAnswer::partial_success(1, "one record too old"),
                          OtlpAnswer::raw(200, "text/html", "<html><body>proxy</body></html>")});
  const std::string logs = two_log_records().SerializeAsString();
  const Reply partial = post(receiver_, "/v1/logs", logs, "application/x-protobuf");
  ExportLogsServiceResponse response;
  ASSERT_TRUE(response.ParseFromString(partial.body));
  EXPECT_EQ(response.partial_success().rejected_log_records(), 1);
  EXPECT_EQ(response.partial_success().error_message(), "one record too old");
  const Reply html = post(receiver_, "/v1/logs", logs, "application/x-protobuf");
  EXPECT_EQ(html.status, 200);
  EXPECT_EQ(html.content_type, "text/html");
  EXPECT_THAT(html.body, HasSubstr("<html>"));
  EXPECT_EQ(receiver_.log_record_count(), 4u);

  receiver_.push_answers(OtlpSignal::kTraces, {OtlpAnswer::partial_success(2, "no")});
  const Reply json = post(receiver_, "/v1/traces", kJsonTraces, "application/json");
  EXPECT_THAT(json.body, HasSubstr(R"("rejectedSpans":"2")"));
}

TEST(OtlpReceiverBench, WithoutDecodingItAnswers200EmptyAndKeepsNothing) {
  OtlpReceiver::Options options;
  options.decode = false;
  OtlpReceiver receiver(options);
  receiver.start();
  const Reply reply = post(receiver, "/v1/logs", "whatever, undecoded", "text/plain");
  EXPECT_EQ(reply.status, 200);
  EXPECT_TRUE(reply.body.empty());
  EXPECT_EQ(receiver.wire_bytes(), 19u);
  EXPECT_EQ(receiver.request_count(OtlpSignal::kLogs), 1u);
  EXPECT_EQ(receiver.log_record_count(), 0u);
}

TEST_F(OtlpReceiverTest, ReportShowsResourceLogsSpanTreeAndMetrics) {
  ASSERT_EQ(
      post(receiver_, "/v1/logs", two_log_records().SerializeAsString(), "application/x-protobuf")
          .status,
      200);
  ASSERT_EQ(post(receiver_, "/v1/traces", kJsonTraces, "application/json").status, 200);
  otlp_pb::ExportMetricsServiceRequest metrics;
  auto* scope = metrics.add_resource_metrics()->add_scope_metrics();
  auto* sum = scope->add_metrics();
  sum->set_name("faas.invocations");
  sum->mutable_sum()->add_data_points()->set_as_int(2);
  sum->mutable_sum()->add_data_points()->set_as_int(1);
  auto* histogram = scope->add_metrics();
  histogram->set_name("faas.invoke_duration");
  histogram->set_unit("s");
  auto* point = histogram->mutable_histogram()->add_data_points();
  point->set_count(3);
  point->set_sum(0.5);
  ASSERT_EQ(
      post(receiver_, "/v1/metrics", metrics.SerializeAsString(), "application/x-protobuf").status,
      200);
  EXPECT_EQ(receiver_.metric_count(), 2u);
  EXPECT_EQ(receiver_.data_point_count(), 3u);

  std::ostringstream text;
  print_otlp_report(text, receiver_);
  EXPECT_THAT(text.str(), HasSubstr("service.name = checkout"));
  EXPECT_THAT(text.str(), HasSubstr("second"));
  EXPECT_THAT(text.str(), HasSubstr("checkout-fn  SERVER  1000.000 ms  OK"));
  EXPECT_THAT(text.str(), HasSubstr("  responseLatency  INTERNAL  500.000 ms"));
  EXPECT_THAT(text.str(), HasSubstr("faas.invocations  Sum"));
  EXPECT_THAT(text.str(), HasSubstr(": 3 (2 points)"));
  EXPECT_THAT(text.str(), HasSubstr("count 3, sum 0.5000"));

  const auto object = otlp_report_object(receiver_);
  EXPECT_EQ(object->getObject("signals")->getObject("logs")->getValue<size_t>("items"), 2u);
  EXPECT_EQ(object->getArray("traces")->size(), 1u);
  EXPECT_EQ(object->getArray("metrics")->size(), 2u);
}

}  // namespace
}  // namespace relay::emu
