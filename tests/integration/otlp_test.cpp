// The otlp sink end to end: the real telemetry-relay with librelay-sink-otlp.so in the Lambda
// emulator, exporting to a local OtlpReceiver that decodes every request with the official
// OpenTelemetry schema. What the platform generated (Summary::subscriber_events) is the
// reference: every function line, invocation, runtimeDone span and report is looked for in
// what arrived. Checked once the extension has exited; nothing waits on a sleep.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "emulator.h"
#include "extension_run_fixture.h"
#include "otlp_receiver.h"
#include "receiver.h"

namespace relay::emu {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kFunction = "otlp-e2e-fn";
constexpr const char* kLogStream = "2026/11/29/[$LATEST]00112233445566778899aabbccddeeff";
constexpr const char* kTenant = "tenant-otlp";

// ---- what the platform generated ----

int64_t iso_ms(std::string_view iso) {  // 2024-05-14T09:12:05.320Z
  std::tm tm{};
  int ms = 0;
  if (std::sscanf(std::string(iso).c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon,
                  &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7) {
    return -1;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return int64_t(timegm(&tm)) * 1000 + ms;
}

int severity_number(std::string_view level) {
  if (level == "INFO") return 9;
  if (level == "WARN") return 13;
  if (level == "ERROR") return 17;
  return -1;
}

struct RuntimeSpan {
  std::string name;
  int64_t start_ms = 0;
  double duration_ms = 0;
};

struct Invocation {
  std::string request_id;
  std::string trace_id;   // X-Ray Root without "1-" and dashes: 32 hex
  std::string parent_id;  // X-Ray Parent: 16 hex
  std::vector<RuntimeSpan> runtime_spans;
};

// A function line as the otlp sink must show it: invocation, severity, time and the body's
// signature ("s:<text>" for a string body, "o:<sorted keys>" for a JSON message object).
struct FunctionLine {
  std::string key;
  bool json = false;
};

struct Generated {
  std::vector<Invocation> invocations;  // in platform.start order
  std::vector<FunctionLine> lines;
  int64_t init_start_ms = -1;
  int64_t init_runtime_done_ms = -1;
  int64_t init_report_ms = -1;
};

std::string line_key(std::string_view request_id, int severity, int64_t time_ms,
                     std::string_view signature) {
  return std::string(request_id) + " | " + std::to_string(severity) + " | " +
         std::to_string(time_ms) + " | " + std::string(signature);
}

std::string object_signature(std::vector<std::string> keys) {
  std::sort(keys.begin(), keys.end());
  std::string out = "o:";
  for (const auto& key : keys) out += key + ",";
  return out;
}

using JsonValue = simdjson::simdjson_result<simdjson::ondemand::value>;

std::string text_of(JsonValue value) {
  std::string_view text;
  if (value.get_string().get(text)) return {};
  return std::string(text);
}

std::string text_of(simdjson::ondemand::value& value) {
  std::string_view text;
  if (value.get_string().get(text)) return {};
  return std::string(text);
}

Generated generated(const std::vector<std::string>& events) {
  Generated g;
  simdjson::ondemand::parser parser;
  for (const std::string& text : events) {
    const simdjson::padded_string padded(text);
    simdjson::ondemand::document doc = parser.iterate(padded);
    const std::string type = text_of(doc["type"]);
    const std::string time = text_of(doc["time"]);
    simdjson::ondemand::value record = doc["record"];
    if (type == "platform.initStart") {
      g.init_start_ms = iso_ms(time);
    } else if (type == "platform.initRuntimeDone") {
      g.init_runtime_done_ms = iso_ms(time);
    } else if (type == "platform.initReport") {
      g.init_report_ms = iso_ms(time);
    } else if (type == "platform.start") {
      Invocation invocation;
      invocation.request_id = text_of(record["requestId"]);
      const std::string tracing = text_of(record["tracing"]["value"]);
      // Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=1
      const auto root = tracing.find("Root=1-");
      const auto parent = tracing.find("Parent=");
      if (root != std::string::npos && parent != std::string::npos) {
        invocation.trace_id = tracing.substr(root + 7, 8) + tracing.substr(root + 16, 24);
        invocation.parent_id = tracing.substr(parent + 7, 16);
      }
      g.invocations.push_back(invocation);
    } else if (type == "platform.runtimeDone") {
      const std::string request_id = text_of(record["requestId"]);
      std::vector<RuntimeSpan> spans;
      for (auto span : record["spans"].get_array()) {
        RuntimeSpan s;
        s.name = text_of(span["name"]);
        s.start_ms = iso_ms(text_of(span["start"]));
        s.duration_ms = span["durationMs"].get_double();
        spans.push_back(s);
      }
      for (auto& invocation : g.invocations) {
        if (invocation.request_id == request_id) invocation.runtime_spans = spans;
      }
    } else if (type == "function") {
      if (record.type() == simdjson::ondemand::json_type::string) {
        // timestamp<TAB>requestId<TAB>LEVEL<TAB>message (the message may hold tabs itself)
        const std::string line = text_of(record);
        const auto t1 = line.find('\t');
        const auto t2 = line.find('\t', t1 + 1);
        const auto t3 = line.find('\t', t2 + 1);
        g.lines.push_back(
            FunctionLine{line_key(line.substr(t1 + 1, t2 - t1 - 1),
                                  severity_number(line.substr(t2 + 1, t3 - t2 - 1)),
                                  iso_ms(line.substr(0, t1)), "s:" + line.substr(t3 + 1)),
                         false});
      } else {
        simdjson::ondemand::object object = record.get_object();
        std::string timestamp, level, request_id, signature;
        for (auto field : object) {
          std::string_view key_view;
          if (field.unescaped_key().get(key_view)) break;
          const std::string key(key_view);
          simdjson::ondemand::value value = field.value();
          if (key == "timestamp") timestamp = text_of(value);
          if (key == "level") level = text_of(value);
          if (key == "requestId") request_id = text_of(value);
          if (key == "message") {
            if (value.type() == simdjson::ondemand::json_type::string) {
              signature = "s:" + text_of(value);
            } else {
              std::vector<std::string> keys;
              for (auto member : value.get_object()) {
                std::string_view member_key;
                if (!member.unescaped_key().get(member_key)) keys.emplace_back(member_key);
              }
              signature = object_signature(keys);
            }
          }
        }
        g.lines.push_back(FunctionLine{
            line_key(request_id, severity_number(level), iso_ms(timestamp), signature), true});
      }
    }
  }
  return g;
}

// ---- what arrived ----

std::string attribute(const google::protobuf::RepeatedPtrField<otlp_pb::KeyValue>& attributes,
                      std::string_view key) {
  const otlp_pb::AnyValue* value = find_attribute(attributes, key);
  return value ? any_value_text(*value) : "";
}

std::string received_signature(const otlp_pb::AnyValue& body) {
  if (body.has_string_value()) return "s:" + body.string_value();
  if (body.has_kvlist_value()) {
    std::vector<std::string> keys;
    for (const auto& kv : body.kvlist_value().values()) keys.push_back(kv.key());
    return object_signature(keys);
  }
  return "?:" + any_value_text(body);
}

std::string received_key(const otlp_pb::LogRecord& record) {
  return line_key(attribute(record.attributes(), "faas.invocation_id"), record.severity_number(),
                  int64_t(record.time_unix_nano() / 1000000), received_signature(record.body()));
}

const OtlpSpan* server_span(const std::vector<OtlpSpan>& spans, const std::string& request_id) {
  for (const auto& span : spans) {
    if (span.item.kind() == otlp_pb::Span::SPAN_KIND_SERVER &&
        attribute(span.item.attributes(), "faas.invocation_id") == request_id) {
      return &span;
    }
  }
  return nullptr;
}

size_t count_server_spans(const std::vector<OtlpSpan>& spans) {
  return size_t(std::count_if(spans.begin(), spans.end(), [](const OtlpSpan& s) {
    return s.item.kind() == otlp_pb::Span::SPAN_KIND_SERVER;
  }));
}

// Sum: the total of every data point; Histogram: the total count.
struct MetricTotal {
  size_t metrics = 0;
  std::string kind;
  std::string unit;
  double total = 0;
  bool all_delta = true;
};

MetricTotal metric_total(const std::vector<OtlpMetric>& metrics, const std::string& name) {
  MetricTotal t;
  for (const auto& item : metrics) {
    const otlp_pb::Metric& m = item.item;
    if (m.name() != name) continue;
    t.metrics++;
    t.unit = m.unit();
    if (m.has_sum()) {
      t.kind = "sum";
      t.all_delta &= m.sum().aggregation_temporality() ==
                     opentelemetry::proto::metrics::v1::AGGREGATION_TEMPORALITY_DELTA;
      for (const auto& p : m.sum().data_points()) {
        t.total += p.has_as_int() ? double(p.as_int()) : p.as_double();
      }
    } else if (m.has_histogram()) {
      t.kind = "histogram";
      t.all_delta &= m.histogram().aggregation_temporality() ==
                     opentelemetry::proto::metrics::v1::AGGREGATION_TEMPORALITY_DELTA;
      for (const auto& p : m.histogram().data_points()) t.total += double(p.count());
    } else if (m.has_gauge()) {
      t.kind = "gauge";
      for (const auto& p : m.gauge().data_points()) {
        t.total += p.has_as_int() ? double(p.as_int()) : p.as_double();
      }
    }
  }
  return t;
}

size_t count_lines_with(const std::vector<std::string>& lines, const std::string& needle) {
  return size_t(std::count_if(lines.begin(), lines.end(), [&](const std::string& line) {
    return line.find(needle) != std::string::npos && line.find("] summary {") == std::string::npos;
  }));
}

// Every function line arrived exactly once as a log record (the sink's records of extension
// lines and anything else are ignored); returns the matched records by key.
std::multimap<std::string, otlp_pb::LogRecord> expect_every_line_once(
    const Generated& g, const std::vector<OtlpLogRecord>& records) {
  std::multimap<std::string, otlp_pb::LogRecord> received;
  for (const auto& record : records) received.emplace(received_key(record.item), record.item);
  std::map<std::string, size_t> expected;
  for (const auto& line : g.lines) expected[line.key]++;
  size_t wrong = 0;
  for (const auto& [key, count] : expected) {
    const size_t got = received.count(key);
    if (got != count && wrong++ < 5) {
      ADD_FAILURE() << "function line arrived " << got << " times, expected " << count << ": "
                    << key;
    }
  }
  if (wrong > 0) {
    std::string some;
    size_t n = 0;
    for (const auto& [key, record] : received) {
      if (n++ < 8) some += "\n  " + key;
    }
    ADD_FAILURE() << wrong << " of " << expected.size()
                  << " distinct function lines did not arrive exactly once; some received keys"
                     " (invocation | severity | time ms | body):"
                  << some;
  }
  return received;
}

struct Wire {
  std::string protocol;     // RELAY_OTLP_PROTOCOL
  std::string compression;  // RELAY_OTLP_COMPRESSION
  std::string content_type;
  std::string content_encoding;  // expected on every request; empty: none
};

void PrintTo(const Wire& wire, std::ostream* out) {
  *out << wire.protocol << " + " << wire.compression;
}

std::string wire_name(const ::testing::TestParamInfo<Wire>& info) {
  return info.param.protocol == "http/json" ? "JsonNone" : "ProtobufGzip";
}

// The requests in arrival order, for failure messages: path, status, items.
std::string request_sequence(const OtlpReceiver& receiver) {
  std::string out;
  for (const auto& request : receiver.requests()) {
    out += "\n  " + request.uri + " -> " + std::to_string(request.status) + " (" +
           std::to_string(request.items) + " items)";
  }
  return out;
}

// The spans, for failure messages: name, kind, invocation id, trace and span ids.
std::string span_list(const std::vector<OtlpSpan>& spans) {
  std::string out;
  for (const auto& span : spans) {
    out += "\n  " + span.item.name() + " kind " + std::to_string(span.item.kind()) + " " +
           attribute(span.item.attributes(), "faas.invocation_id") + " trace " +
           hex_id(span.item.trace_id()) + " span " + hex_id(span.item.span_id()) + " parent " +
           hex_id(span.item.parent_span_id());
  }
  return out;
}

class OtlpTest : public ExtensionRunFixture {
 protected:
  OtlpTest() : ExtensionRunFixture("relay_otlp") {}

  // The otlp sink alone against `receiver`, 3 settled invocations of mixed text and JSON lines.
  Options otlp_options(const OtlpReceiver& receiver, const Wire& wire, int invocations = 3) const {
    Options options = extension_options(invocations);
    options.log_format = LogFormat::kMixed;
    options.log_bursts = 2;
    options.logs_per_invoke = 12;
    options.function.name = kFunction;
    options.function.log_stream = kLogStream;
    options.env["RELAY_PLUGIN_DIR"] = plugin_dir({RELAY_OTLP_PLUGIN});
    options.env["RELAY_SINKS"] = "otlp";
    options.env["RELAY_OTLP_ENDPOINT"] = receiver.url();
    options.env["RELAY_OTLP_PROTOCOL"] = wire.protocol;
    options.env["RELAY_OTLP_COMPRESSION"] = wire.compression;
    return options;
  }

  // Every request was a POST of this wire format to an OTLP path, and decoded (a 400 here is
  // the sink's encoding error: the receiver's reason says which).
  static void expect_wire(const OtlpReceiver& receiver, const Wire& wire) {
    const auto requests = receiver.requests();
    ASSERT_FALSE(requests.empty());
    for (const auto& request : requests) {
      EXPECT_EQ(request.method, "POST");
      EXPECT_TRUE(request.signal.has_value()) << request.uri;
      EXPECT_EQ(request.header("Content-Type"), wire.content_type) << request.uri;
      const std::string encoding = request.header("Content-Encoding");
      if (wire.content_encoding.empty()) {
        EXPECT_TRUE(encoding.empty() || encoding == "identity") << request.uri << ": " << encoding;
      } else {
        EXPECT_EQ(encoding, wire.content_encoding) << request.uri;
      }
      EXPECT_NE(request.status, 400) << request.uri << ": " << request.error;
      EXPECT_NE(request.status, 415) << request.uri << ": " << request.error;
    }
  }
};

class OtlpWireTest : public OtlpTest, public ::testing::WithParamInterface<Wire> {};

INSTANTIATE_TEST_SUITE_P(Encodings, OtlpWireTest,
                         ::testing::Values(Wire{"http/protobuf", "gzip", "application/x-protobuf",
                                                "gzip"},
                                           Wire{"http/json", "none", "application/json", ""}),
                         wire_name);

// Logs: every function line once, with its severity, time, invocation id and body (text: the
// message; JSON: `message`, the other keys as attributes), and its invocation's trace context.
TEST_P(OtlpWireTest, EveryFunctionLineArrivesOnceAsALogRecordWithItsTraceContext) {
  OtlpReceiver receiver;
  receiver.start();
  Options options = otlp_options(receiver, GetParam());
  options.tenant_id = kTenant;  // a key of JSON records that is not level/message/...
  const Summary summary = Emulator(options).run();
  ASSERT_TRUE(summary.clean(3));
  expect_wire(receiver, GetParam());

  const Generated g = generated(summary.subscriber_events);
  ASSERT_EQ(g.invocations.size(), 3u);
  ASSERT_EQ(g.lines.size(), 36u);
  const auto records = receiver.log_records();
  const auto matched = expect_every_line_once(g, records);
  const auto spans = receiver.spans();

  size_t json_checked = 0;
  for (const auto& line : g.lines) {
    const std::string request_id = line.key.substr(0, line.key.find(' '));
    const auto invocation =
        std::find_if(g.invocations.begin(), g.invocations.end(),
                     [&](const Invocation& i) { return i.request_id == request_id; });
    ASSERT_NE(invocation, g.invocations.end());
    const OtlpSpan* server = server_span(spans, request_id);
    const auto [begin, end] = matched.equal_range(line.key);
    for (auto it = begin; it != end; ++it) {
      const otlp_pb::LogRecord& record = it->second;
      EXPECT_EQ(hex_id(record.trace_id()), invocation->trace_id) << line.key;
      if (server) {
        EXPECT_EQ(hex_id(record.span_id()), hex_id(server->item.span_id()))
            << "a log record's span id is its invocation span's: " << line.key;
      }
      if (line.json) {
        EXPECT_EQ(attribute(record.attributes(), "tenantId"), kTenant) << line.key;
        EXPECT_EQ(find_attribute(record.attributes(), "message"), nullptr) << line.key;
        EXPECT_EQ(find_attribute(record.attributes(), "level"), nullptr) << line.key;
        ++json_checked;
      }
    }
  }
  EXPECT_GT(json_checked, 0u);
  // Platform events are not log records unless RELAY_OTLP_PLATFORM_LOGS=true.
  for (const auto& record : records) {
    EXPECT_THAT(record.item.body().string_value(), Not(HasSubstr("RequestId: ")));
  }
}

// Traces: one SERVER span per invocation (the function's name, X-Ray trace id and parent, the
// runtimeDone spans as children), and one init span with faas.coldstart.
TEST_P(OtlpWireTest, EachInvocationIsAServerSpanWithItsRuntimeSpansAndOneInitSpan) {
  OtlpReceiver receiver;
  receiver.start();
  const Summary summary = Emulator(otlp_options(receiver, GetParam())).run();
  ASSERT_TRUE(summary.clean(3));
  expect_wire(receiver, GetParam());

  const Generated g = generated(summary.subscriber_events);
  ASSERT_EQ(g.invocations.size(), 3u);
  const auto spans = receiver.spans();
  std::set<std::string> span_ids;
  for (const auto& span : spans) {
    EXPECT_EQ(span.item.trace_id().size(), 16u) << span.item.name();
    EXPECT_EQ(span.item.span_id().size(), 8u) << span.item.name();
    EXPECT_LE(span.item.start_time_unix_nano(), span.item.end_time_unix_nano()) << span.item.name();
    EXPECT_TRUE(span_ids.insert(span.item.trace_id() + span.item.span_id()).second)
        << "span exported twice: " << span.item.name();
  }
  EXPECT_EQ(count_server_spans(spans), 3u);

  for (size_t i = 0; i < g.invocations.size(); ++i) {
    const Invocation& invocation = g.invocations[i];
    SCOPED_TRACE("invocation " + std::to_string(i) + " " + invocation.request_id);
    const OtlpSpan* server = server_span(spans, invocation.request_id);
    ASSERT_NE(server, nullptr);
    EXPECT_EQ(server->item.name(), kFunction);
    EXPECT_EQ(hex_id(server->item.trace_id()), invocation.trace_id);
    EXPECT_EQ(hex_id(server->item.parent_span_id()), invocation.parent_id);
    EXPECT_NE(server->item.status().code(),
              opentelemetry::proto::trace::v1::Status::STATUS_CODE_ERROR);
    EXPECT_GT(server->item.end_time_unix_nano(), server->item.start_time_unix_nano());
    if (i == 0) {
      EXPECT_EQ(attribute(server->item.attributes(), "faas.coldstart"), "true");
    } else {
      EXPECT_NE(attribute(server->item.attributes(), "faas.coldstart"), "true")
          << "faas.coldstart on the first invocation only";
    }

    ASSERT_EQ(invocation.runtime_spans.size(), 2u);
    for (const RuntimeSpan& expected : invocation.runtime_spans) {
      SCOPED_TRACE(expected.name);
      std::vector<const otlp_pb::Span*> children;
      for (const auto& span : spans) {
        if (span.item.parent_span_id() == server->item.span_id() &&
            span.item.trace_id() == server->item.trace_id() && span.item.name() == expected.name) {
          children.push_back(&span.item);
        }
      }
      ASSERT_EQ(children.size(), 1u);
      EXPECT_NEAR(double(children[0]->start_time_unix_nano() / 1000000), double(expected.start_ms),
                  1.0);
      EXPECT_NEAR(
          double(children[0]->end_time_unix_nano() - children[0]->start_time_unix_nano()) / 1e6,
          expected.duration_ms, 1.0);
    }
  }

  std::vector<const otlp_pb::Span*> init;
  for (const auto& span : spans) {
    if (attribute(span.item.attributes(), "faas.coldstart") == "true" &&
        find_attribute(span.item.attributes(), "faas.invocation_id") == nullptr) {
      init.push_back(&span.item);
    }
  }
  ASSERT_EQ(init.size(), 1u) << "one init span with faas.coldstart=true";
  EXPECT_NE(init[0]->kind(), otlp_pb::Span::SPAN_KIND_SERVER);
  EXPECT_NEAR(double(init[0]->start_time_unix_nano() / 1000000), double(g.init_start_ms), 1.0);
  const double init_end_ms = double(init[0]->end_time_unix_nano() / 1000000);
  EXPECT_TRUE(std::abs(init_end_ms - double(g.init_runtime_done_ms)) <= 1.0 ||
              std::abs(init_end_ms - double(g.init_report_ms)) <= 1.0)
      << "init span ends at initRuntimeDone (" << g.init_runtime_done_ms << ") or initReport ("
      << g.init_report_ms << "), not " << init_end_ms;
}

// Metrics: counts that add up over every delta export, and the resource on every request.
TEST_P(OtlpWireTest, MetricsAddUpAndEveryRequestCarriesTheLambdaResource) {
  OtlpReceiver receiver;
  receiver.start();
  Options options = otlp_options(receiver, GetParam());
  options.env["OTEL_RESOURCE_ATTRIBUTES"] = "deployment.environment=e2e,team=payments";
  const Summary summary = Emulator(options).run();
  ASSERT_TRUE(summary.clean(3));
  expect_wire(receiver, GetParam());

  const auto metrics = receiver.metrics();
  ASSERT_FALSE(metrics.empty());
  const MetricTotal invocations = metric_total(metrics, "faas.invocations");
  EXPECT_EQ(invocations.kind, "sum");
  EXPECT_EQ(invocations.total, 3);
  EXPECT_TRUE(invocations.all_delta);
  const MetricTotal duration = metric_total(metrics, "faas.invoke_duration");
  EXPECT_EQ(duration.kind, "histogram");
  EXPECT_EQ(duration.total, 3) << "histogram count over every export";
  EXPECT_EQ(duration.unit, "s");
  EXPECT_TRUE(duration.all_delta);
  const MetricTotal coldstarts = metric_total(metrics, "faas.coldstarts");
  EXPECT_EQ(coldstarts.total, 1);
  const MetricTotal init_duration = metric_total(metrics, "faas.init_duration");
  EXPECT_EQ(init_duration.kind, "histogram");
  EXPECT_EQ(init_duration.total, 1);
  EXPECT_EQ(metric_total(metrics, "faas.errors").total, 0);
  EXPECT_EQ(metric_total(metrics, "faas.timeouts").total, 0);

  // Every request, every signal: the resource once, with the function's identity.
  auto check_resource = [&](const otlp_pb::Resource& resource, const std::string& what) {
    SCOPED_TRACE(what);
    const auto& a = resource.attributes();
    EXPECT_EQ(attribute(a, "service.name"), kFunction);
    EXPECT_EQ(attribute(a, "cloud.provider"), "aws");
    EXPECT_EQ(attribute(a, "cloud.platform"), "aws_lambda");
    EXPECT_EQ(attribute(a, "cloud.region"), "us-east-1");
    EXPECT_EQ(attribute(a, "faas.name"), kFunction);
    EXPECT_EQ(attribute(a, "faas.version"), "$LATEST");
    EXPECT_EQ(attribute(a, "faas.instance"), kLogStream);
    const otlp_pb::AnyValue* memory = find_attribute(a, "faas.max_memory");
    ASSERT_NE(memory, nullptr);
    EXPECT_TRUE(memory->has_int_value()) << "faas.max_memory is an int (bytes)";
    EXPECT_EQ(memory->int_value(), 128 * 1048576);
    EXPECT_EQ(attribute(a, "deployment.environment"), "e2e");
    EXPECT_EQ(attribute(a, "team"), "payments");
  };
  for (const auto& request : receiver.logs_requests()) {
    ASSERT_EQ(request.resource_logs_size(), 1);
    check_resource(request.resource_logs(0).resource(), "logs");
    for (const auto& scope : request.resource_logs(0).scope_logs()) {
      EXPECT_FALSE(scope.scope().name().empty());
      EXPECT_FALSE(scope.scope().version().empty());
    }
  }
  for (const auto& request : receiver.traces_requests()) {
    ASSERT_EQ(request.resource_spans_size(), 1);
    check_resource(request.resource_spans(0).resource(), "traces");
  }
  const auto metrics_requests = receiver.metrics_requests();
  for (const auto& request : metrics_requests) {
    ASSERT_EQ(request.resource_metrics_size(), 1);
    check_resource(request.resource_metrics(0).resource(), "metrics");
  }
  // Known from the INVOKE event's invokedFunctionArn: on the reports' metrics at least.
  ASSERT_FALSE(metrics_requests.empty());
  EXPECT_EQ(attribute(metrics_requests.back().resource_metrics(0).resource().attributes(),
                      "cloud.account.id"),
            "123456789012");
}

// A collector that answers 503 (Retry-After 1) to the first request of each signal, then 200,
// gets everything exactly once per signal. The run's invocations take less than the second the
// collector asks for, so the retries come in the SHUTDOWN drain: one second per signal, more
// than Lambda's 2 s, hence the longer window here.
TEST_P(OtlpWireTest, Unavailable503ThenOkGetsEverythingExactlyOncePerSignal) {
  OtlpReceiver receiver;
  receiver.start();
  receiver.push_answers({OtlpAnswer::status_only(503, "1")});
  Options options = otlp_options(receiver, GetParam());
  options.shutdown_ms = 10000;
  const Summary summary = Emulator(options).run();
  ASSERT_TRUE(summary.clean(3));
  expect_wire(receiver, GetParam());

  SCOPED_TRACE("requests:" + request_sequence(receiver));
  for (const OtlpSignal signal : kOtlpSignals) {
    size_t refused = 0;
    size_t accepted = 0;
    for (const auto& request : receiver.requests()) {
      if (request.signal != signal) continue;
      refused += request.status == 503 ? 1 : 0;
      accepted += request.status == 200 ? 1 : 0;
    }
    EXPECT_EQ(refused, 1u) << signal_name(signal);
    EXPECT_GE(accepted, 1u) << signal_name(signal) << ": retried after the 503";
  }
  const Generated g = generated(summary.subscriber_events);
  expect_every_line_once(g, receiver.log_records());
  const auto spans = receiver.spans();
  EXPECT_EQ(count_server_spans(spans), 3u) << span_list(spans);
  std::set<std::string> span_ids;
  for (const auto& span : spans) {
    EXPECT_TRUE(span_ids.insert(span.item.trace_id() + span.item.span_id()).second)
        << "span exported twice: " << span.item.name();
  }
  const auto metrics = receiver.metrics();
  EXPECT_EQ(metric_total(metrics, "faas.invocations").total, 3);
  EXPECT_EQ(metric_total(metrics, "faas.invoke_duration").total, 3);
  EXPECT_EQ(metric_total(metrics, "faas.coldstarts").total, 1);
}

// RELAY_OTLP_SIGNALS=logs: only /v1/logs is called. RELAY_OTLP_HEADERS reach the collector
// URL-decoded and never the log.
TEST_F(OtlpTest, SignalsLogsSendsOnlyLogsWithTheConfiguredHeaders) {
  OtlpReceiver receiver;
  receiver.start();
  const Wire wire{"http/protobuf", "gzip", "application/x-protobuf", "gzip"};
  Options options = otlp_options(receiver, wire);
  options.env["RELAY_OTLP_SIGNALS"] = "logs";
  options.env["RELAY_OTLP_HEADERS"] = "x-api-key=s3cr3t%20value,x-team=payments";
  const Summary summary = Emulator(options).run();
  ASSERT_TRUE(summary.clean(3));
  expect_wire(receiver, wire);

  EXPECT_GT(receiver.log_record_count(), 0u);
  EXPECT_EQ(receiver.request_count(OtlpSignal::kTraces), 0u);
  EXPECT_EQ(receiver.request_count(OtlpSignal::kMetrics), 0u);
  for (const auto& request : receiver.requests()) {
    EXPECT_EQ(request.uri, "/v1/logs");
    EXPECT_EQ(request.header("x-api-key"), "s3cr3t value");
    EXPECT_EQ(request.header("x-team"), "payments");
  }
  expect_every_line_once(generated(summary.subscriber_events), receiver.log_records());
  for (const auto& line : relay_log()) EXPECT_THAT(line, Not(HasSubstr("s3cr3t")));
}

// RELAY_OTLP_PLATFORM_LOGS=true: platform events are log records too, in CloudWatch's words.
TEST_F(OtlpTest, PlatformLogsInCloudWatchWording) {
  OtlpReceiver receiver;
  receiver.start();
  const Wire wire{"http/protobuf", "gzip", "application/x-protobuf", "gzip"};
  Options options = otlp_options(receiver, wire);
  options.env["RELAY_OTLP_PLATFORM_LOGS"] = "true";
  const Summary summary = Emulator(options).run();
  ASSERT_TRUE(summary.clean(3));

  const Generated g = generated(summary.subscriber_events);
  const auto records = receiver.log_records();
  for (const auto& invocation : g.invocations) {
    for (const char* word : {"START", "END", "REPORT"}) {
      const std::string prefix = std::string(word) + " RequestId: " + invocation.request_id;
      const auto n = std::count_if(records.begin(), records.end(), [&](const OtlpLogRecord& r) {
        return r.item.body().string_value().rfind(prefix, 0) == 0;
      });
      EXPECT_EQ(n, 1) << prefix;
    }
  }
  expect_every_line_once(g, records);
}

// 415 to everything: the sink drops and counts, says so once, and the extension runs on.
TEST_F(OtlpTest, UnsupportedMediaTypeIsSurvivedWithOneClearLogLine) {
  OtlpReceiver receiver;
  receiver.start();
  receiver.set_default_answer(OtlpAnswer::status_only(415));
  const Wire wire{"http/protobuf", "gzip", "application/x-protobuf", "gzip"};
  const Summary summary = Emulator(otlp_options(receiver, wire)).run();
  ASSERT_TRUE(summary.clean(3));

  EXPECT_GE(receiver.request_count(), 3u);
  EXPECT_EQ(receiver.log_record_count(), 0u);
  // "HTTP 415", not "415": the summary line's counters may contain those digits.
  EXPECT_EQ(count_lines_with(relay_log(), "HTTP 415"), 1u) << "one log line for the 415s";
  const auto relay = relay_summary();
  ASSERT_TRUE(relay);
  EXPECT_GT(relay->getObject("sinks")->getObject("otlp")->getValue<uint64_t>("dropped_by_sink"),
            0u);
}

// A proxy's HTML page answered 200: delivered as far as HTTP goes, said once, no crash or stall.
TEST_F(OtlpTest, HtmlAnswerIsSurvivedWithOneClearLogLine) {
  OtlpReceiver receiver;
  receiver.start();
  receiver.set_default_answer(OtlpAnswer::raw(
      200, "text/html", "<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>"));
  const Wire wire{"http/json", "none", "application/json", ""};
  const Summary summary = Emulator(otlp_options(receiver, wire)).run();
  ASSERT_TRUE(summary.clean(3));
  expect_wire(receiver, wire);

  expect_every_line_once(generated(summary.subscriber_events), receiver.log_records());
  size_t html_lines = 0;
  for (const auto& line : relay_log()) {
    std::string lower = line;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (lower.find("html") != std::string::npos && lower.find("] summary {") == std::string::npos) {
      ++html_lines;
    }
  }
  EXPECT_EQ(html_lines, 1u) << "one log line about the HTML answers";
}

// RELAY_SINKS=http,otlp: the http collector gets every event byte for byte, the OTLP receiver
// every function line once.
TEST_F(OtlpTest, BesideTheHttpSinkBothGetEverything) {
  Receiver collector;
  collector.start();
  OtlpReceiver receiver;
  receiver.start();
  const Wire wire{"http/protobuf", "gzip", "application/x-protobuf", "gzip"};
  Options options = otlp_options(receiver, wire);
  options.env["RELAY_PLUGIN_DIR"] = plugin_dir({RELAY_HTTP_PLUGIN, RELAY_OTLP_PLUGIN});
  options.env["RELAY_SINKS"] = "http,otlp";
  options.env["DISPATCH_POST_URI"] = collector.url();
  const Summary summary = Emulator(options).run();
  ASSERT_TRUE(summary.clean(3));
  expect_wire(receiver, wire);

  const DeliveryCheck check = check_delivery(summary.subscriber_events, collector.event_texts());
  EXPECT_TRUE(check.exact()) << "missing " << check.missing << " duplicates " << check.duplicates;
  expect_every_line_once(generated(summary.subscriber_events), receiver.log_records());
  EXPECT_EQ(count_server_spans(receiver.spans()), 3u);
  const auto relay = relay_summary();
  ASSERT_TRUE(relay);
  for (const char* sink : {"http", "otlp"}) {
    EXPECT_EQ(relay->getObject("sinks")->getObject(sink)->getValue<uint64_t>("delivered"),
              summary.events_for_subscriber)
        << sink;
  }
}

}  // namespace
}  // namespace relay::emu
