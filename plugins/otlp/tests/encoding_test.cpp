// The OTLP encoders and the export response parser, checked against the official OpenTelemetry
// schema: Debian's protoc-generated classes (relay_otlp_proto). Each request is
//  - encoded to protobuf, parsed with ParseFromString and compared field by field (literal
//    expectations for the rich requests, so a wrong field number or wire type fails), and
//    byte-compared with SerializeAsString() of the equivalent official message, built from the
//    same model by to_proto() below (proto3 serialization of these messages is deterministic:
//    fields in number order, no maps, no unknown fields);
//  - encoded to JSON and parsed with JsonStringToMessage (strict: unknown keys fail) into the
//    same classes, compared with the same expectations.

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <opentelemetry/proto/collector/logs/v1/logs_service.pb.h>
#include <opentelemetry/proto/collector/metrics/v1/metrics_service.pb.h>
#include <opentelemetry/proto/collector/trace/v1/trace_service.pb.h>

#include <cmath>
#include <limits>
#include <regex>

#include "export_response.h"
#include "json_encoder.h"
#include "protobuf_encoder.h"

namespace relay::otlp {
namespace {

namespace pb = opentelemetry::proto;
using pb::collector::logs::v1::ExportLogsServiceRequest;
using pb::collector::metrics::v1::ExportMetricsServiceRequest;
using pb::collector::trace::v1::ExportTraceServiceRequest;
using PbAnyValue = pb::common::v1::AnyValue;
using PbKeyValues = google::protobuf::RepeatedPtrField<pb::common::v1::KeyValue>;

constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr uint64_t kUint64Max = std::numeric_limits<uint64_t>::max();

// ---------------------------------------------------------------------------------------------
// The model as official messages: the "equivalent message" for the byte comparison.

void to_proto(const AnyValue& v, PbAnyValue* out);

void to_proto(const Attributes& attributes, PbKeyValues* out) {
  for (const KeyValue& kv : attributes) {
    auto* pkv = out->Add();
    pkv->set_key(std::string(kv.key));
    to_proto(kv.value, pkv->mutable_value());
  }
}

void to_proto(const AnyValue& v, PbAnyValue* out) {
  switch (v.kind) {
    case AnyValue::Kind::kEmpty:
      break;
    case AnyValue::Kind::kString:
      out->set_string_value(std::string(v.string_value));
      break;
    case AnyValue::Kind::kBool:
      out->set_bool_value(v.bool_value);
      break;
    case AnyValue::Kind::kInt:
      out->set_int_value(v.int_value);
      break;
    case AnyValue::Kind::kDouble:
      out->set_double_value(v.double_value);
      break;
    case AnyValue::Kind::kArray: {
      auto* array = out->mutable_array_value();
      for (const AnyValue& element : v.array_value) to_proto(element, array->add_values());
      break;
    }
    case AnyValue::Kind::kKvList:
      to_proto(v.kvlist_value, out->mutable_kvlist_value()->mutable_values());
      break;
  }
}

template <class ResourceX, class ScopeX>
void resource_and_scope(const Resource* resource, const Scope& scope, ResourceX* rx, ScopeX* sx) {
  if (resource != nullptr && !resource->attributes.empty()) {
    to_proto(resource->attributes, rx->mutable_resource()->mutable_attributes());
  }
  if (!scope.name.empty() || !scope.version.empty()) {
    sx->mutable_scope()->set_name(std::string(scope.name));
    sx->mutable_scope()->set_version(std::string(scope.version));
  }
}

template <size_t N>
std::string id_bytes(const std::array<uint8_t, N>& id) {
  return is_set(id) ? std::string(id.begin(), id.end()) : std::string();
}

ExportLogsServiceRequest to_proto(const LogsRequest& request) {
  ExportLogsServiceRequest out;
  auto* rl = out.add_resource_logs();
  auto* sl = rl->add_scope_logs();
  resource_and_scope(request.resource, request.scope, rl, sl);
  for (const LogRecord& r : request.records) {
    auto* lr = sl->add_log_records();
    lr->set_time_unix_nano(r.time_unix_nano);
    lr->set_observed_time_unix_nano(r.observed_time_unix_nano);
    lr->set_severity_number(static_cast<pb::logs::v1::SeverityNumber>(r.severity_number));
    lr->set_severity_text(std::string(r.severity_text));
    if (r.body.kind != AnyValue::Kind::kEmpty) to_proto(r.body, lr->mutable_body());
    to_proto(r.attributes, lr->mutable_attributes());
    lr->set_trace_id(id_bytes(r.trace_id));
    lr->set_span_id(id_bytes(r.span_id));
    lr->set_flags(r.flags);
  }
  return out;
}

ExportTraceServiceRequest to_proto(const TracesRequest& request) {
  ExportTraceServiceRequest out;
  auto* rs = out.add_resource_spans();
  auto* ss = rs->add_scope_spans();
  resource_and_scope(request.resource, request.scope, rs, ss);
  for (const Span& s : request.spans) {
    auto* ps = ss->add_spans();
    ps->set_trace_id(id_bytes(s.trace_id));
    ps->set_span_id(id_bytes(s.span_id));
    ps->set_parent_span_id(id_bytes(s.parent_span_id));
    ps->set_name(std::string(s.name));
    ps->set_kind(static_cast<pb::trace::v1::Span_SpanKind>(s.kind));
    ps->set_start_time_unix_nano(s.start_time_unix_nano);
    ps->set_end_time_unix_nano(s.end_time_unix_nano);
    to_proto(s.attributes, ps->mutable_attributes());
    for (const SpanEvent& e : s.events) {
      auto* pe = ps->add_events();
      pe->set_time_unix_nano(e.time_unix_nano);
      pe->set_name(std::string(e.name));
      to_proto(e.attributes, pe->mutable_attributes());
    }
    if (s.status.code != SpanStatus::Code::kUnset || !s.status.message.empty()) {
      ps->mutable_status()->set_message(std::string(s.status.message));
      ps->mutable_status()->set_code(static_cast<pb::trace::v1::Status_StatusCode>(s.status.code));
    }
    ps->set_flags(s.flags);
  }
  return out;
}

void to_proto(const NumberDataPoint& p, pb::metrics::v1::NumberDataPoint* out) {
  out->set_start_time_unix_nano(p.start_time_unix_nano);
  out->set_time_unix_nano(p.time_unix_nano);
  if (p.is_double) {
    out->set_as_double(p.as_double);
  } else {
    out->set_as_int(p.as_int);
  }
  to_proto(p.attributes, out->mutable_attributes());
}

ExportMetricsServiceRequest to_proto(const MetricsRequest& request) {
  ExportMetricsServiceRequest out;
  auto* rm = out.add_resource_metrics();
  auto* sm = rm->add_scope_metrics();
  resource_and_scope(request.resource, request.scope, rm, sm);
  for (const Metric& m : request.metrics) {
    auto* pm = sm->add_metrics();
    pm->set_name(std::string(m.name));
    pm->set_description(std::string(m.description));
    pm->set_unit(std::string(m.unit));
    const auto temporality = static_cast<pb::metrics::v1::AggregationTemporality>(m.temporality);
    switch (m.kind) {
      case Metric::Kind::kGauge:
        pm->mutable_gauge();
        for (const auto& p : m.number_points) to_proto(p, pm->mutable_gauge()->add_data_points());
        break;
      case Metric::Kind::kSum:
        pm->mutable_sum()->set_aggregation_temporality(temporality);
        pm->mutable_sum()->set_is_monotonic(m.is_monotonic);
        for (const auto& p : m.number_points) to_proto(p, pm->mutable_sum()->add_data_points());
        break;
      case Metric::Kind::kHistogram:
        pm->mutable_histogram()->set_aggregation_temporality(temporality);
        for (const HistogramDataPoint& p : m.histogram_points) {
          auto* hp = pm->mutable_histogram()->add_data_points();
          hp->set_start_time_unix_nano(p.start_time_unix_nano);
          hp->set_time_unix_nano(p.time_unix_nano);
          hp->set_count(p.count);
          hp->set_sum(p.sum);
          for (uint64_t c : p.bucket_counts) hp->add_bucket_counts(c);
          for (double b : p.explicit_bounds) hp->add_explicit_bounds(b);
          to_proto(p.attributes, hp->mutable_attributes());
          if (p.min) hp->set_min(*p.min);
          if (p.max) hp->set_max(*p.max);
        }
        break;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Helpers: decoding, hex, the JSON id rewrite.

std::string hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    out += kDigits[static_cast<uint8_t>(c) >> 4];
    out += kDigits[static_cast<uint8_t>(c) & 0xf];
  }
  return out;
}

std::string base64(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t n = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) n |= static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[n & 63] : '=';
  }
  return out;
}

// OTLP/JSON writes trace and span ids as hex (the OTLP spec's deviation from the proto3 JSON
// mapping); protobuf's JSON parser reads every bytes field as base64. So the test rewrites each
// "traceId"/"spanId"/"parentSpanId" value from hex to base64 before JsonStringToMessage, after
// checking it is lowercase hex of the right length; the parsed ids are then compared as bytes
// with everything else. (Inside JSON string values a quote is escaped, so the pattern cannot
// match attribute text.)
std::string hex_ids_to_base64(const std::string& json) {
  static const std::regex kId(R"re("(traceId|spanId|parentSpanId)":"([^"]*)")re");
  std::string out;
  auto last = json.cbegin();
  for (std::sregex_iterator it(json.begin(), json.end(), kId), end; it != end; ++it) {
    const std::string name = (*it)[1];
    const std::string value = (*it)[2];
    EXPECT_EQ(value.size(), name == "traceId" ? 32u : 16u) << name << " " << value;
    EXPECT_EQ(value.find_first_not_of("0123456789abcdef"), std::string::npos) << value;
    std::string bytes;
    for (size_t i = 0; i + 1 < value.size(); i += 2) {
      bytes += static_cast<char>(std::stoi(value.substr(i, 2), nullptr, 16));
    }
    out.append(last, (*it)[0].first);
    out += "\"" + name + "\":\"" + base64(bytes) + "\"";
    last = (*it)[0].second;
  }
  out.append(last, json.cend());
  return out;
}

template <class Message>
Message from_protobuf(const std::string& bytes) {
  Message message;
  EXPECT_TRUE(message.ParseFromString(bytes));
  return message;
}

template <class Message>
Message from_json(const std::string& json) {
  Message message;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;  // a misspelt key fails
  const auto status =
      google::protobuf::util::JsonStringToMessage(hex_ids_to_base64(json), &message, options);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << json.substr(0, 2000);
  return message;
}

template <class Message>
void expect_same(const Message& actual, const Message& expected) {
  std::string differences;
  google::protobuf::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&differences);
  EXPECT_TRUE(differencer.Compare(expected, actual)) << differences.substr(0, 4000);
}

// Encode both ways; check bytes against the official serializer and both decodings against the
// equivalent official message. Returns the decodings for literal expectations.
template <class Request>
auto check_round_trips(const Request& request) {
  const auto expected = to_proto(request);
  using Message = std::remove_const_t<decltype(expected)>;
  std::string bytes = "junk that must be replaced";
  encode_protobuf(request, bytes);
  EXPECT_EQ(hex(bytes), hex(expected.SerializeAsString()));
  const Message from_pb = from_protobuf<Message>(bytes);
  expect_same(from_pb, expected);

  std::string json = "junk that must be replaced";
  encode_json(request, json);
  const Message from_js = from_json<Message>(json);
  expect_same(from_js, expected);
  return std::make_pair(from_pb, from_js);
}

// ---------------------------------------------------------------------------------------------
// Model builders.

AnyValue array(std::vector<AnyValue> values) {
  AnyValue v;
  v.kind = AnyValue::Kind::kArray;
  v.array_value = std::move(values);
  return v;
}

AnyValue kvlist(std::vector<KeyValue> values) {
  AnyValue v;
  v.kind = AnyValue::Kind::kKvList;
  v.kvlist_value = std::move(values);
  return v;
}

const TraceId kTraceId{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                       0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10};
const SpanId kSpanId{0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8};
const SpanId kParentId{0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8};
constexpr std::string_view kUnicode = "h\u00e9llo w\u00f6rld \u2713 \U0001F600 \u65e5\u672c\u8a9e";

// A resource with an attribute of every AnyValue kind, nested arrays and kvlists included.
Resource rich_resource() {
  Resource r;
  r.attributes = {
      {"service.name", AnyValue::string("checkout")},
      {"faas.max_memory", AnyValue::integer(134217728)},
      {"negative", AnyValue::integer(-42)},
      {"min", AnyValue::integer(kInt64Min)},
      {"flag", AnyValue::boolean(true)},
      {"ratio", AnyValue::floating(0.25)},
      {"nothing", AnyValue{}},
      {"list",
       array({AnyValue::string("a"), AnyValue::integer(1), array({AnyValue::boolean(false)}),
              kvlist({{"k", AnyValue::string("v")}}), AnyValue{}})},
      {"map", kvlist({{"inner", kvlist({{"deep", AnyValue::floating(-1.5)}})},
                      {"empty_list", array({})},
                      {"empty_map", kvlist({})}})},
      {"unicode", AnyValue::string(kUnicode)},
  };
  return r;
}

void expect_rich_resource(const pb::resource::v1::Resource& r) {
  ASSERT_EQ(r.attributes_size(), 10);
  EXPECT_EQ(r.attributes(0).key(), "service.name");
  EXPECT_EQ(r.attributes(0).value().string_value(), "checkout");
  EXPECT_EQ(r.attributes(1).value().int_value(), 134217728);
  EXPECT_EQ(r.attributes(2).value().int_value(), -42);
  EXPECT_EQ(r.attributes(3).value().int_value(), kInt64Min);
  EXPECT_TRUE(r.attributes(4).value().bool_value());
  EXPECT_EQ(r.attributes(5).value().double_value(), 0.25);
  EXPECT_EQ(r.attributes(6).key(), "nothing");
  EXPECT_TRUE(r.attributes(6).has_value());
  EXPECT_EQ(r.attributes(6).value().value_case(), PbAnyValue::VALUE_NOT_SET);
  const auto& list = r.attributes(7).value().array_value();
  ASSERT_EQ(list.values_size(), 5);
  EXPECT_EQ(list.values(0).string_value(), "a");
  EXPECT_EQ(list.values(1).int_value(), 1);
  ASSERT_EQ(list.values(2).array_value().values_size(), 1);
  EXPECT_EQ(list.values(2).array_value().values(0).value_case(), PbAnyValue::kBoolValue);
  EXPECT_FALSE(list.values(2).array_value().values(0).bool_value());
  ASSERT_EQ(list.values(3).kvlist_value().values_size(), 1);
  EXPECT_EQ(list.values(3).kvlist_value().values(0).key(), "k");
  EXPECT_EQ(list.values(3).kvlist_value().values(0).value().string_value(), "v");
  EXPECT_EQ(list.values(4).value_case(), PbAnyValue::VALUE_NOT_SET);
  const auto& map = r.attributes(8).value().kvlist_value();
  ASSERT_EQ(map.values_size(), 3);
  EXPECT_EQ(map.values(0).key(), "inner");
  EXPECT_EQ(map.values(0).value().kvlist_value().values(0).key(), "deep");
  EXPECT_EQ(map.values(0).value().kvlist_value().values(0).value().double_value(), -1.5);
  EXPECT_EQ(map.values(1).value().value_case(), PbAnyValue::kArrayValue);
  EXPECT_EQ(map.values(1).value().array_value().values_size(), 0);
  EXPECT_EQ(map.values(2).value().value_case(), PbAnyValue::kKvlistValue);
  EXPECT_EQ(r.attributes(9).value().string_value(), kUnicode);
}

struct RichLogs {
  Resource resource = rich_resource();
  LogsRequest request;
  RichLogs() {
    request.resource = &resource;
    request.scope = {"telemetry-relay", "1.2.3"};
    LogRecord full;  // every field
    full.time_unix_nano = 1700000000123456789;
    full.observed_time_unix_nano = 1700000000223456789;
    full.severity_number = 17;
    full.severity_text = "ERROR";
    full.body = AnyValue::string("boom \"quoted\" \\ back\nnext line\ttab");
    full.attributes = {{"faas.invocation_id", AnyValue::string("8f5e-41c1")},
                       {"code.lineno", AnyValue::integer(42)}};
    full.trace_id = kTraceId;
    full.span_id = kSpanId;
    full.flags = 1;
    request.records.push_back(full);

    LogRecord structured;  // a JSON log: the body is a kvlist; no ids, no time
    structured.observed_time_unix_nano = 1700000001000000000;
    structured.severity_number = 9;
    structured.severity_text = "INFO";
    structured.body = kvlist({{"message", AnyValue::string(kUnicode)},
                              {"count", AnyValue::integer(3)},
                              {"tags", array({AnyValue::string("x"), AnyValue::floating(2.5)})}});
    request.records.push_back(structured);

    request.records.emplace_back();  // every field default: an empty LogRecord
  }
};

void expect_rich_logs(const ExportLogsServiceRequest& m) {
  ASSERT_EQ(m.resource_logs_size(), 1);
  const auto& rl = m.resource_logs(0);
  expect_rich_resource(rl.resource());
  ASSERT_EQ(rl.scope_logs_size(), 1);
  const auto& sl = rl.scope_logs(0);
  EXPECT_EQ(sl.scope().name(), "telemetry-relay");
  EXPECT_EQ(sl.scope().version(), "1.2.3");
  ASSERT_EQ(sl.log_records_size(), 3);

  const auto& full = sl.log_records(0);
  EXPECT_EQ(full.time_unix_nano(), 1700000000123456789u);
  EXPECT_EQ(full.observed_time_unix_nano(), 1700000000223456789u);
  EXPECT_EQ(full.severity_number(), pb::logs::v1::SEVERITY_NUMBER_ERROR);
  EXPECT_EQ(full.severity_text(), "ERROR");
  EXPECT_EQ(full.body().string_value(), "boom \"quoted\" \\ back\nnext line\ttab");
  ASSERT_EQ(full.attributes_size(), 2);
  EXPECT_EQ(full.attributes(0).key(), "faas.invocation_id");
  EXPECT_EQ(full.attributes(0).value().string_value(), "8f5e-41c1");
  EXPECT_EQ(full.attributes(1).key(), "code.lineno");
  EXPECT_EQ(full.attributes(1).value().int_value(), 42);
  EXPECT_EQ(hex(full.trace_id()), "0102030405060708090a0b0c0d0e0f10");
  EXPECT_EQ(hex(full.span_id()), "a1a2a3a4a5a6a7a8");
  EXPECT_EQ(full.flags(), 1u);
  EXPECT_EQ(full.dropped_attributes_count(), 0u);
  EXPECT_EQ(full.event_name(), "");

  const auto& structured = sl.log_records(1);
  EXPECT_EQ(structured.time_unix_nano(), 0u);
  EXPECT_EQ(structured.observed_time_unix_nano(), 1700000001000000000u);
  EXPECT_EQ(structured.severity_number(), pb::logs::v1::SEVERITY_NUMBER_INFO);
  const auto& body = structured.body().kvlist_value();
  ASSERT_EQ(body.values_size(), 3);
  EXPECT_EQ(body.values(0).value().string_value(), kUnicode);
  EXPECT_EQ(body.values(1).value().int_value(), 3);
  EXPECT_EQ(body.values(2).value().array_value().values(1).double_value(), 2.5);
  EXPECT_TRUE(structured.trace_id().empty());
  EXPECT_TRUE(structured.span_id().empty());
  EXPECT_EQ(structured.flags(), 0u);

  const auto& empty = sl.log_records(2);
  EXPECT_FALSE(empty.has_body());
  EXPECT_EQ(empty.ByteSizeLong(), 0u);
}

struct RichTraces {
  Resource resource = rich_resource();
  TracesRequest request;
  RichTraces() {
    request.resource = &resource;
    request.scope = {"telemetry-relay", "1.2.3"};
    Span server;  // the invocation: a root SERVER span with an event and an error status
    server.trace_id = kTraceId;
    server.span_id = kParentId;
    server.name = "checkout-fn";
    server.kind = Span::Kind::kServer;
    server.start_time_unix_nano = 1700000000000000000;
    server.end_time_unix_nano = 1700000000250000000;
    server.attributes = {{"faas.invocation_id", AnyValue::string("8f5e-41c1")},
                         {"faas.coldstart", AnyValue::boolean(true)}};
    server.events.push_back(
        {1700000000100000000, "exception", {{"exception.message", AnyValue::string("boom")}}});
    server.events.push_back({0, "", {}});  // an empty event
    server.status = {SpanStatus::Code::kError, "Runtime.ExitError"};
    server.flags = 0x301;  // sampled, context-has-is-remote, is-remote
    request.spans.push_back(server);

    Span child;  // a child span, status OK without a message
    child.trace_id = kTraceId;
    child.span_id = kSpanId;
    child.parent_span_id = kParentId;
    child.name = "responseLatency";
    child.kind = Span::Kind::kInternal;
    child.start_time_unix_nano = 1700000000000000001;
    child.end_time_unix_nano = 1700000000000000002;
    child.status.code = SpanStatus::Code::kOk;
    child.flags = 1;
    request.spans.push_back(child);

    Span bare;  // unspecified kind, unset status that still has a message
    bare.kind = Span::Kind::kUnspecified;
    bare.status.message = "why";
    request.spans.push_back(bare);
  }
};

void expect_rich_traces(const ExportTraceServiceRequest& m) {
  ASSERT_EQ(m.resource_spans_size(), 1);
  expect_rich_resource(m.resource_spans(0).resource());
  ASSERT_EQ(m.resource_spans(0).scope_spans_size(), 1);
  const auto& ss = m.resource_spans(0).scope_spans(0);
  EXPECT_EQ(ss.scope().name(), "telemetry-relay");
  ASSERT_EQ(ss.spans_size(), 3);

  const auto& server = ss.spans(0);
  EXPECT_EQ(hex(server.trace_id()), "0102030405060708090a0b0c0d0e0f10");
  EXPECT_EQ(hex(server.span_id()), "b1b2b3b4b5b6b7b8");
  EXPECT_TRUE(server.parent_span_id().empty());
  EXPECT_EQ(server.name(), "checkout-fn");
  EXPECT_EQ(server.kind(), pb::trace::v1::Span::SPAN_KIND_SERVER);
  EXPECT_EQ(server.start_time_unix_nano(), 1700000000000000000u);
  EXPECT_EQ(server.end_time_unix_nano(), 1700000000250000000u);
  ASSERT_EQ(server.attributes_size(), 2);
  EXPECT_EQ(server.attributes(1).key(), "faas.coldstart");
  EXPECT_TRUE(server.attributes(1).value().bool_value());
  ASSERT_EQ(server.events_size(), 2);
  EXPECT_EQ(server.events(0).time_unix_nano(), 1700000000100000000u);
  EXPECT_EQ(server.events(0).name(), "exception");
  EXPECT_EQ(server.events(0).attributes(0).value().string_value(), "boom");
  EXPECT_EQ(server.events(1).ByteSizeLong(), 0u);
  EXPECT_EQ(server.status().code(), pb::trace::v1::Status::STATUS_CODE_ERROR);
  EXPECT_EQ(server.status().message(), "Runtime.ExitError");
  EXPECT_EQ(server.flags(), 0x301u);
  EXPECT_TRUE(server.trace_state().empty());

  const auto& child = ss.spans(1);
  EXPECT_EQ(hex(child.span_id()), "a1a2a3a4a5a6a7a8");
  EXPECT_EQ(hex(child.parent_span_id()), "b1b2b3b4b5b6b7b8");
  EXPECT_EQ(child.kind(), pb::trace::v1::Span::SPAN_KIND_INTERNAL);
  EXPECT_EQ(child.start_time_unix_nano(), 1700000000000000001u);
  EXPECT_EQ(child.end_time_unix_nano(), 1700000000000000002u);
  EXPECT_EQ(child.status().code(), pb::trace::v1::Status::STATUS_CODE_OK);
  EXPECT_EQ(child.flags(), 1u);

  const auto& bare = ss.spans(2);
  EXPECT_EQ(bare.kind(), pb::trace::v1::Span::SPAN_KIND_UNSPECIFIED);
  EXPECT_TRUE(bare.has_status());
  EXPECT_EQ(bare.status().code(), pb::trace::v1::Status::STATUS_CODE_UNSET);
  EXPECT_EQ(bare.status().message(), "why");
  EXPECT_TRUE(bare.trace_id().empty());
}

struct RichMetrics {
  Resource resource = rich_resource();
  MetricsRequest request;
  RichMetrics() {
    request.resource = &resource;
    request.scope = {"telemetry-relay", ""};

    Metric invocations;  // a monotonic delta int sum, one point of 0
    invocations.name = "faas.invocations";
    invocations.description = "Number of invocations";
    invocations.unit = "{invocation}";
    invocations.kind = Metric::Kind::kSum;
    invocations.temporality = Temporality::kDelta;
    invocations.is_monotonic = true;
    NumberDataPoint three;
    three.start_time_unix_nano = 1700000000000000000;
    three.time_unix_nano = 1700000060000000000;
    three.as_int = 3;
    three.attributes = {{"faas.trigger", AnyValue::string("http")}};
    NumberDataPoint zero = three;
    zero.as_int = 0;
    zero.attributes.clear();
    invocations.number_points = {three, zero};
    request.metrics.push_back(invocations);

    Metric up_down;  // a non-monotonic cumulative double sum
    up_down.name = "up_down";
    up_down.kind = Metric::Kind::kSum;
    up_down.temporality = Temporality::kCumulative;
    up_down.is_monotonic = false;
    NumberDataPoint d;
    d.time_unix_nano = 5;
    d.is_double = true;
    d.as_double = -1.5;
    up_down.number_points = {d};
    request.metrics.push_back(up_down);

    Metric memory;  // a gauge: a double 0 and a negative int
    memory.name = "faas.mem_usage";
    memory.unit = "By";
    memory.kind = Metric::Kind::kGauge;
    NumberDataPoint zero_double;
    zero_double.is_double = true;
    zero_double.time_unix_nano = 7;
    NumberDataPoint negative;
    negative.as_int = -7;
    memory.number_points = {zero_double, negative};
    request.metrics.push_back(memory);

    Metric duration;  // a delta histogram: buckets, min, max; then an empty point
    duration.name = "faas.invoke_duration";
    duration.unit = "ms";
    duration.kind = Metric::Kind::kHistogram;
    duration.temporality = Temporality::kDelta;
    HistogramDataPoint h;
    h.start_time_unix_nano = 1700000000000000000;
    h.time_unix_nano = 1700000060000000000;
    h.explicit_bounds = {0, 5, 10, 25, 50, 75, 100, 250, 500, 1000};
    h.bucket_counts = {0, 1, 2, 0, 0, 0, 3, 0, 0, 0, 1};
    h.count = 7;
    h.sum = 2345.25;
    h.min = 0.5;
    h.max = 1500.75;
    h.attributes = {{"faas.coldstart", AnyValue::boolean(false)}};
    duration.histogram_points = {h, HistogramDataPoint{}};
    request.metrics.push_back(duration);

    Metric empty_gauge;  // no points at all: the gauge/histogram message is still there
    empty_gauge.name = "empty_gauge";
    empty_gauge.kind = Metric::Kind::kGauge;
    request.metrics.push_back(empty_gauge);
    Metric empty_histogram;
    empty_histogram.name = "empty_histogram";
    empty_histogram.kind = Metric::Kind::kHistogram;
    empty_histogram.temporality = Temporality::kUnspecified;
    request.metrics.push_back(empty_histogram);
  }
};

void expect_rich_metrics(const ExportMetricsServiceRequest& m) {
  using pb::metrics::v1::AGGREGATION_TEMPORALITY_CUMULATIVE;
  using pb::metrics::v1::AGGREGATION_TEMPORALITY_DELTA;
  using pb::metrics::v1::Metric;
  using pb::metrics::v1::NumberDataPoint;
  ASSERT_EQ(m.resource_metrics_size(), 1);
  expect_rich_resource(m.resource_metrics(0).resource());
  const auto& sm = m.resource_metrics(0).scope_metrics(0);
  EXPECT_EQ(sm.scope().name(), "telemetry-relay");
  EXPECT_EQ(sm.scope().version(), "");
  ASSERT_EQ(sm.metrics_size(), 6);

  const auto& invocations = sm.metrics(0);
  EXPECT_EQ(invocations.name(), "faas.invocations");
  EXPECT_EQ(invocations.description(), "Number of invocations");
  EXPECT_EQ(invocations.unit(), "{invocation}");
  ASSERT_EQ(invocations.data_case(), Metric::kSum);
  EXPECT_EQ(invocations.sum().aggregation_temporality(), AGGREGATION_TEMPORALITY_DELTA);
  EXPECT_TRUE(invocations.sum().is_monotonic());
  ASSERT_EQ(invocations.sum().data_points_size(), 2);
  const auto& three = invocations.sum().data_points(0);
  EXPECT_EQ(three.start_time_unix_nano(), 1700000000000000000u);
  EXPECT_EQ(three.time_unix_nano(), 1700000060000000000u);
  EXPECT_EQ(three.value_case(), NumberDataPoint::kAsInt);
  EXPECT_EQ(three.as_int(), 3);
  EXPECT_EQ(three.attributes(0).key(), "faas.trigger");
  EXPECT_EQ(invocations.sum().data_points(1).value_case(), NumberDataPoint::kAsInt);
  EXPECT_EQ(invocations.sum().data_points(1).as_int(), 0);

  const auto& up_down = sm.metrics(1);
  ASSERT_EQ(up_down.data_case(), Metric::kSum);
  EXPECT_EQ(up_down.sum().aggregation_temporality(), AGGREGATION_TEMPORALITY_CUMULATIVE);
  EXPECT_FALSE(up_down.sum().is_monotonic());
  EXPECT_EQ(up_down.sum().data_points(0).value_case(), NumberDataPoint::kAsDouble);
  EXPECT_EQ(up_down.sum().data_points(0).as_double(), -1.5);
  EXPECT_EQ(up_down.sum().data_points(0).time_unix_nano(), 5u);

  const auto& memory = sm.metrics(2);
  ASSERT_EQ(memory.data_case(), Metric::kGauge);
  EXPECT_EQ(memory.unit(), "By");
  ASSERT_EQ(memory.gauge().data_points_size(), 2);
  EXPECT_EQ(memory.gauge().data_points(0).value_case(), NumberDataPoint::kAsDouble);
  EXPECT_EQ(memory.gauge().data_points(0).as_double(), 0.0);
  EXPECT_EQ(memory.gauge().data_points(1).as_int(), -7);

  const auto& duration = sm.metrics(3);
  ASSERT_EQ(duration.data_case(), Metric::kHistogram);
  EXPECT_EQ(duration.histogram().aggregation_temporality(), AGGREGATION_TEMPORALITY_DELTA);
  ASSERT_EQ(duration.histogram().data_points_size(), 2);
  const auto& h = duration.histogram().data_points(0);
  EXPECT_EQ(h.start_time_unix_nano(), 1700000000000000000u);
  EXPECT_EQ(h.time_unix_nano(), 1700000060000000000u);
  EXPECT_EQ(h.count(), 7u);
  EXPECT_TRUE(h.has_sum());
  EXPECT_EQ(h.sum(), 2345.25);
  EXPECT_EQ(std::vector<double>(h.explicit_bounds().begin(), h.explicit_bounds().end()),
            (std::vector<double>{0, 5, 10, 25, 50, 75, 100, 250, 500, 1000}));
  EXPECT_EQ(std::vector<uint64_t>(h.bucket_counts().begin(), h.bucket_counts().end()),
            (std::vector<uint64_t>{0, 1, 2, 0, 0, 0, 3, 0, 0, 0, 1}));
  EXPECT_TRUE(h.has_min());
  EXPECT_EQ(h.min(), 0.5);
  EXPECT_TRUE(h.has_max());
  EXPECT_EQ(h.max(), 1500.75);
  EXPECT_FALSE(h.attributes(0).value().bool_value());
  const auto& empty_point = duration.histogram().data_points(1);
  EXPECT_EQ(empty_point.count(), 0u);
  EXPECT_TRUE(empty_point.has_sum());  // sum has presence: the model always has one
  EXPECT_EQ(empty_point.sum(), 0.0);
  EXPECT_FALSE(empty_point.has_min());
  EXPECT_FALSE(empty_point.has_max());
  EXPECT_EQ(empty_point.bucket_counts_size(), 0);

  EXPECT_EQ(sm.metrics(4).data_case(), Metric::kGauge);
  EXPECT_EQ(sm.metrics(4).gauge().data_points_size(), 0);
  EXPECT_EQ(sm.metrics(5).data_case(), Metric::kHistogram);
  EXPECT_EQ(sm.metrics(5).histogram().aggregation_temporality(),
            pb::metrics::v1::AGGREGATION_TEMPORALITY_UNSPECIFIED);
}

// ---------------------------------------------------------------------------------------------
// Encoders.

TEST(OtlpEncoding, RichLogsDecodeWithTheOfficialSchemaInBothEncodings) {
  const RichLogs rich;
  const auto [from_pb, from_json] = check_round_trips(rich.request);
  expect_rich_logs(from_pb);
  expect_rich_logs(from_json);
}

TEST(OtlpEncoding, RichTracesDecodeWithTheOfficialSchemaInBothEncodings) {
  const RichTraces rich;
  const auto [from_pb, from_json] = check_round_trips(rich.request);
  expect_rich_traces(from_pb);
  expect_rich_traces(from_json);
}

TEST(OtlpEncoding, RichMetricsDecodeWithTheOfficialSchemaInBothEncodings) {
  const RichMetrics rich;
  const auto [from_pb, from_json] = check_round_trips(rich.request);
  expect_rich_metrics(from_pb);
  expect_rich_metrics(from_json);
}

TEST(OtlpEncoding, EmptyRequestsAreOneResourceAndScopeWithNoItems) {
  const LogsRequest logs;
  const TracesRequest traces;
  const MetricsRequest metrics;
  check_round_trips(logs);
  check_round_trips(traces);
  check_round_trips(metrics);

  std::string out;
  encode_protobuf(logs, out);
  EXPECT_EQ(hex(out), "0a021200");  // resource_logs { scope_logs {} }
  encode_json(logs, out);
  EXPECT_EQ(out, R"({"resourceLogs":[{"scopeLogs":[{}]}]})");
  encode_json(traces, out);
  EXPECT_EQ(out, R"({"resourceSpans":[{"scopeSpans":[{}]}]})");
  encode_json(metrics, out);
  EXPECT_EQ(out, R"({"resourceMetrics":[{"scopeMetrics":[{}]}]})");

  // A resource without attributes is left out like a missing one.
  const Resource empty_resource;
  LogsRequest with_empty_resource;
  with_empty_resource.resource = &empty_resource;
  encode_protobuf(with_empty_resource, out);
  EXPECT_EQ(hex(out), "0a021200");
}

TEST(OtlpEncoding, ZeroValuesInAOneofAreKeptAndDefaultsLeftOut) {
  LogsRequest request;
  for (AnyValue v : {AnyValue::string(""), AnyValue::boolean(false), AnyValue::integer(0),
                     AnyValue::floating(0.0)}) {
    LogRecord r;
    r.body = v;
    request.records.push_back(r);
  }
  const auto [from_pb, from_json] = check_round_trips(request);
  for (const auto* m : {&from_pb, &from_json}) {
    const auto& records = m->resource_logs(0).scope_logs(0).log_records();
    ASSERT_EQ(records.size(), 4);
    EXPECT_EQ(records[0].body().value_case(), PbAnyValue::kStringValue);
    EXPECT_EQ(records[1].body().value_case(), PbAnyValue::kBoolValue);
    EXPECT_EQ(records[2].body().value_case(), PbAnyValue::kIntValue);
    EXPECT_EQ(records[3].body().value_case(), PbAnyValue::kDoubleValue);
  }
  std::string json;
  encode_json(request, json);
  EXPECT_NE(json.find(R"({"body":{"stringValue":""}})"), std::string::npos) << json;
  EXPECT_NE(json.find(R"({"body":{"boolValue":false}})"), std::string::npos) << json;
  EXPECT_NE(json.find(R"({"body":{"intValue":"0"}})"), std::string::npos) << json;
  EXPECT_NE(json.find(R"({"body":{"doubleValue":0}})"), std::string::npos) << json;
}

TEST(OtlpEncoding, LargeValuesRoundTrip) {
  StringStore store;
  const std::string_view big = store.keep(std::string(200 * 1024, 'x'));  // 3-byte length varint
  Resource resource;
  for (int i = 0; i < 300; ++i) {
    resource.attributes.push_back(
        {store.keep("attribute." + std::to_string(i)), AnyValue::integer(int64_t{i} * 1000000007)});
  }
  LogsRequest request;
  request.resource = &resource;
  LogRecord r;
  r.time_unix_nano = kUint64Max;
  r.observed_time_unix_nano = kUint64Max - 1;
  r.severity_number = 24;
  r.body = AnyValue::string(big);
  r.attributes = {{"max", AnyValue::integer(kInt64Max)},
                  {"min", AnyValue::integer(kInt64Min)},
                  {"huge", AnyValue::floating(1.7976931348623157e308)},
                  {"tiny", AnyValue::floating(5e-324)},
                  {"negative_zero", AnyValue::floating(-0.0)},
                  {"third", AnyValue::floating(1.0 / 3)}};
  r.flags = 0xffffffff;
  request.records.push_back(r);
  const auto [from_pb, from_json] = check_round_trips(request);
  for (const auto* m : {&from_pb, &from_json}) {
    const auto& record = m->resource_logs(0).scope_logs(0).log_records(0);
    EXPECT_EQ(record.time_unix_nano(), kUint64Max);
    EXPECT_EQ(record.body().string_value().size(), big.size());
    EXPECT_EQ(record.attributes(0).value().int_value(), kInt64Max);
    EXPECT_EQ(record.attributes(3).value().double_value(), 5e-324);
    EXPECT_EQ(record.attributes(5).value().double_value(), 1.0 / 3);
    EXPECT_EQ(record.flags(), 0xffffffffu);
    EXPECT_EQ(m->resource_logs(0).resource().attributes_size(), 300);
  }
  // -0.0 is kept in protobuf. JSON has it as -0, which protobuf's JSON parser reads as +0 (it
  // goes through an integer); other parsers (Go's ParseFloat, the Collector) keep the sign.
  EXPECT_TRUE(std::signbit(
      from_pb.resource_logs(0).scope_logs(0).log_records(0).attributes(4).value().double_value()));
  std::string json;
  encode_json(request, json);
  EXPECT_NE(json.find(R"("negative_zero","value":{"doubleValue":-0})"), std::string::npos);

  // A span with maximal times and a metric with extreme buckets, byte-compared too.
  TracesRequest traces;
  Span s;
  s.trace_id.fill(0xff);
  s.span_id.fill(0xff);
  s.start_time_unix_nano = kUint64Max;
  s.end_time_unix_nano = kUint64Max;
  s.flags = 0xffffffff;
  traces.spans.push_back(s);
  check_round_trips(traces);
  MetricsRequest metrics;
  Metric m;
  m.kind = Metric::Kind::kHistogram;
  HistogramDataPoint h;
  h.count = kUint64Max;
  h.bucket_counts = {kUint64Max, 0};
  h.explicit_bounds = {-1.7976931348623157e308};
  h.sum = 1e300;
  m.histogram_points.push_back(h);
  metrics.metrics.push_back(m);
  check_round_trips(metrics);
}

TEST(OtlpEncoding, JsonUsesOtlpConventions) {
  const RichTraces traces;
  std::string json;
  encode_json(traces.request, json);
  for (const char* expected : {
           R"("traceId":"0102030405060708090a0b0c0d0e0f10")",  // hex ids, not base64
           R"("spanId":"b1b2b3b4b5b6b7b8")",
           R"("parentSpanId":"b1b2b3b4b5b6b7b8")",
           R"("kind":2)",  // enums as integers
           R"("status":{"message":"Runtime.ExitError","code":2})",
           R"("startTimeUnixNano":"1700000000000000000")",  // 64-bit integers as strings
           R"({"key":"min","value":{"intValue":"-9223372036854775808"}})",
           R"({"key":"ratio","value":{"doubleValue":0.25}})",
           R"({"key":"nothing","value":{}})",
           R"("flags":769)",
       }) {
    EXPECT_NE(json.find(expected), std::string::npos) << expected << "\n" << json;
  }
  const RichMetrics metrics;
  encode_json(metrics.request, json);
  for (
      const char* expected : {
          R"("aggregationTemporality":1,"isMonotonic":true)",
          R"("asInt":"3")",
          R"("asDouble":-1.5)",
          R"("count":"7","sum":2345.25,"bucketCounts":["0","1","2","0","0","0","3","0","0","0","1"])",
          R"("explicitBounds":[0,5,10,25,50,75,100,250,500,1000])",
          R"("min":0.5,"max":1500.75)",
          R"({"name":"empty_gauge","gauge":{}})",
      }) {
    EXPECT_NE(json.find(expected), std::string::npos) << expected << "\n" << json;
  }
  const RichLogs logs;
  encode_json(logs.request, json);
  EXPECT_NE(json.find(R"("severityNumber":17,"severityText":"ERROR")"), std::string::npos);
  // No snake_case key (attribute names such as faas.max_memory are values, not keys).
  EXPECT_FALSE(std::regex_search(json, std::regex(R"("[A-Za-z]*_[A-Za-z_]*":)"))) << json;
}

TEST(OtlpEncoding, JsonEscapesStrings) {
  std::string nasty = "quote\" backslash\\ slash/ del\x7f ";
  for (char c = 0; c < 0x20; ++c) nasty += c;
  nasty += kUnicode;
  LogsRequest request;
  LogRecord r;
  r.body = AnyValue::string(nasty);
  r.attributes = {{"\"key\"\n", AnyValue::string("\\")}};
  request.records.push_back(r);
  const auto [from_pb, from_json] = check_round_trips(request);
  EXPECT_EQ(from_json.resource_logs(0).scope_logs(0).log_records(0).body().string_value(), nasty);

  std::string json;
  encode_json(request, json);
  EXPECT_NE(json.find(R"(quote\" backslash\\ slash/ del)"), std::string::npos) << json;
  EXPECT_NE(json.find(R"(\u0000\u0001)"), std::string::npos) << json;
  EXPECT_NE(json.find(R"(\b\t\n\u000b\f\r)"), std::string::npos) << json;
  EXPECT_NE(json.find(R"(\u001f)"), std::string::npos) << json;
  EXPECT_NE(json.find(kUnicode), std::string::npos) << "UTF-8 is written as it is";
  EXPECT_NE(json.find(R"({"key":"\"key\"\n","value":{"stringValue":"\\"}})"), std::string::npos)
      << json;
}

// The JSON writer copies eight bytes at a time while none needs escaping: put each kind of byte
// at every offset of a block (and bytes next to the escaped ones: ' ', '!', '[', ']', DEL, UTF-8).
TEST(OtlpEncoding, JsonEscapesAtEveryOffset) {
  const std::string specials[] = {
      "\"",   "\\",     std::string(1, '\0'), "\n", "\x1f", " ", "!", "[", "]",
      "\x7f", "\u00e9", "\U0001F600"};
  StringStore store;
  LogsRequest request;
  for (const std::string& special : specials) {
    for (size_t offset = 0; offset < 19; ++offset) {
      LogRecord r;
      r.body = AnyValue::string(
          store.keep(std::string(offset, 'a') + special + std::string(19 - offset, 'b')));
      request.records.push_back(r);
    }
  }
  const auto [from_pb, from_json] = check_round_trips(request);
  const auto& records = from_json.resource_logs(0).scope_logs(0).log_records();
  ASSERT_EQ(static_cast<size_t>(records.size()), request.records.size());
  for (int i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].body().string_value(), request.records[i].body.string_value) << i;
  }
}

