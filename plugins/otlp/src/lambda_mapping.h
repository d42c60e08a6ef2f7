#pragma once

// Lambda Telemetry API events to OTLP logs, spans and metrics (the README's mapping table).
// Stateful across batches: the trace context of each invocation seen in platform.start, the
// invocation in progress, the pending init span, whether the next invocation is a cold start,
// and the log records held briefly for an invocation whose platform.start has not arrived.

#include <simdjson.h>

#include <cstdint>
#include <deque>
#include <optional>
#include <random>
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

// What one mapping call produced. The items' strings point into `strings`, into static storage
// or into the events given to map(), which the caller keeps alive until the output is encoded.
struct MappingOutput {
  StringStore strings;
  std::vector<LogRecord> logs;
  std::vector<Span> spans;
  std::vector<Metric> metrics;  // aggregated over the call's events, delta temporality

  // Empties the output and keeps its capacity for the next call (up to kKeptItems).
  void clear() {
    logs.clear();
    spans.clear();
    metrics.clear();
    strings.clear();
    if (logs.capacity() > kKeptItems) logs = {};  // an unusually large batch's
    if (spans.capacity() > kKeptItems) spans = {};
  }
  static constexpr size_t kKeptItems = 4096;
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

// Not thread-safe: one caller at a time (the sink's delivery thread).
class LambdaMapping {
 public:
  explicit LambdaMapping(MappingOptions options);

  // Maps events (one delivered batch, in arrival order) into out, appending. now_unix_nano is
  // the observed timestamp of log records and decides which held records have waited enough.
  void map(const std::vector<LambdaEvent>& events, uint64_t now_unix_nano, MappingOutput& out);

  // Appends every held log record (at flush, before the process ends).
  void release_held(MappingOutput& out);

  size_t held() const { return held_.size(); }
  const MappingCounters& counters() const { return counters_; }

  // How many recent invocations' trace contexts are remembered (by request id).
  static constexpr size_t kRememberedInvocations = 256;

 private:
  struct TraceContext {
    TraceId trace_id{};
    SpanId span_id{};    // the invocation (or init) span's id, which its logs carry
    SpanId parent_id{};  // X-Ray Parent
    bool sampled = true;
  };
  struct Invocation {
    std::string request_id;
    TraceContext trace;
    uint64_t start_unix_nano = 0;  // 0: platform.start not seen
    bool started = false;          // platform.start seen
    bool span_emitted = false;
    bool coldstart = false;
  };
  struct InitPhase {
    bool started = false;
    uint64_t start_unix_nano = 0;  // 0: unknown
    std::optional<TraceContext> trace;
    bool runtime_done = false;
    uint64_t runtime_done_unix_nano = 0;
    std::string status;  // of initRuntimeDone
    std::string error_type;
    bool span_emitted = false;
  };
  struct HeldRecord {
    LogRecord record;
    StringStore strings;  // owns every string of record
    std::string request_id;
    uint64_t held_since_unix_nano = 0;
  };
  struct Metrics;
  struct EventContext;

  void map_event(const LambdaEvent& event, uint64_t now, Metrics& metrics, MappingOutput& out);
  bool parse(std::string_view json, simdjson::dom::element& root);
  void pad(std::string_view json);  // into padded_
  bool map_object(std::string_view json, LogRecord& record, std::string_view& request_id,
                  MappingOutput& out);
  void map_log(const EventContext& ev, MappingOutput& out);
  void map_platform(const EventContext& ev, Metrics& metrics, MappingOutput& out);
  void on_start(const EventContext& ev, const simdjson::dom::object& record, Metrics& metrics,
                MappingOutput& out);
  void on_invocation_end(const EventContext& ev, const simdjson::dom::object& record,
                         bool is_report, Metrics& metrics, MappingOutput& out);
  void on_init_start(const EventContext& ev, const simdjson::dom::object& record);
  void on_init_end(const EventContext& ev, const simdjson::dom::object& record, bool is_report,
                   Metrics& metrics, MappingOutput& out);
  void emit_init_span(uint64_t start, uint64_t end, std::string_view status,
                      std::string_view error_type, MappingOutput& out);
  void platform_log(const EventContext& ev, std::string_view body, int32_t severity,
                    std::string_view request_id, const Invocation* invocation, MappingOutput& out);

  std::optional<TraceContext> read_tracing(const simdjson::dom::object& record, bool count_missing);
  Invocation* find(std::string_view request_id);
  Invocation& remember(std::string_view request_id);
  static void attach(LogRecord& record, const Invocation& invocation);
  void hold(LogRecord record, std::string_view request_id, uint64_t now, MappingOutput& out);
  void release_for(const Invocation& invocation, MappingOutput& out);
  void release_front(MappingOutput& out);
  SpanId random_span_id();
  TraceId random_trace_id();

  MappingOptions options_;
  MappingCounters counters_;
  simdjson::dom::parser parser_;         // platform records, strings with \u escapes
  simdjson::ondemand::parser ondemand_;  // JSON log records (big integers as text)
  std::string padded_;                   // the record being parsed, with simdjson's padding
  std::string repaired_;
  std::string line_;  // an unescaped log line
  std::string text_;  // a platform log body being formatted
  std::mt19937_64 random_;
  std::vector<Invocation> invocations_;  // a ring of the last kRememberedInvocations
  size_t next_invocation_ = 0;
  std::string current_request_;  // the invocation in progress ("" none; not on Managed Instances)
  bool cold_start_pending_ = false;  // an on-demand init ran; its first invocation is cold
  InitPhase init_;
  std::deque<HeldRecord> held_;
};

}  // namespace relay::otlp
