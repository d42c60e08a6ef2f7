#pragma once

// Telemetry events as the Lambda platform produces them (schema 2022-12-13, or 2025-01-29 on
// Lambda Managed Instances), each kept as the exact JSON text that goes on the wire, so tests can
// compare deliveries byte for byte.

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace relay::emu {

using SystemTime = std::chrono::system_clock::time_point;

struct Event {
  std::string type;  // "platform.start", "function", ...
  std::string text;  // the whole {"time","type","record"} object
};

// The Telemetry API subscription type an event type belongs to: platform, function, extension.
std::string_view category_of(std::string_view type);

std::string json_quote(std::string_view text);
std::string iso_time(SystemTime t);  // 2024-05-14T09:12:05.320Z
int64_t epoch_ms(SystemTime t);
std::string new_uuid();

enum class LogFormat { kText, kJson, kMixed };
LogFormat parse_log_format(std::string_view name);  // throws std::invalid_argument

// How the platform writes each event's JSON. Lambda writes it compact, keys in a fixed order;
// kPrettyReordered is a fault scenario for consumers that search the text instead of parsing it.
enum class EventStyle { kCompact, kPrettyReordered };
EventStyle parse_event_style(std::string_view name);  // "compact" | "pretty"; throws

// The same JSON value pretty-printed (two-space indent, one member per line, " : " between key
// and value) with every object's keys in reverse order, e.g. "record" before "type" and "time",
// and requestId after a record's nested objects. Strings and numbers keep their exact bytes.
// Throws std::invalid_argument when `json` is not one valid JSON value (or nests deeper than 64).
std::string pretty_reordered(std::string_view json);

struct FunctionInfo {
  std::string name = "emulated-function";
  std::string version = "$LATEST";
  std::string region = "us-east-1";
  std::string account_id = "123456789012";
  int memory_mb = 128;
  // AWS_LAMBDA_LOG_STREAM_NAME; empty: the emulator makes one per run in Lambda's form,
  // <yyyy>/<mm>/<dd>/[<version>]<32 hex>.
  std::string log_stream;

  std::string arn() const;
  std::string log_group() const { return "/aws/lambda/" + name; }  // AWS_LAMBDA_LOG_GROUP_NAME
};

// Builds events with the current time. Stateless apart from the function's identity and the
// environment's kind, so it is safe to call from several threads.
class EventFactory {
 public:
  explicit EventFactory(FunctionInfo function, bool managed_instances = false,
                        EventStyle style = EventStyle::kCompact)
      : function_(std::move(function)), managed_instances_(managed_instances), style_(style) {}

  Event init_start() const;
  Event telemetry_subscription(std::string_view extension,
                               const std::vector<std::string>& types) const;
  Event init_runtime_done(std::string_view status, std::string_view error_type) const;
  Event extension(std::string_view name, std::string_view state,
                  const std::vector<std::string>& events) const;
  Event init_report(std::string_view status, std::string_view error_type, double duration_ms) const;
  // An empty tenant_id leaves the field out, as for a function without tenant isolation.
  Event start(std::string_view request_id, std::string_view trace,
              std::string_view tenant_id = {}) const;
  // Line `line` of invocation `invocation`; every few lines carry awkward content (unicode,
  // quotes, tabs, huge numbers, nested objects) so forwarding must be lossless. tenant_id goes
  // into JSON records only: the text format has no place for it.
  Event function_log(std::string_view request_id, int invocation, int line, LogFormat format,
                     std::string_view tenant_id = {}) const;
  Event extension_log(std::string_view line) const;
  Event runtime_done(std::string_view request_id, std::string_view status, SystemTime started,
                     double duration_ms, std::string_view tenant_id = {}) const;
  Event report(std::string_view request_id, std::string_view status, std::string_view error_type,
               double duration_ms, double init_duration_ms, std::string_view tenant_id = {}) const;
  // The Managed Instances report: metrics hold only durationMs, and the response spans that
  // platform.runtimeDone carries elsewhere move here.
  Event managed_report(std::string_view request_id, std::string_view status, SystemTime started,
                       double duration_ms, std::string_view tenant_id = {}) const;
  Event logs_dropped(uint64_t records, uint64_t bytes, std::string_view reason) const;

  const FunctionInfo& function() const { return function_; }
  // initializationType of the init events.
  std::string_view initialization_type() const {
    return managed_instances_ ? "lambda-managed-instances" : "on-demand";
  }

 private:
  Event styled(Event event) const;

  FunctionInfo function_;
  bool managed_instances_ = false;
  EventStyle style_ = EventStyle::kCompact;
};

std::string make_trace_header();
// A log stream name as Lambda makes one per execution environment, e.g.
// 2024/05/14/[$LATEST]0f1e2d3c4b5a69788796a5b4c3d2e1f0.
std::string make_log_stream(std::string_view version, SystemTime now);

// Thread-safe accounting of what the platform generated and what it queued for the subscriber.
class EventLog {
 public:
  explicit EventLog(bool keep_texts) : keep_texts_(keep_texts) {}

  void generated(const Event& event);
  void queued(const Event& event);

  std::map<std::string, uint64_t> generated_by_type() const;
  uint64_t queued_count() const;
  std::vector<std::string> queued_texts() const;

 private:
  const bool keep_texts_;
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> generated_by_type_;
  uint64_t queued_ = 0;
  std::vector<std::string> queued_texts_;
};

}  // namespace relay::emu