TEST(OtlpEncoding, NanAndInfinityAreProto3JsonStrings) {
  MetricsRequest request;
  Metric m;
  m.kind = Metric::Kind::kGauge;
  for (double v :
       {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
        -std::numeric_limits<double>::infinity()}) {
    NumberDataPoint p;
    p.is_double = true;
    p.as_double = v;
    m.number_points.push_back(p);
  }
  request.metrics.push_back(m);

  std::string json;
  encode_json(request, json);
  EXPECT_NE(json.find(R"([{"asDouble":"NaN"},{"asDouble":"Infinity"},{"asDouble":"-Infinity"}])"),
            std::string::npos)
      << json;
  const auto from_js = from_json<ExportMetricsServiceRequest>(json);
  std::string bytes;
  encode_protobuf(request, bytes);
  const auto from_pb = from_protobuf<ExportMetricsServiceRequest>(bytes);
  EXPECT_EQ(hex(bytes), hex(to_proto(request).SerializeAsString()));
  for (const auto* decoded : {&from_pb, &from_js}) {
    const auto& points = decoded->resource_metrics(0).scope_metrics(0).metrics(0).gauge();
    ASSERT_EQ(points.data_points_size(), 3);
    EXPECT_TRUE(std::isnan(points.data_points(0).as_double()));
    EXPECT_EQ(points.data_points(1).as_double(), std::numeric_limits<double>::infinity());
    EXPECT_EQ(points.data_points(2).as_double(), -std::numeric_limits<double>::infinity());
  }
}

