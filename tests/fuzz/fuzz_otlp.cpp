// libFuzzer target: the otlp sink's mapping, encoders and response parser on hostile telemetry.
// Input: lines; each line's first byte picks an event type (Lambda's, or an unknown one), the
// rest is its record, raw (the host passes only valid JSON, but the mapping must not rely on
// it). The events are mapped in two calls (state across batches), held records released, and
// everything encoded as protobuf and JSON; the whole input is also parsed as an export response
// of each signal in both encodings. Whatever the bytes: no crash, no sanitizer report, and every
// string the encoders get is valid UTF-8 (protobuf requires it).
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "export_response.h"
#include "json_encoder.h"
#include "lambda_mapping.h"
#include "otlp_model.h"
#include "protobuf_encoder.h"

namespace {

using namespace relay::otlp;

constexpr std::string_view kTypes[] = {"function",
                                       "extension",
                                       "platform.start",
                                       "platform.runtimeDone",
                                       "platform.report",
                                       "platform.initStart",
                                       "platform.initRuntimeDone",
                                       "platform.initReport",
                                       "platform.logsDropped",
                                       "platform.restoreStart",
                                       "platform.extension",
                                       "platform.fault"};

void check_utf8(std::string_view text) {
  if (!simdjson::validate_utf8(text.data(), text.size())) __builtin_trap();
}

void check(const AnyValue& value) {
  check_utf8(value.string_value);
  for (const AnyValue& item : value.array_value) check(item);
  for (const KeyValue& kv : value.kvlist_value) {
    check_utf8(kv.key);
    check(kv.value);
  }
}

void check(const Attributes& attributes) {
  for (const KeyValue& kv : attributes) {
    check_utf8(kv.key);
    check(kv.value);
  }
}

void encode_all(MappingOutput& out) {
  static const Resource resource;
  const Scope scope{"telemetry-relay", "0"};
  for (const LogRecord& record : out.logs) {
    check(record.body);
    check(record.attributes);
    check_utf8(record.severity_text);
  }
  for (const Span& span : out.spans) {
    check_utf8(span.name);
    check(span.attributes);
  }
  std::string body;
  LogsRequest logs{&resource, scope, std::move(out.logs)};
  encode_protobuf(logs, body);
  encode_json(logs, body);
  TracesRequest traces{&resource, scope, std::move(out.spans)};
  encode_protobuf(traces, body);
  encode_json(traces, body);
  MetricsRequest metrics{&resource, scope, std::move(out.metrics)};
  encode_protobuf(metrics, body);
  encode_json(metrics, body);
  out.clear();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<LambdaEvent> events;
  for (size_t at = 0; at < input.size();) {
    size_t end = input.find('\n', at);
    if (end == std::string_view::npos) end = input.size();
    const std::string_view line = input.substr(at, end - at);
    if (!line.empty()) {
      const auto pick = static_cast<unsigned char>(line[0]) % std::size(kTypes);
      events.push_back({kTypes[pick], "2024-05-14T09:12:04.110Z", line.substr(1)});
    }
    at = end + 1;
  }
  MappingOptions options;
  options.function_name = "fuzz";
  options.platform_logs = size % 2 == 1;
  options.managed_instances = size % 3 == 0;
  options.max_held_records = 4;
  LambdaMapping mapping(options);
  MappingOutput out;
  const size_t half = events.size() / 2;
  const std::vector<LambdaEvent> first(events.begin(), events.begin() + half);
  const std::vector<LambdaEvent> second(events.begin() + half, events.end());
  mapping.map(first, 1'715'677'924'000'000'000ull, out);
  encode_all(out);
  mapping.map(second, 1'715'677'930'000'000'000ull, out);
  encode_all(out);
  mapping.release_held(out);
  encode_all(out);

  std::string error;
  for (Signal signal : {Signal::kLogs, Signal::kTraces, Signal::kMetrics}) {
    (void)parse_export_response(signal, false, input, error);
    (void)parse_export_response(signal, true, input, error);
  }
  return 0;
}
