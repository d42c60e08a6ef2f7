#pragma once

// A local OTLP/HTTP receiver (what an OpenTelemetry Collector's `otlp` receiver does on port
// 4318) for the otlp sink's tests, the demo and the benchmark. It serves /v1/logs, /v1/traces and
// /v1/metrics, un-gzips, decodes application/x-protobuf with the official opentelemetry-proto
// classes and application/json with protobuf's JSON parser (after turning OTLP/JSON's hex ids
// into base64), and keeps the decoded requests. Answers follow the OTLP specification: 415 for
// another content type, 400 for an undecodable body, else 200 with an empty Export*Response in the
// request's encoding, unless a scripted answer says otherwise.

#include <opentelemetry/proto/collector/logs/v1/logs_service.pb.h>
#include <opentelemetry/proto/collector/metrics/v1/metrics_service.pb.h>
#include <opentelemetry/proto/collector/trace/v1/trace_service.pb.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace Poco {
class ThreadPool;
namespace Net {
class HTTPServer;
class HTTPServerRequest;
class HTTPServerResponse;
}  // namespace Net
}  // namespace Poco

namespace relay::emu {

namespace otlp_pb {
using opentelemetry::proto::collector::logs::v1::ExportLogsServiceRequest;
using opentelemetry::proto::collector::metrics::v1::ExportMetricsServiceRequest;
using opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
using opentelemetry::proto::common::v1::AnyValue;
using opentelemetry::proto::common::v1::InstrumentationScope;
using opentelemetry::proto::common::v1::KeyValue;
using opentelemetry::proto::logs::v1::LogRecord;
using opentelemetry::proto::metrics::v1::Metric;
using opentelemetry::proto::resource::v1::Resource;
using opentelemetry::proto::trace::v1::Span;
}  // namespace otlp_pb

enum class OtlpSignal { kLogs = 0, kTraces = 1, kMetrics = 2 };
inline constexpr std::array<OtlpSignal, 3> kOtlpSignals{OtlpSignal::kLogs, OtlpSignal::kTraces,
                                                        OtlpSignal::kMetrics};
std::string_view signal_name(OtlpSignal signal);  // "logs", "traces", "metrics"
std::string_view signal_path(OtlpSignal signal);  // "/v1/logs", ...

// One request as it arrived and how it was answered (decoded contents are kept separately).
struct OtlpRequest {
  std::optional<OtlpSignal> signal;  // none: a path that is not an OTLP one (answered 404)
  std::string method;
  std::string uri;
  std::vector<std::pair<std::string, std::string>> headers;
  size_t wire_bytes = 0;     // the body as sent (compressed when gzip)
  size_t decoded_bytes = 0;  // after un-gzipping
  size_t items = 0;          // log records, spans or metric data points in the body
  int status = 0;            // what the receiver answered
  std::string error;         // why it was refused (415, 400, ...), empty when decoded
  std::chrono::steady_clock::time_point at;

  std::string header(std::string_view name) const;  // case-insensitive; empty if absent
};

// A scripted answer for one request.
struct OtlpAnswer {
  int status = 200;
  std::string retry_after;    // sent as Retry-After when non-empty
  int64_t rejected = 0;       // > 0 (with status 200): partial_success rejecting this many
  std::string error_message;  // partial_success.error_message
  std::optional<std::string> raw_body;  // set: this body and raw_content_type instead of OTLP
  std::string raw_content_type;

  static OtlpAnswer status_only(int status, std::string retry_after = {}) {
    OtlpAnswer answer;
    answer.status = status;
    answer.retry_after = std::move(retry_after);
    return answer;
  }
  static OtlpAnswer partial_success(int64_t rejected, std::string message) {
    OtlpAnswer answer;
    answer.rejected = rejected;
    answer.error_message = std::move(message);
    return answer;
  }
  // E.g. a proxy's HTML page answered 200.
  static OtlpAnswer raw(int status, std::string content_type, std::string body) {
    OtlpAnswer answer;
    answer.status = status;
    answer.raw_content_type = std::move(content_type);
    answer.raw_body = std::move(body);
    return answer;
  }
};

// A log record, span or metric with the resource and scope it came under.
template <typename Item>
struct OtlpItem {
  otlp_pb::Resource resource;
  otlp_pb::InstrumentationScope scope;
  Item item;
};
using OtlpLogRecord = OtlpItem<otlp_pb::LogRecord>;
using OtlpSpan = OtlpItem<otlp_pb::Span>;
using OtlpMetric = OtlpItem<otlp_pb::Metric>;

class OtlpReceiver {
 public:
  struct Options {
    uint16_t port = 0;  // 0: ephemeral
    // false: the benchmark's receiver. Reads and discards each body and answers 200 with an
    // empty body, so the receiver costs next to nothing beside the extension it measures.
    bool decode = true;
    // OTLP says receivers MUST ignore unknown JSON fields; the tests want a misspelt field
    // name to fail (400) instead of vanishing.
    bool json_ignore_unknown_fields = false;
    // Bounds on what one request may carry (413 above them).
    size_t max_body_bytes = 64u << 20;
    size_t max_decoded_bytes = 256u << 20;
  };