TEST(OtlpEncoding, OutputIsReplacedAndEncodersAreReusable) {
  const RichLogs rich;
  std::string first;
  encode_protobuf(rich.request, first);
  std::string out(1 << 20, 'z');  // longer than the result: must shrink to it
  const LogsRequest empty;
  encode_protobuf(empty, out);
  EXPECT_EQ(hex(out), "0a021200");
  encode_protobuf(rich.request, out);
  EXPECT_EQ(out, first);
  std::string json_first;
  encode_json(rich.request, json_first);
  encode_json(empty, out);
  encode_json(rich.request, out);
  EXPECT_EQ(out, json_first);
}

// ---------------------------------------------------------------------------------------------
// Export responses.

template <class Response>
std::string serialized_response(int64_t rejected, const std::string& message) {
  Response response;
  response.mutable_partial_success()->set_error_message(message);
  if constexpr (std::is_same_v<Response, pb::collector::logs::v1::ExportLogsServiceResponse>) {
    response.mutable_partial_success()->set_rejected_log_records(rejected);
  } else if constexpr (std::is_same_v<Response,
                                      pb::collector::trace::v1::ExportTraceServiceResponse>) {
    response.mutable_partial_success()->set_rejected_spans(rejected);
  } else {
    response.mutable_partial_success()->set_rejected_data_points(rejected);
  }
  return response.SerializeAsString();
}

