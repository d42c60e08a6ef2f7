#pragma once

// Lambda Telemetry API events to OTLP logs, spans and metrics (the README's mapping table).
// Stateful across batches: the trace context of each invocation seen in platform.start, the
// invocation in progress, the pending init span, whether the next invocation is a cold start,
// and the log records held briefly for an invocation whose platform.start has not arrived.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "otlp_model.h"

namespace relay::otlp {

// One Telemetry API event as the host hands it over (relay_event's views).
struct LambdaEvent {
  std::string_view type;    // "platform.start", "function", ...
  std::string_view time;    // RFC 3339, e.g. 2024-05-14T09:12:05.321Z
  std::string_view record;  // raw JSON: a JSON string (with its quotes) or an object
};

struct MappingOptions {
  std::string function_name;  // AWS_LAMBDA_FUNCTION_NAME: the invocation span's name
  // Platform events as CloudWatch-style log records (START/END/REPORT...).
  bool platform_logs = false;
  // AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances: invocations run concurrently, so a
  // log record without a request id is never given "the invocation in progress".
  bool managed_instances = false;
  // Log records of an invocation whose platform.start has not arrived are held at most this
  // long (then sent without trace context) and at most this many at once (the oldest go first).
  uint64_t hold_ms = 2000;
  size_t max_held_records = 1000;
};

// What one mapping call produced. The items' strings point into `strings` or into the events
// given to map(), which the caller keeps alive until the output is encoded.
struct MappingOutput {
  StringStore strings;
  std::vector<LogRecord> logs;
  std::vector<Span> spans;
  std::vector<Metric> metrics;  // aggregated over the call's events, delta temporality

  void clear();
};

// Things worth counting that never stop a batch; the sink logs each kind once, and a summary.
struct MappingCounters {
  uint64_t invalid_utf8 = 0;            // log lines whose invalid UTF-8 bytes were replaced
  uint64_t unparsed_records = 0;        // records neither Lambda text nor a JSON object: kept whole
  uint64_t unknown_types_skipped = 0;   // event types that are not platform.*, function, extension
  uint64_t bad_tracing = 0;             // missing or malformed X-Ray tracing values
  uint64_t unsampled = 0;               // invocation spans not exported because Sampled=0
  uint64_t held_released_untraced = 0;  // held log records sent without trace context
};

class LambdaMapping {
 public:
  explicit LambdaMapping(MappingOptions options);

  // Maps events (one delivered batch, in arrival order) into out, appending. now_unix_nano is
  // the observed timestamp of log records and decides which held records have waited enough.
  void map(const std::vector<LambdaEvent>& events, uint64_t now_unix_nano, MappingOutput& out);

  // Appends every held log record (at flush, before the process ends).
  void release_held(MappingOutput& out);

  size_t held() const;
  const MappingCounters& counters() const { return counters_; }

 private:
  MappingOptions options_;
  MappingCounters counters_;
  // Implementation state (trace contexts by request id, bounded; current invocation; init span
  // start; cold start flag; held records) is the implementer's choice.
};

}  // namespace relay::otlp