  OtlpReceiver();
  explicit OtlpReceiver(Options options);
  ~OtlpReceiver();
  OtlpReceiver(const OtlpReceiver&) = delete;
  OtlpReceiver& operator=(const OtlpReceiver&) = delete;

  // Binds 127.0.0.1:<port> and serves; throws Poco::Exception if the port is taken.
  void start();
  void stop();
  uint16_t port() const;
  std::string url() const;  // http://127.0.0.1:<port>, the base for RELAY_OTLP_ENDPOINT

  // Answers for the next requests of one signal (or of each signal), in order; then the default.
  void push_answers(OtlpSignal signal, const std::vector<OtlpAnswer>& answers);
  void push_answers(const std::vector<OtlpAnswer>& answers);  // to every signal's queue
  void set_default_answer(OtlpAnswer answer);

  // Every request, in arrival order.
  std::vector<OtlpRequest> requests() const;
  size_t request_count() const;
  size_t request_count(OtlpSignal signal) const;
  size_t wire_bytes() const;  // bodies as received, all requests

  // The decoded requests answered 2xx (a partial success included), in arrival order.
  std::vector<otlp_pb::ExportLogsServiceRequest> logs_requests() const;
  std::vector<otlp_pb::ExportTraceServiceRequest> traces_requests() const;
  std::vector<otlp_pb::ExportMetricsServiceRequest> metrics_requests() const;

  // The same flattened: every item with its resource and scope.
  std::vector<OtlpLogRecord> log_records() const;
  std::vector<OtlpSpan> spans() const;
  std::vector<OtlpMetric> metrics() const;
  size_t log_record_count() const;
  size_t span_count() const;
  size_t metric_count() const;
  size_t data_point_count() const;

  // Waits for that many accepted items (or requests of any status); false on timeout.
  bool wait_for_logs(size_t count, std::chrono::milliseconds timeout) const;
  bool wait_for_spans(size_t count, std::chrono::milliseconds timeout) const;
  bool wait_for_metrics(size_t count, std::chrono::milliseconds timeout) const;
  bool wait_for_requests(size_t count, std::chrono::milliseconds timeout) const;

 private:
  void handle(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response);
  OtlpAnswer next_answer(OtlpSignal signal);

  Options options_;
  std::unique_ptr<Poco::ThreadPool> pool_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  uint16_t port_ = 0;
  std::array<std::deque<OtlpAnswer>, 3> scripts_;
  OtlpAnswer default_answer_;
  std::vector<OtlpRequest> requests_;
  size_t wire_bytes_ = 0;
  std::vector<otlp_pb::ExportLogsServiceRequest> logs_;
  std::vector<otlp_pb::ExportTraceServiceRequest> traces_;
  std::vector<otlp_pb::ExportMetricsServiceRequest> metrics_;
  size_t log_records_ = 0;
  size_t spans_ = 0;
  size_t metric_count_ = 0;
  size_t data_points_ = 0;
};

// OTLP/JSON to protobuf's JSON mapping: every "traceId", "spanId" and "parentSpanId" string
// value turned from hex into base64; everything else byte for byte. nullopt when such a value is
// not hex of an even length.
std::optional<std::string> otlp_json_hex_ids_to_base64(std::string_view json);

// Lowercase hex of an id's bytes ("" for none), as OTLP/JSON and X-Ray write them.
std::string hex_id(std::string_view bytes);

// Readable forms of OTLP values for reports and test messages.
std::string any_value_text(const otlp_pb::AnyValue& value);
// The attribute's value when `key` is present.
const otlp_pb::AnyValue* find_attribute(
    const google::protobuf::RepeatedPtrField<otlp_pb::KeyValue>& attributes, std::string_view key);

}  // namespace relay::emu