struct SignalResponses {
  Signal signal;
  std::string (*serialize)(int64_t, const std::string&);
  std::string rejected_key;
};

const SignalResponses kSignals[] = {
    {Signal::kLogs, serialized_response<pb::collector::logs::v1::ExportLogsServiceResponse>,
     "rejectedLogRecords"},
    {Signal::kTraces, serialized_response<pb::collector::trace::v1::ExportTraceServiceResponse>,
     "rejectedSpans"},
    {Signal::kMetrics,
     serialized_response<pb::collector::metrics::v1::ExportMetricsServiceResponse>,
     "rejectedDataPoints"},
};

std::optional<PartialSuccess> parse(Signal signal, bool json, std::string_view body,
                                    std::string& error) {
  error.clear();
  return parse_export_response(signal, json, body, error);
}

TEST(OtlpExportResponse, ProtobufFromTheOfficialClassesForEverySignal) {
  std::string error;
  for (const SignalResponses& s : kSignals) {
    SCOPED_TRACE(s.rejected_key);
    auto result = parse(s.signal, false, s.serialize(5, "5 were too old"), error);
    ASSERT_TRUE(result) << error;
    EXPECT_EQ(result->rejected, 5);
    EXPECT_EQ(result->error_message, "5 were too old");

    result = parse(s.signal, false, s.serialize(kInt64Max, ""), error);
    ASSERT_TRUE(result) << error;
    EXPECT_EQ(result->rejected, kInt64Max);
    EXPECT_EQ(result->error_message, "");

    // partial_success present but empty, a warning only, or absent: nothing rejected.
    const std::string empty_partial = s.serialize(0, "");
    EXPECT_EQ(hex(empty_partial), "0a00");
    result = parse(s.signal, false, empty_partial, error);
    ASSERT_TRUE(result) << error;
    EXPECT_EQ(result->rejected, 0);
    result = parse(s.signal, false, s.serialize(0, "deprecated attribute"), error);
    ASSERT_TRUE(result) << error;
    EXPECT_EQ(result->rejected, 0);
    EXPECT_EQ(result->error_message, "deprecated attribute");
    result = parse(s.signal, false, "", error);
    ASSERT_TRUE(result) << error;
    EXPECT_EQ(result->rejected, 0);
    EXPECT_EQ(result->error_message, "");
  }
}

