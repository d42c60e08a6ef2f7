// The Lambda-to-OTLP mapping on the fixtures of lambda-protocol.md section 4.

#include <gtest/gtest.h>
#include <simdjson.h>

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lambda_log_line.h"
#include "lambda_mapping.h"
#include "timestamps.h"
#include "xray_trace_header.h"

namespace relay::otlp {
namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kNow = 1'800'000'000'000'000'000;  // 2027, after every fixture

uint64_t at(std::string_view rfc3339) {
  auto nanos = parse_rfc3339_nanos(rfc3339);
  EXPECT_TRUE(nanos) << rfc3339;
  return nanos.value_or(0);
}

// Events and the bytes they view; built from fixture lines ({"time","type","record"}).
class Events {
 public:
  Events& add(std::string_view type, std::string_view time, std::string_view record) {
    events_.push_back({keep(type), keep(time), keep(record)});
    return *this;
  }
  Events& line(std::string_view envelope) {
    simdjson::dom::parser parser;
    simdjson::dom::element root = parser.parse(simdjson::padded_string(envelope));
    return add(std::string_view(root["type"]), std::string_view(root["time"]),
               simdjson::to_string(root["record"]));
  }
  const std::vector<LambdaEvent>& get() const { return events_; }

 private:
  std::string_view keep(std::string_view text) { return strings_.emplace_back(text); }
  std::deque<std::string> strings_;
  std::vector<LambdaEvent> events_;
};

std::string hex(const uint8_t* bytes, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text;
  for (size_t i = 0; i < size; ++i) {
    text += kDigits[bytes[i] >> 4];
    text += kDigits[bytes[i] & 15];
  }
  return text;
}
std::string hex(const TraceId& id) { return hex(id.data(), id.size()); }
std::string hex(const SpanId& id) { return hex(id.data(), id.size()); }

const AnyValue* attribute(const Attributes& attributes, std::string_view key) {
  for (const auto& kv : attributes) {
    if (kv.key == key) return &kv.value;
  }
  return nullptr;
}
std::string string_attribute(const Attributes& attributes, std::string_view key) {
  const AnyValue* value = attribute(attributes, key);
  if (value == nullptr || value->kind != AnyValue::Kind::kString) return "<none>";
  return std::string(value->string_value);
}
const AnyValue* field(const AnyValue& kvlist, std::string_view key) {
  return attribute(kvlist.kvlist_value, key);
}
std::string body(const LogRecord& record) {
  return record.body.kind == AnyValue::Kind::kString ? std::string(record.body.string_value)
                                                     : "<not a string>";
}
const Metric* metric(const MappingOutput& out, std::string_view name) {
  for (const auto& m : out.metrics) {
    if (m.name == name) return &m;
  }
  return nullptr;
}
const Span* span(const MappingOutput& out, std::string_view name) {
  for (const auto& s : out.spans) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

MappingOptions options() {
  MappingOptions o;
  o.function_name = "orders-api";
  return o;
}

// lambda-protocol.md 4.15: one cold invoke (no X-Ray tracing).
Events cold_invoke() {
  Events events;
  events
      .line(
          R"({"time":"2024-05-14T09:12:03.412Z","type":"platform.initStart","record":{"initializationType":"on-demand","phase":"init","runtimeVersion":"nodejs:20.v22","runtimeVersionArn":"arn:aws:lambda:us-east-1::runtime:da57","functionName":"orders-api","functionVersion":"$LATEST"}})")
      .line(
          R"({"time":"2024-05-14T09:12:03.530Z","type":"platform.telemetrySubscription","record":{"name":"telemetry-ext","state":"Subscribed","types":["platform","function"]}})")
      .line(
          R"({"time":"2024-05-14T09:12:03.901Z","type":"function","record":"2024-05-14T09:12:03.900Z\tundefined\tINFO\tHello from function initialization"})")
      .line(
          R"({"time":"2024-05-14T09:12:04.101Z","type":"platform.initRuntimeDone","record":{"initializationType":"on-demand","phase":"init","status":"success"}})")
      .line(
          R"({"time":"2024-05-14T09:12:04.101Z","type":"platform.extension","record":{"name":"telemetry-ext","state":"Ready","events":["INVOKE","SHUTDOWN"]}})")
      .line(
          R"({"time":"2024-05-14T09:12:04.102Z","type":"platform.initReport","record":{"initializationType":"on-demand","phase":"init","status":"success","metrics":{"durationMs":689.41}}})")
      .line(
          R"({"time":"2024-05-14T09:12:04.110Z","type":"platform.start","record":{"requestId":"79b4f56e-95b1-4643-9700-2807f4e68189","version":"$LATEST"}})")
      .line(
          R"({"time":"2024-05-14T09:12:04.115Z","type":"function","record":"2024-05-14T09:12:04.114Z\t79b4f56e-95b1-4643-9700-2807f4e68189\tINFO\tHello from function handler { event: {} }"})")
      .line(
          R"({"time":"2024-05-14T09:12:04.121Z","type":"platform.runtimeDone","record":{"requestId":"79b4f56e-95b1-4643-9700-2807f4e68189","status":"success","spans":[{"name":"responseLatency","start":"2024-05-14T09:12:04.110Z","durationMs":8.2},{"name":"responseDuration","start":"2024-05-14T09:12:04.118Z","durationMs":0.3},{"name":"runtimeOverhead","start":"2024-05-14T09:12:04.119Z","durationMs":1.4}],"metrics":{"durationMs":10.6,"producedBytes":4}}})")
      .line(
          R"({"time":"2024-05-14T09:12:04.140Z","type":"platform.report","record":{"requestId":"79b4f56e-95b1-4643-9700-2807f4e68189","status":"success","metrics":{"durationMs":29.87,"billedDurationMs":720,"memorySizeMB":256,"maxMemoryUsedMB":71,"initDurationMs":689.41},"spans":[{"name":"extensionOverhead","start":"2024-05-14T09:12:04.121Z","durationMs":19.1}]}})");
  return events;
}

// lambda-protocol.md 4.5-4.7: the real fixtures with X-Ray tracing, and a log line between.
constexpr std::string_view kTracedStart =
    R"({"time":"2022-10-21T14:05:03.165Z","type":"platform.start","record":{"requestId":"459921b5-681c-4a96-beb0-81e0aa586026","version":"$LATEST","tracing":{"spanId":"24cd7d670fa455f0","type":"X-Amzn-Trace-Id","value":"Root=1-6352a70e-1e2c502e358361800241fd45;Parent=35465b3a9e2f7c6a;Sampled=1"}}})";
constexpr std::string_view kTracedLog =
    R"({"time":"2022-10-21T14:05:04.000Z","type":"function","record":"2022-10-21T14:05:03.999Z\t459921b5-681c-4a96-beb0-81e0aa586026\tWARN\tslow downstream"})";
constexpr std::string_view kTracedRuntimeDone =
    R"({"time":"2022-10-21T14:05:05.764Z","type":"platform.runtimeDone","record":{"requestId":"459921b5-681c-4a96-beb0-81e0aa586026","status":"success","tracing":{"spanId":"24cd7d670fa455f0","type":"X-Amzn-Trace-Id","value":"Root=1-6352a70e-1e2c502e358361800241fd45;Parent=35465b3a9e2f7c6a;Sampled=1"},"spans":[{"name":"responseLatency","start":"2022-10-21T14:05:03.165Z","durationMs":2598.0},{"name":"responseDuration","start":"2022-10-21T14:05:05.763Z","durationMs":0.0}],"metrics":{"durationMs":2599.0,"producedBytes":8}}})";
constexpr std::string_view kTracedReport =
    R"({"time":"2022-10-21T14:05:05.766Z","type":"platform.report","record":{"requestId":"459921b5-681c-4a96-beb0-81e0aa586026","metrics":{"durationMs":2599.4,"billedDurationMs":2600,"memorySizeMB":128,"maxMemoryUsedMB":94,"initDurationMs":549.04},"tracing":{"spanId":"24cd7d670fa455f0","type":"X-Amzn-Trace-Id","value":"Root=1-6352a70e-1e2c502e358361800241fd45;Parent=35465b3a9e2f7c6a;Sampled=1"},"status":"success"}})";

// ---- helpers ----

TEST(Rfc3339, ParsesLambdaAndRuntimeForms) {
  EXPECT_EQ(parse_rfc3339_nanos("1970-01-01T00:00:00Z"), 0u);
  EXPECT_EQ(parse_rfc3339_nanos("2022-10-21T14:05:03.165Z"), 1666361103165000000u);
  EXPECT_EQ(parse_rfc3339_nanos("2024-05-14T09:12:05Z"), 1715677925000000000u);
  EXPECT_EQ(parse_rfc3339_nanos("2024-05-14T11:12:05.5+02:00"), 1715677925500000000u);
  EXPECT_EQ(parse_rfc3339_nanos("2024-05-14T09:12:05.123456789123Z"), 1715677925123456789u);
  for (std::string_view bad :
       {"", "2022-08-02T12:01:23:521Z", "2024-05-14T09:12:05", "2024-02-30T00:00:00Z",
        "2024-05-14T09:12:05.Z", "1969-12-31T23:59:59Z", "2024-05-14T25:00:00Z",
        "2024-05-14T09:12:05Zjunk", "9999-01-01T00:00:00Z"}) {
    EXPECT_FALSE(parse_rfc3339_nanos(bad)) << bad;
  }
}

TEST(XRayTraceHeader, ParsesRootParentAndSampled) {
  auto header = parse_xray_trace_header(
      "Root=1-6352a70e-1e2c502e358361800241fd45;Parent=35465b3a9e2f7c6a;Sampled=1;Lineage=a:1");
  ASSERT_TRUE(header);
  EXPECT_EQ(hex(header->trace_id), "6352a70e1e2c502e358361800241fd45");
  EXPECT_EQ(hex(header->parent_id), "35465b3a9e2f7c6a");
  EXPECT_TRUE(header->sampled);
  auto unsampled = parse_xray_trace_header("Root=1-6352a70e-1e2c502e358361800241fd45;Sampled=0");
  ASSERT_TRUE(unsampled);
  EXPECT_FALSE(unsampled->sampled);
  EXPECT_FALSE(is_set(unsampled->parent_id));
  for (std::string_view bad :
       {"", "Parent=35465b3a9e2f7c6a", "Root=2-6352a70e-1e2c502e358361800241fd45",
        "Root=1-6352a70e-1e2c502e358361800241fd4", "Root=1-6352a70e-1e2c502e358361800241fdzz",
        "Root=1-6352a70e-1e2c502e358361800241fd45;Parent=xyz",
        "Root=1-6352a70e-1e2c502e358361800241fd45;Sampled=yes", "garbage"}) {
    EXPECT_FALSE(parse_xray_trace_header(bad)) << bad;
  }
}

TEST(Severity, MapsLevelsCaseInsensitively) {
  EXPECT_EQ(severity_from_level("INFO").number, 9);
  EXPECT_EQ(severity_from_level("info").text, "INFO");
  EXPECT_EQ(severity_from_level("Warning").number, 13);
  EXPECT_EQ(severity_from_level("WARNING").text, "WARN");
  EXPECT_EQ(severity_from_level("critical").number, 21);
  EXPECT_EQ(severity_from_level("TRACE2").number, 2);
  EXPECT_EQ(severity_from_level("debug4").number, 8);
  EXPECT_EQ(severity_from_level("ERROR3").number, 19);
  EXPECT_EQ(severity_from_level("FATAL").number, 21);
  EXPECT_EQ(severity_from_level("NOTICE").number, 0);
  EXPECT_EQ(severity_from_level("").number, 0);
  EXPECT_EQ(severity_from_level("AVERYLONGLEVELNAMEINDEED").number, 0);
}

TEST(Utf8, RepairsEachInvalidSubsequenceOnce) {
  std::string out;
  EXPECT_FALSE(repair_utf8("valid \xC3\xA9", out));
  ASSERT_TRUE(
      repair_utf8("a\xFF"
                  "b\xE2\x82"
                  "c\xED\xA0\x80"
                  "d\xF0\x9F\x98\x80",
                  out));
  EXPECT_EQ(out,
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD"
            "c\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
            "d\xF0\x9F\x98\x80");
  ASSERT_TRUE(repair_utf8("end\xC3", out));
  EXPECT_EQ(out, "end\xEF\xBF\xBD");
}

TEST(JsonString, ShortEscapesWithoutAParserOthersLeftToIt) {
  std::string out;
  ASSERT_TRUE(unescape_simple_json_string(R"("a\tb\\c\"d\/e\n")", out));
  EXPECT_EQ(out, "a\tb\\c\"d/e\n");
  ASSERT_TRUE(unescape_simple_json_string(R"("")", out));
  EXPECT_EQ(out, "");
  EXPECT_FALSE(unescape_simple_json_string(R"("caf\u00e9")", out));
  EXPECT_FALSE(unescape_simple_json_string(R"("bad \x")", out));
  EXPECT_FALSE(unescape_simple_json_string(R"("open\")", out));
  EXPECT_FALSE(unescape_simple_json_string(R"({"a":1})", out));
  EXPECT_FALSE(unescape_simple_json_string(R"(")", out));
}

TEST(Mapping, UnicodeEscapesGoThroughTheParserAndBadOnesKeepTheRecord) {
  LambdaMapping mapping(options());
  MappingOutput out;
  Events events;
  events.add("function", "2024-05-14T09:12:05.400Z", R"("caf\u00e9 \ud83d\ude00")")
      .add("function", "2024-05-14T09:12:05.400Z", R"("lone \ud800 surrogate")");
  mapping.map(events.get(), kNow, out);
  ASSERT_EQ(out.logs.size(), 2u);
  EXPECT_EQ(body(out.logs[0]), "caf\xC3\xA9 \xF0\x9F\x98\x80");
  EXPECT_EQ(body(out.logs[1]), R"("lone \ud800 surrogate")");  // kept whole, never lost
  EXPECT_EQ(mapping.counters().unparsed_records, 2u);          // plain text, and the unparsable one
}

// ---- a cold invoke ----

TEST(Mapping, ColdInvokeGivesLogsInitAndInvocationSpansAndMetrics) {
  LambdaMapping mapping(options());
  MappingOutput out;
  Events events = cold_invoke();
  mapping.map(events.get(), kNow, out);

  ASSERT_EQ(out.logs.size(), 2u);  // platform events are not logs by default
  const LogRecord& init_log = out.logs[0];
  EXPECT_EQ(body(init_log), "Hello from function initialization");
  EXPECT_EQ(init_log.time_unix_nano, at("2024-05-14T09:12:03.900Z"));
  EXPECT_EQ(init_log.observed_time_unix_nano, kNow);
  EXPECT_EQ(init_log.severity_number, 9);
  EXPECT_EQ(init_log.severity_text, "INFO");
  EXPECT_EQ(string_attribute(init_log.attributes, "aws.lambda.log_type"), "function");
  EXPECT_EQ(attribute(init_log.attributes, "faas.invocation_id"), nullptr);  // "undefined"
  EXPECT_FALSE(is_set(init_log.trace_id));

  const LogRecord& handler_log = out.logs[1];
  EXPECT_EQ(body(handler_log), "Hello from function handler { event: {} }");
  EXPECT_EQ(handler_log.time_unix_nano, at("2024-05-14T09:12:04.114Z"));
  EXPECT_EQ(string_attribute(handler_log.attributes, "faas.invocation_id"),
            "79b4f56e-95b1-4643-9700-2807f4e68189");

  ASSERT_EQ(out.spans.size(), 5u);
  const Span* init = span(out, "init orders-api");
  ASSERT_NE(init, nullptr);
  EXPECT_EQ(init->kind, Span::Kind::kInternal);
  EXPECT_EQ(init->start_time_unix_nano, at("2024-05-14T09:12:03.412Z"));
  EXPECT_EQ(init->end_time_unix_nano, at("2024-05-14T09:12:04.101Z"));
  EXPECT_TRUE(is_set(init->trace_id));
  EXPECT_TRUE(is_set(init->span_id));
  EXPECT_EQ(init->status.code, SpanStatus::Code::kUnset);
  ASSERT_NE(attribute(init->attributes, "faas.coldstart"), nullptr);
  EXPECT_TRUE(attribute(init->attributes, "faas.coldstart")->bool_value);

  const Span* invocation = span(out, "orders-api");
  ASSERT_NE(invocation, nullptr);
  EXPECT_EQ(invocation->kind, Span::Kind::kServer);
  EXPECT_EQ(invocation->start_time_unix_nano, at("2024-05-14T09:12:04.110Z"));
  EXPECT_EQ(invocation->end_time_unix_nano, at("2024-05-14T09:12:04.121Z"));
  EXPECT_TRUE(is_set(invocation->trace_id));  // no tracing: a fresh trace, still exported
  EXPECT_FALSE(is_set(invocation->parent_span_id));
  EXPECT_NE(invocation->trace_id, init->trace_id);
  EXPECT_EQ(invocation->status.code, SpanStatus::Code::kUnset);
  EXPECT_EQ(string_attribute(invocation->attributes, "faas.invocation_id"),
            "79b4f56e-95b1-4643-9700-2807f4e68189");
  ASSERT_NE(attribute(invocation->attributes, "faas.coldstart"), nullptr);
  EXPECT_TRUE(attribute(invocation->attributes, "faas.coldstart")->bool_value);
  EXPECT_EQ(attribute(invocation->attributes, "error.type"), nullptr);
  // Its log carries its trace id and span id.
  EXPECT_EQ(handler_log.trace_id, invocation->trace_id);
  EXPECT_EQ(handler_log.span_id, invocation->span_id);
  EXPECT_EQ(handler_log.flags, 1u);

  const Span* latency = span(out, "responseLatency");
  ASSERT_NE(latency, nullptr);
  EXPECT_EQ(latency->kind, Span::Kind::kInternal);
  EXPECT_EQ(latency->trace_id, invocation->trace_id);
  EXPECT_EQ(latency->parent_span_id, invocation->span_id);
  EXPECT_NE(latency->span_id, invocation->span_id);
  EXPECT_EQ(latency->start_time_unix_nano, at("2024-05-14T09:12:04.110Z"));
  EXPECT_EQ(latency->end_time_unix_nano, at("2024-05-14T09:12:04.110Z") + 8'200'000);
  const Span* overhead = span(out, "runtimeOverhead");
  ASSERT_NE(overhead, nullptr);
  EXPECT_EQ(overhead->end_time_unix_nano - overhead->start_time_unix_nano, 1'400'000u);
  EXPECT_NE(span(out, "responseDuration"), nullptr);

  const Metric* invoke = metric(out, "faas.invoke_duration");
  ASSERT_NE(invoke, nullptr);
  EXPECT_EQ(invoke->kind, Metric::Kind::kHistogram);
  EXPECT_EQ(invoke->unit, "s");
  EXPECT_EQ(invoke->temporality, Temporality::kDelta);
  ASSERT_EQ(invoke->histogram_points.size(), 1u);
  const HistogramDataPoint& point = invoke->histogram_points[0];
  EXPECT_EQ(point.count, 1u);
  EXPECT_DOUBLE_EQ(point.sum, 0.0106);
  EXPECT_DOUBLE_EQ(*point.min, 0.0106);
  EXPECT_DOUBLE_EQ(*point.max, 0.0106);
  ASSERT_EQ(point.bucket_counts.size(), point.explicit_bounds.size() + 1);
  EXPECT_EQ(point.bucket_counts[2], 1u);  // (0.01, 0.025]
  EXPECT_EQ(point.start_time_unix_nano, at("2024-05-14T09:12:04.121Z"));
  EXPECT_EQ(point.time_unix_nano, at("2024-05-14T09:12:04.121Z"));

  const Metric* init_duration = metric(out, "faas.init_duration");
  ASSERT_NE(init_duration, nullptr);
  EXPECT_DOUBLE_EQ(init_duration->histogram_points.at(0).sum, 0.68941);
  const Metric* coldstarts = metric(out, "faas.coldstarts");
  ASSERT_NE(coldstarts, nullptr);
  EXPECT_EQ(coldstarts->kind, Metric::Kind::kSum);
  EXPECT_EQ(coldstarts->unit, "{coldstart}");
  EXPECT_EQ(coldstarts->number_points.at(0).as_int, 1);
  const Metric* invocations = metric(out, "faas.invocations");
  ASSERT_NE(invocations, nullptr);
  EXPECT_TRUE(invocations->is_monotonic);
  EXPECT_EQ(invocations->number_points.at(0).as_int, 1);
  EXPECT_EQ(metric(out, "faas.errors"), nullptr);  // no metric without data
  EXPECT_EQ(metric(out, "faas.timeouts"), nullptr);
  const Metric* memory = metric(out, "faas.mem_usage");
  ASSERT_NE(memory, nullptr);
  EXPECT_EQ(memory->unit, "By");
  EXPECT_DOUBLE_EQ(memory->histogram_points.at(0).sum, 71.0 * 1048576);
  const Metric* billed = metric(out, "aws.lambda.billed_duration");
  ASSERT_NE(billed, nullptr);
  EXPECT_DOUBLE_EQ(billed->histogram_points.at(0).sum, 0.72);
  const Metric* size = metric(out, "aws.lambda.memory_size");
  ASSERT_NE(size, nullptr);
  EXPECT_EQ(size->kind, Metric::Kind::kGauge);
  EXPECT_EQ(size->number_points.at(0).as_int, 256 * 1048576);
  EXPECT_EQ(size->number_points.at(0).time_unix_nano, at("2024-05-14T09:12:04.140Z"));

  EXPECT_EQ(mapping.counters().bad_tracing, 1u);  // platform.start without tracing
  EXPECT_EQ(mapping.counters().unknown_types_skipped, 0u);
  EXPECT_EQ(mapping.held(), 0u);
}

TEST(Mapping, XRayTracingGivesTraceParentAndSpanIdToSpanAndLogs) {
  LambdaMapping mapping(options());
  MappingOutput out;
  Events events;
  events.line(kTracedStart).line(kTracedLog).line(kTracedRuntimeDone).line(kTracedReport);
  mapping.map(events.get(), kNow, out);

  const Span* invocation = span(out, "orders-api");
  ASSERT_NE(invocation, nullptr);
  EXPECT_EQ(hex(invocation->trace_id), "6352a70e1e2c502e358361800241fd45");
  EXPECT_EQ(hex(invocation->parent_span_id), "35465b3a9e2f7c6a");
  EXPECT_EQ(hex(invocation->span_id), "24cd7d670fa455f0");
  EXPECT_EQ(invocation->start_time_unix_nano, at("2022-10-21T14:05:03.165Z"));
  EXPECT_EQ(invocation->end_time_unix_nano, at("2022-10-21T14:05:05.764Z"));
  EXPECT_FALSE(attribute(invocation->attributes, "faas.coldstart")->bool_value);  // no init seen
  EXPECT_EQ(out.spans.size(), 3u);

  ASSERT_EQ(out.logs.size(), 1u);
  EXPECT_EQ(hex(out.logs[0].trace_id), "6352a70e1e2c502e358361800241fd45");
  EXPECT_EQ(hex(out.logs[0].span_id), "24cd7d670fa455f0");
  EXPECT_EQ(out.logs[0].flags, 1u);
  EXPECT_EQ(out.logs[0].severity_number, 13);
  EXPECT_EQ(out.logs[0].severity_text, "WARN");
  EXPECT_EQ(body(out.logs[0]), "slow downstream");
  EXPECT_EQ(mapping.counters().bad_tracing, 0u);
  EXPECT_DOUBLE_EQ(metric(out, "faas.invoke_duration")->histogram_points.at(0).sum, 2.599);
}

TEST(Mapping, TimeoutAndOutOfMemoryAreErrorSpansAndCounted) {
  LambdaMapping mapping(options());
  MappingOutput out;
  Events events;
  events
      .line(
          R"({"time":"2024-05-14T09:20:00.010Z","type":"platform.start","record":{"requestId":"527cb862-4f5e-49a9-9ae4-a7edc90f0fda"}})")
      .line(
          R"({"time":"2024-05-14T09:20:03.010Z","type":"platform.runtimeDone","record":{"requestId":"527cb862-4f5e-49a9-9ae4-a7edc90f0fda","status":"timeout","metrics":{"durationMs":3000.0,"producedBytes":0}}})")
      .line(
          R"({"time":"2024-05-14T09:21:00.500Z","type":"platform.runtimeDone","record":{"requestId":"0f1c-oom","status":"error","errorType":"Runtime.OutOfMemory","metrics":{"durationMs":812.3,"producedBytes":0}}})");
  mapping.map(events.get(), kNow, out);

  ASSERT_EQ(out.spans.size(), 2u);
  EXPECT_EQ(out.spans[0].status.code, SpanStatus::Code::kError);
  EXPECT_EQ(out.spans[0].status.message, "timeout");
  EXPECT_EQ(string_attribute(out.spans[0].attributes, "error.type"), "timeout");
  EXPECT_EQ(out.spans[1].status.code, SpanStatus::Code::kError);
  EXPECT_EQ(out.spans[1].status.message, "Runtime.OutOfMemory");
  EXPECT_EQ(string_attribute(out.spans[1].attributes, "error.type"), "Runtime.OutOfMemory");
  // No platform.start for the OOM one: start = runtimeDone time - durationMs.
  EXPECT_EQ(out.spans[1].start_time_unix_nano, at("2024-05-14T09:21:00.500Z") - 812'300'000);
  EXPECT_TRUE(is_set(out.spans[1].trace_id));

  EXPECT_EQ(metric(out, "faas.timeouts")->number_points.at(0).as_int, 1);
  EXPECT_EQ(metric(out, "faas.errors")->number_points.at(0).as_int, 1);
  EXPECT_EQ(metric(out, "faas.invocations"), nullptr);  // successful ones only
  const HistogramDataPoint& durations = metric(out, "faas.invoke_duration")->histogram_points.at(0);
  EXPECT_EQ(durations.count, 2u);
  EXPECT_DOUBLE_EQ(*durations.min, 0.8123);
  EXPECT_DOUBLE_EQ(*durations.max, 3.0);
  EXPECT_EQ(durations.start_time_unix_nano, at("2024-05-14T09:20:03.010Z"));
  EXPECT_EQ(durations.time_unix_nano, at("2024-05-14T09:21:00.500Z"));
}

TEST(Mapping, InitFailureAndInitReportWithoutStart) {
  {
    LambdaMapping mapping(options());
    MappingOutput out;
    Events events;
    events
        .line(
            R"({"time":"2024-05-14T09:12:03.412Z","type":"platform.initStart","record":{"initializationType":"on-demand","phase":"init"}})")
        .line(
            R"({"time":"2024-05-14T09:12:04.101Z","type":"platform.initRuntimeDone","record":{"initializationType":"on-demand","phase":"init","status":"error","errorType":"Runtime.ExitError"}})")
        .line(
            R"({"time":"2024-05-14T09:12:05.012Z","type":"platform.initReport","record":{"initializationType":"on-demand","phase":"init","status":"error","errorType":"Extension.Crash","metrics":{"durationMs":1236.04}}})");
    mapping.map(events.get(), kNow, out);
    ASSERT_EQ(out.spans.size(), 1u);
    EXPECT_EQ(out.spans[0].status.code, SpanStatus::Code::kError);
    EXPECT_EQ(out.spans[0].status.message, "Runtime.ExitError");
    EXPECT_EQ(string_attribute(out.spans[0].attributes, "error.type"), "Runtime.ExitError");
    EXPECT_EQ(metric(out, "faas.errors")->number_points.at(0).as_int, 1);
  }
  {
    // After a restart the initStart is gone: start = initReport time - durationMs.
    LambdaMapping mapping(options());
    MappingOutput out;
    Events events;
    events.line(
        R"({"time":"2024-05-14T09:12:13.412Z","type":"platform.initReport","record":{"initializationType":"on-demand","phase":"init","status":"timeout","metrics":{"durationMs":10000.0}}})");
    mapping.map(events.get(), kNow, out);
    ASSERT_EQ(out.spans.size(), 1u);
    EXPECT_EQ(out.spans[0].start_time_unix_nano, at("2024-05-14T09:12:03.412Z"));
    EXPECT_EQ(out.spans[0].end_time_unix_nano, at("2024-05-14T09:12:13.412Z"));
    EXPECT_EQ(out.spans[0].status.message, "timeout");
    EXPECT_EQ(metric(out, "faas.timeouts")->number_points.at(0).as_int, 1);
  }
}

TEST(Mapping, BatchSplitAcrossTwoCallsKeepsTheInvocation) {
  LambdaMapping mapping(options());
  Events first, second;
  first.line(kTracedStart);
  second.add("function", "2022-10-21T14:05:04.000Z", R"("no request id here, but in progress")")
      .line(kTracedRuntimeDone)
      .add("function", "2022-10-21T14:05:06.000Z", R"("after the invocation")");
  MappingOutput out1;
  mapping.map(first.get(), kNow, out1);
  EXPECT_TRUE(out1.spans.empty());
  MappingOutput out2;
  mapping.map(second.get(), kNow, out2);
  const Span* invocation = span(out2, "orders-api");
  ASSERT_NE(invocation, nullptr);
  EXPECT_EQ(invocation->start_time_unix_nano, at("2022-10-21T14:05:03.165Z"));
  ASSERT_EQ(out2.logs.size(), 2u);
  EXPECT_EQ(string_attribute(out2.logs[0].attributes, "faas.invocation_id"),
            "459921b5-681c-4a96-beb0-81e0aa586026");
  EXPECT_EQ(hex(out2.logs[0].span_id), "24cd7d670fa455f0");
  // After runtimeDone no invocation is in progress.
  EXPECT_EQ(attribute(out2.logs[1].attributes, "faas.invocation_id"), nullptr);
  EXPECT_FALSE(is_set(out2.logs[1].trace_id));
  EXPECT_EQ(body(out2.logs[0]), "no request id here, but in progress");
}

TEST(Mapping, ManagedInstancesUseRequestIdsOnlyAndReportDurations) {
  MappingOptions o = options();
  o.managed_instances = true;
  LambdaMapping mapping(o);
  MappingOutput out;
  Events events;
  events
      .line(
          R"({"time":"2025-09-19T19:36:50.879Z","type":"platform.start","record":{"requestId":"13d1305b-a2f5-440c-bfbe-686ccff3d3e0","version":"$LATEST","tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1-68cdb0c2-0123456789abcdef01234567;Parent=1111111111111111;Sampled=1"}}})")
      .add("function", "2025-09-19T19:36:50.880Z", R"("a print without request id")")
      .add(
          "function", "2025-09-19T19:36:50.880Z",
          R"({"timestamp":"2025-09-19T19:36:50.880Z","level":"INFO","requestId":"13d1305b-a2f5-440c-bfbe-686ccff3d3e0","message":"mine"})")
      .line(
          R"({"time":"2025-09-19T19:36:50.881Z","type":"platform.report","record":{"requestId":"13d1305b-a2f5-440c-bfbe-686ccff3d3e0","status":"success","metrics":{"durationMs":1.148},"spans":[{"name":"responseLatency","start":"2025-09-19T19:36:50.880Z","durationMs":0.847},{"name":"responseDuration","start":"2025-09-19T19:36:50.880Z","durationMs":0.127}]}})");
  mapping.map(events.get(), kNow, out);

  ASSERT_EQ(out.logs.size(), 2u);
  EXPECT_EQ(attribute(out.logs[0].attributes, "faas.invocation_id"), nullptr);
  EXPECT_FALSE(is_set(out.logs[0].trace_id));
  EXPECT_EQ(hex(out.logs[1].trace_id), "68cdb0c20123456789abcdef01234567");

  const Span* invocation = span(out, "orders-api");
  ASSERT_NE(invocation, nullptr);  // from the report: no runtimeDone on Managed Instances
  EXPECT_EQ(invocation->start_time_unix_nano, at("2025-09-19T19:36:50.879Z"));
  EXPECT_EQ(invocation->end_time_unix_nano, at("2025-09-19T19:36:50.881Z"));
  EXPECT_EQ(out.logs[1].span_id, invocation->span_id);
  EXPECT_NE(span(out, "responseLatency"), nullptr);
  EXPECT_DOUBLE_EQ(metric(out, "faas.invoke_duration")->histogram_points.at(0).sum, 0.001148);
  EXPECT_EQ(metric(out, "faas.invocations")->number_points.at(0).as_int, 1);
  EXPECT_EQ(metric(out, "faas.mem_usage"), nullptr);  // the report has durationMs only
  EXPECT_EQ(metric(out, "aws.lambda.memory_size"), nullptr);
}

TEST(Mapping, RuntimeDoneIsNotAnInvocationEndOnManagedInstancesNorReportOutside) {
  LambdaMapping mapping(options());  // not Managed Instances: the report adds no span
  MappingOutput out;
  Events events;
  events.line(kTracedReport);
  mapping.map(events.get(), kNow, out);
  EXPECT_TRUE(out.spans.empty());
  EXPECT_EQ(metric(out, "faas.invoke_duration"), nullptr);
  EXPECT_NE(metric(out, "faas.mem_usage"), nullptr);
}

// ---- log records ----

TEST(Mapping, PythonTextAndPlainLines) {
  LambdaMapping mapping(options());
  MappingOutput out;
  Events events;
  events
      .add(
          "function", "2024-05-14T09:12:05.321Z",
          R"("[ERROR]\t2024-05-14T09:12:05.320Z\t79b4f56e-95b1-4643-9700-2807f4e68189\tboom\tcontinued\n")")
      .line(
          R"({"time":"2022-10-12T00:03:50.000Z","type":"function","record":"[INFO] Hello world, I am a function!"})")
      .line(
          R"({"time":"2024-05-14T09:12:04.010Z","type":"extension","record":"time=\"2024-05-14T09:12:04Z\" level=info msg=\"[main] Waiting for next event...\" pkg=main"})")
      .add("function", "bad time", "not json at all")
      .add("function", "2024-05-14T09:12:04.010Z", "[1,2]");
  mapping.map(events.get(), kNow, out);
  ASSERT_EQ(out.logs.size(), 4u);  // the Python line is held: its start has not come
  EXPECT_EQ(mapping.held(), 1u);
  EXPECT_EQ(body(out.logs[0]), "[INFO] Hello world, I am a function!");
  EXPECT_EQ(out.logs[0].severity_number, 0);
  EXPECT_EQ(out.logs[0].time_unix_nano, at("2022-10-12T00:03:50.000Z"));
  EXPECT_EQ(
      body(out.logs[1]),
      R"(time="2024-05-14T09:12:04Z" level=info msg="[main] Waiting for next event..." pkg=main)");
  EXPECT_EQ(string_attribute(out.logs[1].attributes, "aws.lambda.log_type"), "extension");
  EXPECT_EQ(body(out.logs[2]), "not json at all");
  EXPECT_EQ(out.logs[2].time_unix_nano, kNow);  // unparsable envelope time: now
  EXPECT_EQ(body(out.logs[3]), "[1,2]");
  EXPECT_EQ(mapping.counters().unparsed_records, 4u);

  mapping.release_held(out);
  ASSERT_EQ(out.logs.size(), 5u);
  const LogRecord& python = out.logs[4];
  EXPECT_EQ(body(python), "boom\tcontinued");  // tabs unescaped, the newline dropped
  EXPECT_EQ(python.severity_number, 17);
  EXPECT_EQ(python.time_unix_nano, at("2024-05-14T09:12:05.320Z"));
  EXPECT_EQ(string_attribute(python.attributes, "faas.invocation_id"),
            "79b4f56e-95b1-4643-9700-2807f4e68189");
  EXPECT_EQ(mapping.counters().held_released_untraced, 1u);
}

TEST(Mapping, NodeJsonObjectsBecomeStructuredBodies) {
  LambdaMapping mapping(options());
  MappingOutput out;
  Events events;
  events
      .line(
          R"({"time":"2024-05-14T09:12:04.110Z","type":"platform.start","record":{"requestId":"79b4f56e-95b1-4643-9700-2807f4e68189","version":"$LATEST"}})")
      .line(
          R"({"time":"2024-05-14T09:12:05.322Z","type":"function","record":{"timestamp":"2024-05-14T09:12:05.321Z","level":"INFO","requestId":"79b4f56e-95b1-4643-9700-2807f4e68189","message":{"order":{"id":"o-1","items":[{"sku":"A","qty":2}],"meta":null},"ok":true}}})")
      .line(
          R"j({"time":"2024-05-14T09:12:05.330Z","type":"function","record":{"timestamp":"2024-05-14T09:12:05.329Z","level":"ERROR","requestId":"79b4f56e-95b1-4643-9700-2807f4e68189","message":{"errorType":"TypeError","errorMessage":"x is undefined","stackTrace":["TypeError: x is undefined","    at handler (/var/task/index.js:3:9)"]}}})j");
  mapping.map(events.get(), kNow, out);
  ASSERT_EQ(out.logs.size(), 2u);
  const LogRecord& info = out.logs[0];
  EXPECT_EQ(info.time_unix_nano, at("2024-05-14T09:12:05.321Z"));
  EXPECT_EQ(info.severity_number, 9);
  ASSERT_EQ(info.body.kind, AnyValue::Kind::kKvList);
  const AnyValue* order = field(info.body, "order");
  ASSERT_NE(order, nullptr);
  EXPECT_EQ(field(*order, "id")->string_value, "o-1");
  const AnyValue* items = field(*order, "items");
  ASSERT_EQ(items->kind, AnyValue::Kind::kArray);
  EXPECT_EQ(field(items->array_value.at(0), "qty")->int_value, 2);
  EXPECT_EQ(field(*order, "meta")->kind, AnyValue::Kind::kEmpty);
  EXPECT_TRUE(field(info.body, "ok")->bool_value);
  EXPECT_EQ(string_attribute(info.attributes, "faas.invocation_id"),
            "79b4f56e-95b1-4643-9700-2807f4e68189");
  EXPECT_EQ(attribute(info.attributes, "level"), nullptr);
  EXPECT_EQ(attribute(info.attributes, "timestamp"), nullptr);
  EXPECT_EQ(attribute(info.attributes, "requestId"), nullptr);
  EXPECT_TRUE(is_set(info.trace_id));

  const LogRecord& error = out.logs[1];
  EXPECT_EQ(error.severity_number, 17);
  EXPECT_EQ(field(error.body, "stackTrace")->array_value.at(1).string_value,
            "    at handler (/var/task/index.js:3:9)");
}

TEST(Mapping, PythonJsonAndPowertoolsObjectsKeepOtherKeysAsAttributes) {
  LambdaMapping mapping(options());
  MappingOutput out;
  Events events;
  events
      .line(
          R"({"time":"2024-05-14T09:12:05.400Z","type":"function","record":{"timestamp":"2024-05-14T09:12:05Z","level":"warning","message":"order stored","logger":"root","order":{"id":"o-1","lines":[{"sku":"A","qty":2}]},"big":18446744073709551615,"ratio":0.5}})")
      .line(
          R"({"time":"2026-07-01T10:00:00.000Z","type":"function","record":{"data":{"name":"QueryKiller.Tick","trace.trace_id":"abc"},"time":"2026-07-01T10:00:00.000Z","dataset":"retriever-traces"}})")
      .add("extension", "2024-05-14T09:12:05.400Z",
           R"({"level":"NOTICE","timestamp":"yesterday","message":[1,2.5,null,"x"]})")
      .add("function", "2024-05-14T09:12:05.400Z", R"({"level":"Critical","message":42})");
  mapping.map(events.get(), kNow, out);
  ASSERT_EQ(out.logs.size(), 4u);
  const LogRecord& python = out.logs[0];
  EXPECT_EQ(python.time_unix_nano, at("2024-05-14T09:12:05Z"));
  EXPECT_EQ(python.severity_number, 13);
  EXPECT_EQ(python.severity_text, "WARN");
  EXPECT_EQ(body(python), "order stored");
  EXPECT_EQ(string_attribute(python.attributes, "logger"), "root");
  const AnyValue* order = attribute(python.attributes, "order");
  ASSERT_NE(order, nullptr);
  ASSERT_EQ(order->kind, AnyValue::Kind::kKvList);
  EXPECT_EQ(field(field(*order, "lines")->array_value.at(0), "sku")->string_value, "A");
  EXPECT_EQ(string_attribute(python.attributes, "big"), "18446744073709551615");  // > INT64_MAX
  EXPECT_DOUBLE_EQ(attribute(python.attributes, "ratio")->double_value, 0.5);

  const LogRecord& powertools = out.logs[1];
  EXPECT_EQ(powertools.body.kind, AnyValue::Kind::kEmpty);  // no message: all keys attributes
  EXPECT_EQ(string_attribute(powertools.attributes, "dataset"), "retriever-traces");
  EXPECT_EQ(field(*attribute(powertools.attributes, "data"), "trace.trace_id")->string_value,
            "abc");
  EXPECT_EQ(powertools.time_unix_nano, at("2026-07-01T10:00:00.000Z"));

  const LogRecord& notice = out.logs[2];
  EXPECT_EQ(notice.severity_number, 0);
  EXPECT_EQ(notice.severity_text, "NOTICE");
  EXPECT_EQ(notice.time_unix_nano, at("2024-05-14T09:12:05.400Z"));          // unparsable timestamp
  EXPECT_EQ(string_attribute(notice.attributes, "timestamp"), "yesterday");  // not lost
  ASSERT_EQ(notice.body.kind, AnyValue::Kind::kArray);
  ASSERT_EQ(notice.body.array_value.size(), 4u);
  EXPECT_EQ(notice.body.array_value[0].int_value, 1);
  EXPECT_DOUBLE_EQ(notice.body.array_value[1].double_value, 2.5);
  EXPECT_EQ(notice.body.array_value[2].kind, AnyValue::Kind::kEmpty);
  EXPECT_EQ(notice.body.array_value[3].string_value, "x");

  EXPECT_EQ(out.logs[3].severity_number, 21);
  EXPECT_EQ(out.logs[3].body.kind, AnyValue::Kind::kInt);
  EXPECT_EQ(out.logs[3].body.int_value, 42);
  EXPECT_EQ(mapping.counters().unparsed_records, 0u);
}

TEST(Mapping, IntegersBeyondInt64KeepTheirExactTextAndTheRecordMapsNormally) {
  LambdaMapping mapping(options());
  MappingOutput out;
  Events events;  // as the emulator's JSON lines: simdjson's DOM would refuse the whole record
  events
      .add(
          "function", "2024-05-14T09:12:05.400Z",
          R"({"timestamp":"2024-05-14T09:12:05.321Z","level":"INFO","message":{"order":{"id":"o-1"},)"
          R"("big":123456789012345678901234567890,"ratio":1.5e-7,"ok":true},)"
          R"("neg":-98765432109876543210 ,"max":9223372036854775807,"min":-9223372036854775808,)"
          R"("u":9223372036854775808,"list":[1,18446744073709551616]})")
      .add("function", "2024-05-14T09:12:05.400Z",
           R"("{\"level\":\"WARN\",\"message\":\"in a string\",\"big\":-123456789012345678901}")");
  mapping.map(events.get(), kNow, out);
  ASSERT_EQ(out.logs.size(), 2u);
  const LogRecord& log = out.logs[0];
  EXPECT_EQ(log.severity_number, 9);
  EXPECT_EQ(log.time_unix_nano, at("2024-05-14T09:12:05.321Z"));
  ASSERT_EQ(log.body.kind, AnyValue::Kind::kKvList);
  EXPECT_EQ(field(*field(log.body, "order"), "id")->string_value, "o-1");
  const AnyValue* big = field(log.body, "big");
  ASSERT_EQ(big->kind, AnyValue::Kind::kString);
  EXPECT_EQ(big->string_value, "123456789012345678901234567890");
  EXPECT_DOUBLE_EQ(field(log.body, "ratio")->double_value, 1.5e-7);
  EXPECT_TRUE(field(log.body, "ok")->bool_value);
  EXPECT_EQ(string_attribute(log.attributes, "neg"), "-98765432109876543210");  // space trimmed
  EXPECT_EQ(attribute(log.attributes, "max")->int_value, INT64_MAX);
  EXPECT_EQ(attribute(log.attributes, "min")->int_value, INT64_MIN);
  EXPECT_EQ(string_attribute(log.attributes, "u"), "9223372036854775808");
  const AnyValue* list = attribute(log.attributes, "list");
  ASSERT_EQ(list->kind, AnyValue::Kind::kArray);
  ASSERT_EQ(list->array_value.size(), 2u);
  EXPECT_EQ(list->array_value[0].int_value, 1);
  EXPECT_EQ(list->array_value[1].string_value, "18446744073709551616");
  EXPECT_EQ(body(out.logs[1]), "in a string");
  EXPECT_EQ(string_attribute(out.logs[1].attributes, "big"), "-123456789012345678901");
  EXPECT_EQ(mapping.counters().unparsed_records, 0u);
}

TEST(Mapping, InvalidJsonObjectsAreKeptWholeEvenWhenPartlyRead) {
  LambdaMapping mapping(options());
  MappingOutput out;
  const std::vector<std::string> bad = {
      R"({"level":"INFO","message":"m","n":0123456789012345678901})",  // leading zero
      R"({"level":"INFO","message":"m","n":12x})",
      R"({"level":"INFO","message":"m","t":tru})",
      R"({"level":"INFO","message":"m","t":nul})",
      R"({"level":"INFO","message":{"a":[1,2}})",
      R"({"level":"INFO","message":"m"} {"x":1})",
      R"({"level":"INFO","message":"m"}})",
      R"({"level":"INFO","message":"m",})",
  };
  Events events;
  for (const std::string& record : bad) events.add("function", "2024-05-14T09:12:05.400Z", record);
  mapping.map(events.get(), kNow, out);
  ASSERT_EQ(out.logs.size(), bad.size());
  for (size_t i = 0; i < bad.size(); ++i) {
    SCOPED_TRACE(bad[i]);
    EXPECT_EQ(body(out.logs[i]), bad[i]);  // whole, never lost
    EXPECT_EQ(out.logs[i].severity_number, 0);
    EXPECT_EQ(out.logs[i].attributes.size(), 1u);  // only aws.lambda.log_type
    EXPECT_EQ(out.logs[i].time_unix_nano, at("2024-05-14T09:12:05.400Z"));
  }
  EXPECT_EQ(mapping.counters().unparsed_records, bad.size());
}

TEST(Mapping, JsonTextInAStringRecordIsReadAsAnObject) {
  LambdaMapping mapping(options());
  MappingOutput out;
  Events events;  // schema 2022-07-01 with JSON logging: the object arrives as a string
  events.add("function", "2024-05-14T09:12:05.400Z",
             R"("{\"level\":\"DEBUG\",\"message\":\"hi\",\"k\":1}")");
  mapping.map(events.get(), kNow, out);
  ASSERT_EQ(out.logs.size(), 1u);
  EXPECT_EQ(out.logs[0].severity_number, 5);
  EXPECT_EQ(body(out.logs[0]), "hi");
  EXPECT_EQ(attribute(out.logs[0].attributes, "k")->int_value, 1);
}

TEST(Mapping, InvalidUtf8IsReplacedAndCounted) {
  LambdaMapping mapping(options());
  MappingOutput out;
  Events events;
  events.add("function", "2024-05-14T09:12:05.400Z", "\"bad \xFF byte\"")
      .add("function", "2024-05-14T09:12:05.400Z", "{\"message\":\"x\xC3\",\"k\xFE\":\"v\"}")
      .add("function", "2024-05-14T09:12:05.400Z", "raw \xE2\x82 text");
  mapping.map(events.get(), kNow, out);
  ASSERT_EQ(out.logs.size(), 3u);
  EXPECT_EQ(body(out.logs[0]), "bad \xEF\xBF\xBD byte");
  EXPECT_EQ(body(out.logs[1]), "x\xEF\xBF\xBD");
  EXPECT_EQ(string_attribute(out.logs[1].attributes, "k\xEF\xBF\xBD"), "v");
  EXPECT_EQ(body(out.logs[2]), "raw \xEF\xBF\xBD text");
  EXPECT_EQ(mapping.counters().invalid_utf8, 3u);
}

// ---- holding ----

TEST(Mapping, LogBeforeItsStartIsHeldThenTraced) {
  LambdaMapping mapping(options());
  MappingOutput out1;
  {
    Events early;  // destroyed before the release: the held record owns its strings
    early.line(kTracedLog);
    mapping.map(early.get(), kNow, out1);
  }
  EXPECT_TRUE(out1.logs.empty());
  EXPECT_EQ(mapping.held(), 1u);
  out1.clear();

  Events later;
  later.line(kTracedStart);
  MappingOutput out2;
  mapping.map(later.get(), kNow + 10 * kMs, out2);
  EXPECT_EQ(mapping.held(), 0u);
  ASSERT_EQ(out2.logs.size(), 1u);
  EXPECT_EQ(body(out2.logs[0]), "slow downstream");
  EXPECT_EQ(hex(out2.logs[0].trace_id), "6352a70e1e2c502e358361800241fd45");
  EXPECT_EQ(hex(out2.logs[0].span_id), "24cd7d670fa455f0");
  EXPECT_EQ(string_attribute(out2.logs[0].attributes, "faas.invocation_id"),
            "459921b5-681c-4a96-beb0-81e0aa586026");
  EXPECT_EQ(out2.logs[0].observed_time_unix_nano, kNow);
  EXPECT_EQ(mapping.counters().held_released_untraced, 0u);
}

TEST(Mapping, HeldLogsExpireAfterHoldMs) {
  MappingOptions o = options();
  o.hold_ms = 2000;
  LambdaMapping mapping(o);
  {
    Events early;
    early.line(kTracedLog);
    MappingOutput out;
    mapping.map(early.get(), kNow, out);
    EXPECT_TRUE(out.logs.empty());
  }
  MappingOutput out;
  mapping.map({}, kNow + 1999 * kMs, out);
  EXPECT_TRUE(out.logs.empty());
  EXPECT_EQ(mapping.held(), 1u);
  mapping.map({}, kNow + 2000 * kMs, out);
  ASSERT_EQ(out.logs.size(), 1u);
  EXPECT_EQ(mapping.held(), 0u);
  EXPECT_FALSE(is_set(out.logs[0].trace_id));
  EXPECT_EQ(body(out.logs[0]), "slow downstream");
  EXPECT_EQ(string_attribute(out.logs[0].attributes, "faas.invocation_id"),
            "459921b5-681c-4a96-beb0-81e0aa586026");
  EXPECT_EQ(mapping.counters().held_released_untraced, 1u);
}

TEST(Mapping, HeldLogsAreBoundedOldestFirstAndReleasedAtFlush) {
  MappingOptions o = options();
  o.max_held_records = 2;
  LambdaMapping mapping(o);
  Events events;
  events.add("function", "2024-05-14T09:12:05.000Z", R"({"requestId":"r1","message":"one"})")
      .add("function", "2024-05-14T09:12:05.000Z", R"({"requestId":"r2","message":"two"})")
      .add("function", "2024-05-14T09:12:05.000Z", R"({"requestId":"r3","message":"three"})");
  MappingOutput out;
  mapping.map(events.get(), kNow, out);
  ASSERT_EQ(out.logs.size(), 1u);
  EXPECT_EQ(body(out.logs[0]), "one");
  EXPECT_EQ(mapping.held(), 2u);
  mapping.release_held(out);
  ASSERT_EQ(out.logs.size(), 3u);
  EXPECT_EQ(body(out.logs[1]), "two");
  EXPECT_EQ(body(out.logs[2]), "three");
  EXPECT_EQ(mapping.held(), 0u);
  EXPECT_EQ(mapping.counters().held_released_untraced, 3u);
}

// ---- tracing edge cases ----

TEST(Mapping, UnsampledInvocationExportsNoSpansButLogsKeepIds) {
  LambdaMapping mapping(options());
  MappingOutput out;
  Events events;
  events
      .line(
          R"({"time":"2024-05-14T09:12:04.110Z","type":"platform.start","record":{"requestId":"r-unsampled","tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1-6352a70e-1e2c502e358361800241fd45;Parent=35465b3a9e2f7c6a;Sampled=0"}}})")
      .add("function", "2024-05-14T09:12:04.111Z", R"("in progress")")
      .line(
          R"({"time":"2024-05-14T09:12:04.121Z","type":"platform.runtimeDone","record":{"requestId":"r-unsampled","status":"success","spans":[{"name":"responseLatency","start":"2024-05-14T09:12:04.110Z","durationMs":8.2}],"metrics":{"durationMs":10.6}}})");
  mapping.map(events.get(), kNow, out);
  EXPECT_TRUE(out.spans.empty());
  EXPECT_EQ(mapping.counters().unsampled, 1u);
  ASSERT_EQ(out.logs.size(), 1u);
  EXPECT_EQ(hex(out.logs[0].trace_id), "6352a70e1e2c502e358361800241fd45");
  EXPECT_TRUE(is_set(out.logs[0].span_id));
  EXPECT_EQ(out.logs[0].flags, 0u);
  EXPECT_NE(metric(out, "faas.invoke_duration"), nullptr);  // metrics do not sample
}

TEST(Mapping, MalformedTracingIsCountedAndTreatedAsAbsent) {
  LambdaMapping mapping(options());
  MappingOutput out;
  Events events;
  events
      .line(
          R"({"time":"2024-05-14T09:12:04.110Z","type":"platform.start","record":{"requestId":"r1","tracing":{"type":"X-Amzn-Trace-Id","value":"Root=garbage"}}})")
      .line(
          R"({"time":"2024-05-14T09:12:04.121Z","type":"platform.runtimeDone","record":{"requestId":"r1","status":"success"}})")
      .line(
          R"({"time":"2024-05-14T09:12:05.110Z","type":"platform.start","record":{"requestId":"r2","tracing":"Root=1-6352a70e-1e2c502e358361800241fd45"}})")
      .line(
          R"({"time":"2024-05-14T09:12:05.121Z","type":"platform.runtimeDone","record":{"requestId":"r2","status":"success"}})")
      .line(
          R"({"time":"2024-05-14T09:12:06.110Z","type":"platform.start","record":{"requestId":"r3","tracing":{"spanId":"not-hex","value":"Root=1-6352a70e-1e2c502e358361800241fd45;Sampled=1"}}})")
      .line(
          R"({"time":"2024-05-14T09:12:06.121Z","type":"platform.runtimeDone","record":{"requestId":"r3","status":"success"}})");
  mapping.map(events.get(), kNow, out);
  ASSERT_EQ(out.spans.size(), 3u);
  for (const Span& s : out.spans) {
    EXPECT_TRUE(is_set(s.trace_id));
    EXPECT_TRUE(is_set(s.span_id));
  }
  EXPECT_NE(hex(out.spans[0].trace_id), "6352a70e1e2c502e358361800241fd45");
  EXPECT_EQ(hex(out.spans[2].trace_id), "6352a70e1e2c502e358361800241fd45");  // spanId alone bad
  EXPECT_EQ(mapping.counters().bad_tracing, 3u);
}

// ---- bad input and platform logs ----

TEST(Mapping, UnknownTypesAreSkippedAndCountedKnownOnesIgnored) {
  LambdaMapping mapping(options());
  MappingOutput out;
  Events events;
  events.add("platform.fault", "2024-05-14T09:12:04.110Z", R"({"x":1})")
      .add("telemetry", "2024-05-14T09:12:04.110Z", R"("?")")
      .add("platform.logsDropped", "2024-05-14T09:12:04.110Z",
           R"({"droppedBytes":1,"droppedRecords":1,"reason":"slow"})")
      .add("platform.restoreReport", "2024-05-14T09:12:04.110Z", R"({"status":"success"})");
  mapping.map(events.get(), kNow, out);
  EXPECT_TRUE(out.logs.empty());
  EXPECT_TRUE(out.spans.empty());
  EXPECT_TRUE(out.metrics.empty());
  EXPECT_EQ(mapping.counters().unknown_types_skipped, 2u);
}

TEST(Mapping, MalformedPlatformRecordsAreSkippedWithoutHarm) {
  LambdaMapping mapping(options());
  MappingOutput out;
  Events events;
  events.add("platform.start", "2024-05-14T09:12:04.110Z", R"("a string")")
      .add("platform.start", "2024-05-14T09:12:04.110Z", R"({"requestId":7})")
      .add("platform.runtimeDone", "2024-05-14T09:12:04.110Z", R"({"requestId":)")
      .add("platform.report", "2024-05-14T09:12:04.110Z",
           R"({"requestId":"r1","metrics":"none","status":3})")
      .add(
          "platform.runtimeDone", "2024-05-14T09:12:04.110Z",
          R"({"requestId":"r2","metrics":{"durationMs":"slow"},"spans":[1,{"name":"responseLatency","start":"2022-08-02T12:01:23:521Z","durationMs":-5},{"start":"x"}]})")
      .add("platform.initReport", "2024-05-14T09:12:04.110Z", R"({"metrics":{"durationMs":-1}})")
      .add("platform.initRuntimeDone", "nonsense", R"([])");
  mapping.map(events.get(), kNow, out);
  // Only r2's runtimeDone makes a span (start unknown: at its end), with one child.
  ASSERT_EQ(out.spans.size(), 2u);
  EXPECT_EQ(out.spans[0].start_time_unix_nano, at("2024-05-14T09:12:04.110Z"));
  EXPECT_EQ(out.spans[0].end_time_unix_nano, at("2024-05-14T09:12:04.110Z"));
  EXPECT_EQ(out.spans[0].status.code, SpanStatus::Code::kUnset);  // no status: unknown
  EXPECT_EQ(out.spans[1].name, "responseLatency");
  EXPECT_EQ(out.spans[1].start_time_unix_nano, out.spans[0].start_time_unix_nano);
  EXPECT_EQ(out.spans[1].end_time_unix_nano, out.spans[1].start_time_unix_nano);
  EXPECT_EQ(metric(out, "faas.invoke_duration"), nullptr);
  EXPECT_EQ(metric(out, "faas.init_duration"), nullptr);
}

TEST(Mapping, TruncatedAndDamagedRecordsNeverCrashAndLogsAreNeverLost) {
  MappingOptions o = options();
  o.platform_logs = true;
  LambdaMapping mapping(o);
  Events fixtures = cold_invoke();
  fixtures.line(kTracedStart).line(kTracedLog).line(kTracedRuntimeDone).line(kTracedReport);
  size_t function_events = 0;
  size_t logs = 0;
  for (const LambdaEvent& event : fixtures.get()) {
    for (size_t cut = 0; cut <= event.record.size(); ++cut) {
      std::string damaged(event.record.substr(0, cut));
      if (cut < event.record.size()) damaged += static_cast<char>(0x80 | (cut & 0x7F));
      Events one;
      one.add(event.type, cut % 3 == 0 ? "garbage" : event.time, damaged);
      MappingOutput out;
      mapping.map(one.get(), kNow + cut, out);
      mapping.release_held(out);
      if (event.type == "function") ++function_events;
      for (const LogRecord& log : out.logs) {
        if (string_attribute(log.attributes, "aws.lambda.log_type") == "function") ++logs;
      }
    }
  }
  EXPECT_EQ(logs, function_events);
  EXPECT_EQ(mapping.held(), 0u);
}

TEST(Mapping, PlatformLogsInCloudWatchWording) {
  MappingOptions o = options();
  o.platform_logs = true;
  LambdaMapping mapping(o);
  MappingOutput out;
  Events events = cold_invoke();
  events
      .line(
          R"({"time":"2022-10-12T00:02:35.000Z","type":"platform.logsDropped","record":{"droppedBytes":12345,"droppedRecords":123,"reason":"Some logs were dropped"}})")
      .line(
          R"({"time":"2024-05-14T09:20:03.010Z","type":"platform.runtimeDone","record":{"requestId":"527cb862","status":"timeout","metrics":{"durationMs":3000.0}}})");
  mapping.map(events.get(), kNow, out);
  std::vector<std::string> bodies;
  for (const auto& log : out.logs) bodies.push_back(body(log));
  const std::vector<std::string> expected = {
      "INIT_START Runtime Version: nodejs:20.v22 Runtime Version ARN: "
      "arn:aws:lambda:us-east-1::runtime:da57",
      "TELEMETRY Name: telemetry-ext State: Subscribed Types: [platform,function]",
      "Hello from function initialization",
      "INIT_RUNTIME_DONE Status: success",
      "EXTENSION Name: telemetry-ext State: Ready Events: [INVOKE,SHUTDOWN]",
      "INIT_REPORT Init Duration: 689.41 ms Phase: init Status: success",
      "START RequestId: 79b4f56e-95b1-4643-9700-2807f4e68189 Version: $LATEST",
      "Hello from function handler { event: {} }",
      "END RequestId: 79b4f56e-95b1-4643-9700-2807f4e68189",
      "REPORT RequestId: 79b4f56e-95b1-4643-9700-2807f4e68189 Duration: 29.87 ms Billed "
      "Duration: 720 ms Memory Size: 256 MB Max Memory Used: 71 MB Init Duration: 689.41 ms",
      "LOGS_DROPPED DroppedRecords: 123 DroppedBytes: 12345 Reason: Some logs were dropped",
      "END RequestId: 527cb862 Status: timeout",
  };
  EXPECT_EQ(bodies, expected);
  const Span* invocation = span(out, "orders-api");
  ASSERT_NE(invocation, nullptr);
  const LogRecord& start = out.logs[6];
  EXPECT_EQ(string_attribute(start.attributes, "aws.lambda.log_type"), "platform.start");
  EXPECT_EQ(string_attribute(start.attributes, "faas.invocation_id"),
            "79b4f56e-95b1-4643-9700-2807f4e68189");
  EXPECT_EQ(start.trace_id, invocation->trace_id);
  EXPECT_EQ(out.logs[9].span_id, invocation->span_id);  // REPORT
  EXPECT_EQ(start.severity_number, 9);
  EXPECT_EQ(start.time_unix_nano, at("2024-05-14T09:12:04.110Z"));
  EXPECT_EQ(out.logs[10].severity_number, 13);
  EXPECT_EQ(out.logs[11].severity_number, 17);
  EXPECT_EQ(out.logs[11].severity_text, "ERROR");
}

TEST(Mapping, MetricsAggregatePerCall) {
  LambdaMapping mapping(options());
  MappingOutput out;
  Events events;
  for (int i = 0; i < 3; ++i) {
    std::string id = "r" + std::to_string(i);
    events.add("platform.start", "2024-05-14T09:12:0" + std::to_string(i) + ".000Z",
               R"({"requestId":")" + id + R"("})");
    events.add("platform.runtimeDone", "2024-05-14T09:12:0" + std::to_string(i) + ".500Z",
               R"({"requestId":")" + id + R"(","status":"success","metrics":{"durationMs":)" +
                   std::to_string(100 * (i + 1)) + "}}");
    events.add(
        "platform.report", "2024-05-14T09:12:0" + std::to_string(i) + ".600Z",
        R"({"requestId":")" + id +
            R"(","status":"success","metrics":{"durationMs":1,"billedDurationMs":2,"memorySizeMB":128,"maxMemoryUsedMB":)" +
            std::to_string(20 * (i + 1)) + "}}");
  }
  mapping.map(events.get(), kNow, out);
  const HistogramDataPoint& d = metric(out, "faas.invoke_duration")->histogram_points.at(0);
  EXPECT_EQ(d.count, 3u);
  EXPECT_DOUBLE_EQ(d.sum, 0.6);
  EXPECT_DOUBLE_EQ(*d.min, 0.1);
  EXPECT_DOUBLE_EQ(*d.max, 0.3);
  EXPECT_EQ(d.bucket_counts[5], 1u);  // (0.075, 0.1]: a value on a bound belongs below it
  EXPECT_EQ(d.bucket_counts[6], 1u);  // (0.1, 0.25]
  EXPECT_EQ(d.bucket_counts[7], 1u);  // (0.25, 0.5]
  EXPECT_EQ(d.start_time_unix_nano, at("2024-05-14T09:12:00.500Z"));
  EXPECT_EQ(d.time_unix_nano, at("2024-05-14T09:12:02.500Z"));
  const HistogramDataPoint& m = metric(out, "faas.mem_usage")->histogram_points.at(0);
  EXPECT_EQ(m.count, 3u);
  EXPECT_EQ(m.bucket_counts[1], 1u);  // (16, 32] MiB
  EXPECT_EQ(m.bucket_counts[2], 2u);  // (32, 64] MiB
  EXPECT_EQ(metric(out, "faas.invocations")->number_points.at(0).as_int, 3);
  EXPECT_EQ(metric(out, "faas.coldstarts"), nullptr);
  // A second call starts from zero.
  MappingOutput next;
  mapping.map({}, kNow, next);
  EXPECT_TRUE(next.metrics.empty());
}

}  // namespace
}  // namespace relay::otlp