TEST(OtlpExportResponse, ProtobufUnknownFieldsOfEveryWireTypeAreSkipped) {
  pb::collector::logs::v1::ExportLogsServiceResponse response;
  response.mutable_partial_success()->set_rejected_log_records(9);
  response.mutable_partial_success()->set_error_message("nine");
  for (auto* unknown :
       {response.GetReflection()->MutableUnknownFields(&response),
        response.GetReflection()->MutableUnknownFields(response.mutable_partial_success())}) {
    unknown->AddVarint(100, 1ull << 63);
    unknown->AddFixed64(101, 7);
    unknown->AddLengthDelimited(102, "opaque");
    unknown->AddFixed32(103, 8);
    auto* group = unknown->AddGroup(104);
    group->AddVarint(1, 2);
    group->AddGroup(2)->AddFixed32(3, 4);  // nested
  }
  const std::string bytes = response.SerializeAsString();
  std::string error;
  const auto result = parse(Signal::kLogs, false, bytes, error);
  ASSERT_TRUE(result) << error;
  EXPECT_EQ(result->rejected, 9);
  EXPECT_EQ(result->error_message, "nine");
}

TEST(OtlpExportResponse, JsonCountsAsNumbersOrStrings) {
  std::string error;
  for (const SignalResponses& s : kSignals) {
    SCOPED_TRACE(s.rejected_key);
    for (const std::string& count :
         {std::string("12"), std::string("\"12\""), std::string("12.0")}) {
      const std::string body = R"({"partialSuccess":{")" + s.rejected_key + R"(":)" + count +
                               R"(,"errorMessage":"too many attributes"}})";
      const auto result = parse(s.signal, true, body, error);
      ASSERT_TRUE(result) << error << " " << body;
      EXPECT_EQ(result->rejected, 12);
      EXPECT_EQ(result->error_message, "too many attributes");
    }
  }
  // What protobuf's own JSON printer writes for each official response class (int64 as a
  // string, lowerCamelCase) parses too.
  auto check_printed = [&](const google::protobuf::Message& message, Signal signal) {
    std::string printed;
    ASSERT_TRUE(google::protobuf::util::MessageToJsonString(message, &printed).ok());
    EXPECT_NE(printed.find(R"(":"9223372036854775807")"), std::string::npos) << printed;
    const auto result = parse(signal, true, printed, error);
    ASSERT_TRUE(result) << error << " " << printed;
    EXPECT_EQ(result->rejected, kInt64Max) << printed;
    EXPECT_EQ(result->error_message, "x") << printed;
  };
  pb::collector::logs::v1::ExportLogsServiceResponse logs;
  ASSERT_TRUE(logs.ParseFromString(kSignals[0].serialize(kInt64Max, "x")));
  check_printed(logs, Signal::kLogs);
  pb::collector::trace::v1::ExportTraceServiceResponse traces;
  ASSERT_TRUE(traces.ParseFromString(kSignals[1].serialize(kInt64Max, "x")));
  check_printed(traces, Signal::kTraces);
  pb::collector::metrics::v1::ExportMetricsServiceResponse metrics;
  ASSERT_TRUE(metrics.ParseFromString(kSignals[2].serialize(kInt64Max, "x")));
  check_printed(metrics, Signal::kMetrics);

  // Original proto field names are read too; another signal's count is an unknown field.
  auto result = parse(Signal::kTraces, true,
                      R"({"partial_success":{"rejected_spans":4,"error_message":"m"}})", error);
  ASSERT_TRUE(result) << error;
  EXPECT_EQ(result->rejected, 4);
  EXPECT_EQ(result->error_message, "m");
  result = parse(Signal::kLogs, true, R"({"partialSuccess":{"rejectedSpans":4}})", error);
  ASSERT_TRUE(result) << error;
  EXPECT_EQ(result->rejected, 0);
}

TEST(OtlpExportResponse, EmptyAndSuccessfulJsonBodies) {
  std::string error;
  for (std::string_view body : {"", " \r\n", "{}", R"({"partialSuccess":{}})",
                                R"({"partialSuccess":null})", R"({"other":[1,2,{"x":null}]})"}) {
    const auto result = parse(Signal::kMetrics, true, body, error);
    ASSERT_TRUE(result) << error << " " << body;
    EXPECT_EQ(result->rejected, 0) << body;
    EXPECT_EQ(result->error_message, "") << body;
  }
}

void expect_clear_error(const std::string& error, std::string_view must_contain) {
  EXPECT_NE(error.find(must_contain), std::string::npos) << error;
  EXPECT_LE(error.size(), 300u) << error;
  for (char c : error) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "non-printable in: " << error;
  }
}

TEST(OtlpExportResponse, HtmlFromAProxyIsAClearError) {
  const std::string html = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>" +
                           std::string(5000, ' ') + "</body></html>";
  std::string error;
  for (bool json : {false, true}) {
    EXPECT_FALSE(parse(Signal::kLogs, json, html, error));
    expect_clear_error(error, "<html>..<head><title>502 Bad Gateway</title>");
    expect_clear_error(error, "ExportLogsServiceResponse");
  }
  EXPECT_FALSE(parse(Signal::kTraces, false, html, error));
  EXPECT_NE(error.find("malformed protobuf ExportTraceServiceResponse: end-group"),
            std::string::npos)
      << error;
  EXPECT_FALSE(parse(Signal::kTraces, true, html, error));
  EXPECT_NE(error.find("invalid JSON ExportTraceServiceResponse"), std::string::npos) << error;
}

TEST(OtlpExportResponse, TruncatedProtobufIsAnError) {
  const std::string full = kSignals[0].serialize(300, "some records were rejected");
  std::string error;
  ASSERT_TRUE(parse(Signal::kLogs, false, full, error)) << error;
  for (size_t n = 1; n < full.size(); ++n) {
    SCOPED_TRACE(n);
    EXPECT_FALSE(parse(Signal::kLogs, false, full.substr(0, n), error));
    expect_clear_error(error, "truncated");
  }
}

TEST(OtlpExportResponse, GarbageProtobufIsAnError) {
  const std::pair<std::string, std::string_view> cases[] = {
      {std::string("\x0f", 1), "invalid wire type 7"},
      {std::string("\x16", 1), "invalid wire type 6"},
      {std::string("\x00\x01", 2), "invalid field number"},
      {std::string(11, '\xff'), "over-long field tag"},  // a varint of more than 10 bytes
      {std::string("\x08\x05", 2), "partial_success has wire type 0, not 2"},
      {std::string("\x0a\x02\x12\x05", 4), "truncated length-delimited"},
      {std::string("\x0a\x02\x0a\x00", 4), "rejected count has wire type 2, not 0"},
      {std::string("\x0a\x02\x10\x01", 4), "error_message has wire type 0, not 2"},
      {std::string("\x0a\x0b\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 13),
       "negative rejected count -1"},
      {std::string("\x1b\x08\x01\x24", 4), "mismatched end-group"},          // group 3 closed as 4
      {std::string("\x1b\x08\x01", 3), "truncated or over-long field tag"},  // never closed
      {std::string("\x1c", 1), "end-group of field 3 outside a group"},
      {std::string(20, '\x1b'), "groups nested too deeply"},
  };
  std::string error;
  for (const auto& [body, message] : cases) {
    SCOPED_TRACE(hex(body));
    EXPECT_FALSE(parse(Signal::kLogs, false, body, error));
    expect_clear_error(error, message);
  }
  // Binary junk: the excerpt shows at most 100 bytes, non-printables as dots.
  std::string junk;
  for (int i = 0; i < 64 * 1024; ++i) junk += static_cast<char>(i * 7 + 0x0f);
  EXPECT_FALSE(parse(Signal::kLogs, false, junk, error));
  expect_clear_error(error, "(body of 65536 bytes: \"");
}

TEST(OtlpExportResponse, WrongJsonTypesAreErrors) {
  const std::pair<std::string_view, std::string_view> cases[] = {
      {"[1]", "not an object"},
      {"\"ok\"", "not an object"},
      {R"({"partialSuccess":)", "invalid JSON"},
      {R"({"partialSuccess":"all fine"})", "partialSuccess is not an object"},
      {R"({"partialSuccess":{"rejectedLogRecords":true}})", "rejectedLogRecords is not an int64"},
      {R"({"partialSuccess":{"rejectedLogRecords":"12x"}})", "rejectedLogRecords is not an int64"},
      {R"({"partialSuccess":{"rejectedLogRecords":""}})", "rejectedLogRecords is not an int64"},
      {R"({"partialSuccess":{"rejectedLogRecords":1.5}})", "rejectedLogRecords is not an int64"},
      {R"({"partialSuccess":{"rejectedLogRecords":18446744073709551615}})",
       "rejectedLogRecords is not an int64"},
      {R"({"partialSuccess":{"rejectedLogRecords":[3]}})", "rejectedLogRecords is not an int64"},
      {R"({"partialSuccess":{"rejectedLogRecords":-3}})", "rejectedLogRecords is negative"},
      {R"({"partialSuccess":{"rejectedLogRecords":"-3"}})", "rejectedLogRecords is negative"},
      {R"({"partialSuccess":{"errorMessage":42}})", "errorMessage is not a string"},
  };
  std::string error;
  for (const auto& [body, message] : cases) {
    SCOPED_TRACE(body);
    EXPECT_FALSE(parse(Signal::kLogs, true, body, error));
    expect_clear_error(error, message);
  }
}

TEST(OtlpExportResponse, BodyAndMessageAreBounded) {
  std::string error;
  EXPECT_FALSE(parse(Signal::kLogs, true, std::string(kMaxResponseBody + 1, ' '), error));
  expect_clear_error(error, "over the 65536-byte limit");

  // The message is cut to 1 KiB at a character boundary (3-byte characters: 1023 bytes kept).
  std::string long_message;
  while (long_message.size() < 3000) long_message += "\u2713";
  auto result = parse(Signal::kLogs, false, kSignals[0].serialize(1, long_message), error);
  ASSERT_TRUE(result) << error;
  EXPECT_EQ(result->error_message.size(), 1023u);
  EXPECT_EQ(result->error_message, long_message.substr(0, 1023));

  // One log line: control characters become spaces; invalid UTF-8 bytes become '?'.
  result = parse(Signal::kLogs, false, kSignals[0].serialize(1, "line\none\ttwo\x1b[31m"), error);
  ASSERT_TRUE(result) << error;
  EXPECT_EQ(result->error_message, "line one two [31m");
  result = parse(Signal::kLogs, false, kSignals[0].serialize(1, "bad \xff\xfe utf8 \u2713"), error);
  ASSERT_TRUE(result) << error;
  EXPECT_EQ(result->error_message, "bad ?? utf8 ???");
  result = parse(Signal::kLogs, true, R"({"partialSuccess":{"errorMessage":"a\nb \u00e9 \u0007"}})",
                 error);
  ASSERT_TRUE(result) << error;
  EXPECT_EQ(result->error_message, "a b \u00e9  ");
}

}  // namespace
}  // namespace relay::otlp
