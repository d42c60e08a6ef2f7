#include "otlp_receiver.h"

#include <Poco/Base64Encoder.h>
#include <Poco/Exception.h>
#include <Poco/InflatingStream.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/String.h>
#include <Poco/ThreadPool.h>
#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <istream>
#include <sstream>

#include "events.h"
#include "http_util.h"

namespace relay::emu {
namespace {

using opentelemetry::proto::collector::logs::v1::ExportLogsServiceResponse;
using opentelemetry::proto::collector::metrics::v1::ExportMetricsServiceResponse;
using opentelemetry::proto::collector::trace::v1::ExportTraceServiceResponse;

bool is_2xx(int status) { return status >= 200 && status < 300; }

// send_answer() without its rule that an empty body has no Content-Type: an empty protobuf
// Export*ServiceResponse is a zero-length body, still application/x-protobuf.
void send(Poco::Net::HTTPServerResponse& response, const Answer& answer) {
  // With its reason phrase ("503 Service Unavailable", not POCO's default "OK"): the sink logs it.
  response.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(answer.status));
  if (!answer.content_type.empty()) response.setContentType(answer.content_type);
  for (const auto& [name, value] : answer.headers) response.set(name, value);
  response.setContentLength(static_cast<std::streamsize>(answer.body.size()));
  response.send().write(answer.body.data(), static_cast<std::streamsize>(answer.body.size()));
}

std::optional<OtlpSignal> signal_of(std::string_view path) {
  for (const OtlpSignal signal : kOtlpSignals) {
    if (path == signal_path(signal)) return signal;
  }
  return std::nullopt;
}

// Reads at most `limit` + 1 bytes: more than `limit` means too large.
std::string read_bounded(std::istream& in, size_t limit) {
  std::string out;
  char buffer[64 * 1024];
  while (out.size() <= limit && in.read(buffer, sizeof buffer).gcount() > 0) {
    out.append(buffer, static_cast<size_t>(in.gcount()));
  }
  return out;
}

// Reads and drops the body: the benchmark's receiver must cost next to nothing.
size_t discard(std::istream& in) {
  size_t total = 0;
  char buffer[64 * 1024];
  while (in.read(buffer, sizeof buffer).gcount() > 0) total += static_cast<size_t>(in.gcount());
  return total;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> hex_to_base64(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string bytes;
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int high = hex_digit(hex[i]);
    const int low = hex_digit(hex[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    bytes += static_cast<char>(high * 16 + low);
  }
  std::ostringstream out;
  Poco::Base64Encoder encoder(out);
  encoder.rdbuf()->setLineLength(0);
  encoder << bytes;
  encoder.close();
  return out.str();
}

bool is_id_key(std::string_view key) {
  return key == "traceId" || key == "spanId" || key == "parentSpanId";
}

template <typename Message>
std::string decode(const std::string& body, bool json, bool ignore_unknown, Message& message) {
  if (!json) {
    return message.ParseFromString(body) ? "" : "not a valid protobuf " + message.GetTypeName();
  }
  const auto converted = otlp_json_hex_ids_to_base64(body);
  if (!converted) return "a traceId/spanId/parentSpanId that is not hex";
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = ignore_unknown;
  const auto status = google::protobuf::util::JsonStringToMessage(*converted, &message, options);
  return status.ok() ? "" : "not valid OTLP/JSON: " + status.ToString();
}

template <typename Response>
std::string encode(const Response& response, bool json) {
  if (!json) return response.SerializeAsString();
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(response, &out);
  return out;
}

// google.rpc.Status{code=1, message=2}, the body OTLP puts on an error answer; the generated
// class is not in relay_otlp_proto, and two fields are quickly written by hand.
std::string rpc_status(int code, const std::string& message, bool json) {
  if (json)
    return R"({"code":)" + std::to_string(code) + R"(,"message":)" + json_quote(message) + "}";
  std::string out;
  out += '\x08';
  out += static_cast<char>(code);  // small codes only: a one-byte varint
  out += '\x12';
  out += static_cast<char>(message.size() & 0x7f);
  out += message.substr(0, 0x7f);
  return out;
}

size_t count_items(const otlp_pb::ExportLogsServiceRequest& request) {
  size_t n = 0;
  for (const auto& resource : request.resource_logs()) {
    for (const auto& scope : resource.scope_logs())
      n += static_cast<size_t>(scope.log_records_size());
  }
  return n;
}

size_t count_items(const otlp_pb::ExportTraceServiceRequest& request) {
  size_t n = 0;
  for (const auto& resource : request.resource_spans()) {
    for (const auto& scope : resource.scope_spans()) n += static_cast<size_t>(scope.spans_size());
  }
  return n;
}

size_t data_points(const otlp_pb::Metric& metric) {
  switch (metric.data_case()) {
    case otlp_pb::Metric::kGauge:
      return static_cast<size_t>(metric.gauge().data_points_size());
    case otlp_pb::Metric::kSum:
      return static_cast<size_t>(metric.sum().data_points_size());
    case otlp_pb::Metric::kHistogram:
      return static_cast<size_t>(metric.histogram().data_points_size());
    case otlp_pb::Metric::kExponentialHistogram:
      return static_cast<size_t>(metric.exponential_histogram().data_points_size());
    case otlp_pb::Metric::kSummary:
      return static_cast<size_t>(metric.summary().data_points_size());
    default:
      return 0;
  }
}

size_t count_metrics(const otlp_pb::ExportMetricsServiceRequest& request) {
  size_t n = 0;
  for (const auto& resource : request.resource_metrics()) {
    for (const auto& scope : resource.scope_metrics())
      n += static_cast<size_t>(scope.metrics_size());
  }
  return n;
}

size_t count_items(const otlp_pb::ExportMetricsServiceRequest& request) {
  size_t n = 0;
  for (const auto& resource : request.resource_metrics()) {
    for (const auto& scope : resource.scope_metrics()) {
      for (const auto& metric : scope.metrics()) n += data_points(metric);
    }
  }
  return n;
}

}  // namespace

std::string_view signal_name(OtlpSignal signal) {
  switch (signal) {
    case OtlpSignal::kLogs:
      return "logs";
    case OtlpSignal::kTraces:
      return "traces";
    case OtlpSignal::kMetrics:
      return "metrics";
  }
  return "?";
}

std::string_view signal_path(OtlpSignal signal) {
  switch (signal) {
    case OtlpSignal::kLogs:
      return "/v1/logs";
    case OtlpSignal::kTraces:
      return "/v1/traces";
    case OtlpSignal::kMetrics:
      return "/v1/metrics";
  }
  return "?";
}

std::string OtlpRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (Poco::icompare(key, std::string(name)) == 0) return value;
  }
  return {};
}

// OTLP/JSON writes trace and span ids as hex where protobuf's JSON mapping (which
// JsonStringToMessage implements) expects base64 for every bytes field; the OTLP specification
// names this as its one deviation. So before parsing, each string value of a traceId, spanId or
// parentSpanId key (Span, Span.Link, LogRecord, Exemplar) is re-encoded as base64. A small
// scanner that steps over whole string tokens finds the keys: a key is a string token followed by
// ':', and text inside another string (a log body quoting "traceId") is never mistaken for one.
std::optional<std::string> otlp_json_hex_ids_to_base64(std::string_view json) {
  std::string out;
  out.reserve(json.size() + json.size() / 16);
  bool id_value_next = false;  // after `"traceId":`
  size_t i = 0;
  while (i < json.size()) {
    const char c = json[i];
    if (c != '"') {
      if (c != ':' && c != ' ' && c != '\t' && c != '\n' && c != '\r') id_value_next = false;
      out += c;
      ++i;
      continue;
    }
    size_t end = i + 1;
    while (end < json.size() && json[end] != '"') end += json[end] == '\\' ? 2 : 1;
    if (end >= json.size()) {  // unterminated: the parser reports it
      out.append(json.substr(i));
      break;
    }
    const std::string_view content = json.substr(i + 1, end - i - 1);
    if (id_value_next) {
      const auto base64 = hex_to_base64(content);
      if (!base64) return std::nullopt;
      out += '"';
      out += *base64;
      out += '"';
      id_value_next = false;
    } else {
      out.append(json.substr(i, end + 1 - i));
      size_t next = end + 1;
      while (next < json.size() && (json[next] == ' ' || json[next] == '\t' || json[next] == '\n' ||
                                    json[next] == '\r')) {
        ++next;
      }
      id_value_next = next < json.size() && json[next] == ':' && is_id_key(content);
    }
    i = end + 1;
  }
  return out;
}

std::string hex_id(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char b : bytes) {
    const auto byte = static_cast<unsigned char>(b);
    out += kDigits[byte >> 4];
    out += kDigits[byte & 0xf];
  }
  return out;
}

std::string any_value_text(const otlp_pb::AnyValue& value) {
  switch (value.value_case()) {
    case otlp_pb::AnyValue::kStringValue:
      return value.string_value();
    case otlp_pb::AnyValue::kBoolValue:
      return value.bool_value() ? "true" : "false";
    case otlp_pb::AnyValue::kIntValue:
      return std::to_string(value.int_value());
    case otlp_pb::AnyValue::kDoubleValue: {
      char buffer[32];
      std::snprintf(buffer, sizeof buffer, "%.17g", value.double_value());
      return buffer;
    }
    case otlp_pb::AnyValue::kArrayValue: {
      std::string out = "[";
      for (const auto& item : value.array_value().values()) {
        if (out.size() > 1) out += ", ";
        out += any_value_text(item);
      }
      return out + "]";
    }
    case otlp_pb::AnyValue::kKvlistValue: {
      std::string out = "{";
      for (const auto& kv : value.kvlist_value().values()) {
        if (out.size() > 1) out += ", ";
        out += kv.key() + ": " + any_value_text(kv.value());
      }
      return out + "}";
    }
    case otlp_pb::AnyValue::kBytesValue:
      return "0x" + hex_id(value.bytes_value());
    default:
      return "(empty)";
  }
}

const otlp_pb::AnyValue* find_attribute(
    const google::protobuf::RepeatedPtrField<otlp_pb::KeyValue>& attributes, std::string_view key) {
  for (const auto& kv : attributes) {
    if (kv.key() == key) return &kv.value();
  }
  return nullptr;
}

OtlpReceiver::OtlpReceiver() : OtlpReceiver(Options{}) {}

OtlpReceiver::OtlpReceiver(Options options) : options_(options), port_(options.port) {}

OtlpReceiver::~OtlpReceiver() { stop(); }

void OtlpReceiver::start() {
  if (server_) return;
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", port_), 64);
  {
    std::lock_guard lock(mu_);
    port_ = socket.address().port();
  }
  auto params = Poco::AutoPtr<Poco::Net::HTTPServerParams>(new Poco::Net::HTTPServerParams);
  params->setMaxThreads(16);
  params->setKeepAlive(true);
  pool_ = std::make_unique<Poco::ThreadPool>(2, 16);
  server_ = std::make_unique<Poco::Net::HTTPServer>(
      new FnHandlerFactory([this](auto& request, auto& response) { handle(request, response); }),
      *pool_, socket, params);
  server_->start();
}

void OtlpReceiver::stop() {
  if (!server_) return;
  server_->stopAll(true);
  server_.reset();
  pool_->joinAll();
  pool_.reset();
}

uint16_t OtlpReceiver::port() const {
  std::lock_guard lock(mu_);
  return port_;
}

std::string OtlpReceiver::url() const { return "http://127.0.0.1:" + std::to_string(port()); }

void OtlpReceiver::push_answers(OtlpSignal signal, const std::vector<OtlpAnswer>& answers) {
  std::lock_guard lock(mu_);
  auto& script = scripts_[static_cast<size_t>(signal)];
  script.insert(script.end(), answers.begin(), answers.end());
}

void OtlpReceiver::push_answers(const std::vector<OtlpAnswer>& answers) {
  for (const OtlpSignal signal : kOtlpSignals) push_answers(signal, answers);
}

void OtlpReceiver::set_default_answer(OtlpAnswer answer) {
  std::lock_guard lock(mu_);
  default_answer_ = std::move(answer);
}

OtlpAnswer OtlpReceiver::next_answer(OtlpSignal signal) {
  std::lock_guard lock(mu_);
  auto& script = scripts_[static_cast<size_t>(signal)];
  if (script.empty()) return default_answer_;
  OtlpAnswer answer = std::move(script.front());
  script.pop_front();
  return answer;
}

std::vector<OtlpRequest> OtlpReceiver::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

size_t OtlpReceiver::request_count() const {
  std::lock_guard lock(mu_);
  return requests_.size();
}

size_t OtlpReceiver::request_count(OtlpSignal signal) const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& request : requests_) n += request.signal == signal ? 1 : 0;
  return n;
}

size_t OtlpReceiver::wire_bytes() const {
  std::lock_guard lock(mu_);
  return wire_bytes_;
}

std::vector<otlp_pb::ExportLogsServiceRequest> OtlpReceiver::logs_requests() const {
  std::lock_guard lock(mu_);
  return logs_;
}

std::vector<otlp_pb::ExportTraceServiceRequest> OtlpReceiver::traces_requests() const {
  std::lock_guard lock(mu_);
  return traces_;
}

std::vector<otlp_pb::ExportMetricsServiceRequest> OtlpReceiver::metrics_requests() const {
  std::lock_guard lock(mu_);
  return metrics_;
}

std::vector<OtlpLogRecord> OtlpReceiver::log_records() const {
  std::vector<OtlpLogRecord> out;
  for (const auto& request : logs_requests()) {
    for (const auto& resource : request.resource_logs()) {
      for (const auto& scope : resource.scope_logs()) {
        for (const auto& record : scope.log_records()) {
          out.push_back(OtlpLogRecord{resource.resource(), scope.scope(), record});
        }
      }
    }
  }
  return out;
}

std::vector<OtlpSpan> OtlpReceiver::spans() const {
  std::vector<OtlpSpan> out;
  for (const auto& request : traces_requests()) {
    for (const auto& resource : request.resource_spans()) {
      for (const auto& scope : resource.scope_spans()) {
        for (const auto& span : scope.spans()) {
          out.push_back(OtlpSpan{resource.resource(), scope.scope(), span});
        }
      }
    }
  }
  return out;
}

std::vector<OtlpMetric> OtlpReceiver::metrics() const {
  std::vector<OtlpMetric> out;
  for (const auto& request : metrics_requests()) {
    for (const auto& resource : request.resource_metrics()) {
      for (const auto& scope : resource.scope_metrics()) {
        for (const auto& metric : scope.metrics()) {
          out.push_back(OtlpMetric{resource.resource(), scope.scope(), metric});
        }
      }
    }
  }
  return out;
}

size_t OtlpReceiver::log_record_count() const {
  std::lock_guard lock(mu_);
  return log_records_;
}

size_t OtlpReceiver::span_count() const {
  std::lock_guard lock(mu_);
  return spans_;
}

size_t OtlpReceiver::metric_count() const {
  std::lock_guard lock(mu_);
  return metric_count_;
}

size_t OtlpReceiver::data_point_count() const {
  std::lock_guard lock(mu_);
  return data_points_;
}

bool OtlpReceiver::wait_for_logs(size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return log_records_ >= count; });
}

bool OtlpReceiver::wait_for_spans(size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return spans_ >= count; });
}

bool OtlpReceiver::wait_for_metrics(size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return metric_count_ >= count; });
}

bool OtlpReceiver::wait_for_requests(size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return requests_.size() >= count; });
}

void OtlpReceiver::handle(Poco::Net::HTTPServerRequest& request,
                          Poco::Net::HTTPServerResponse& response) {
  OtlpRequest received;
  received.method = request.getMethod();
  received.uri = request.getURI();
  received.at = std::chrono::steady_clock::now();
  for (const auto& [name, value] : request) received.headers.emplace_back(name, value);
  const std::string path = received.uri.substr(0, received.uri.find('?'));
  received.signal = signal_of(path);

  auto finish = [&](const Answer& answer) {
    received.status = answer.status;
    {
      std::lock_guard lock(mu_);
      wire_bytes_ += received.wire_bytes;
      requests_.push_back(std::move(received));
      cv_.notify_all();
    }
    send(response, answer);
  };

  if (!options_.decode) {
    received.wire_bytes = discard(request.stream());
    finish(Answer{200, "", ""});
    return;
  }

  const std::string wire = read_bounded(request.stream(), options_.max_body_bytes);
  received.wire_bytes = wire.size();
  const std::string media_type = Poco::toLower(
      Poco::trim(request.getContentType().substr(0, request.getContentType().find(';'))));
  const bool json = media_type == "application/json";
  auto refuse = [&](int status, std::string why) {
    received.error = std::move(why);
    finish(Answer{status, rpc_status(status == 415 || status == 400 ? 3 : 5, received.error, json),
                  json ? "application/json" : "application/x-protobuf"});
  };

  if (!received.signal) return refuse(404, "not an OTLP path: " + path);
  if (received.method != "POST") return refuse(405, "OTLP/HTTP takes POST only");
  if (wire.size() > options_.max_body_bytes) return refuse(413, "body too large");
  if (!json && media_type != "application/x-protobuf") {
    return refuse(415, "unsupported Content-Type '" + request.getContentType() + "'");
  }

  std::string body;
  const std::string encoding = Poco::toLower(request.get("Content-Encoding", ""));
  if (encoding == "gzip") {
    // POCO's inflater passes bytes without a gzip header through as they are.
    if (wire.size() < 2 || wire[0] != '\x1f' || wire[1] != '\x8b') {
      return refuse(400, "Content-Encoding gzip, but the body is not gzip");
    }
    try {
      std::istringstream compressed(wire);
      Poco::InflatingInputStream inflate(compressed, Poco::InflatingStreamBuf::STREAM_GZIP);
      body = read_bounded(inflate, options_.max_decoded_bytes);
    } catch (const Poco::Exception& e) {
      return refuse(400, "gzip body does not inflate: " + e.displayText());
    }
    if (body.size() > options_.max_decoded_bytes) return refuse(413, "inflated body too large");
  } else if (encoding.empty() || encoding == "identity") {
    body = wire;
  } else {
    return refuse(400, "unsupported Content-Encoding '" + encoding + "'");
  }
  received.decoded_bytes = body.size();

  // Decoded first, answered after: a scripted refusal still counts what the body held.
  otlp_pb::ExportLogsServiceRequest logs;
  otlp_pb::ExportTraceServiceRequest traces;
  otlp_pb::ExportMetricsServiceRequest metrics;
  std::string error;
  switch (*received.signal) {
    case OtlpSignal::kLogs:
      error = decode(body, json, options_.json_ignore_unknown_fields, logs);
      received.items = count_items(logs);
      break;
    case OtlpSignal::kTraces:
      error = decode(body, json, options_.json_ignore_unknown_fields, traces);
      received.items = count_items(traces);
      break;
    case OtlpSignal::kMetrics:
      error = decode(body, json, options_.json_ignore_unknown_fields, metrics);
      received.items = count_items(metrics);
      break;
  }
  if (!error.empty()) return refuse(400, error);

  const OtlpAnswer answer = next_answer(*received.signal);
  if (is_2xx(answer.status)) {
    std::lock_guard lock(mu_);
    switch (*received.signal) {
      case OtlpSignal::kLogs:
        log_records_ += received.items;
        logs_.push_back(std::move(logs));
        break;
      case OtlpSignal::kTraces:
        spans_ += received.items;
        traces_.push_back(std::move(traces));
        break;
      case OtlpSignal::kMetrics:
        metric_count_ += count_metrics(metrics);
        data_points_ += received.items;
        metrics_.push_back(std::move(metrics));
        break;
    }
  }

  Answer::Headers headers;
  if (!answer.retry_after.empty()) headers.emplace_back("Retry-After", answer.retry_after);
  const std::string content_type = json ? "application/json" : "application/x-protobuf";
  if (answer.raw_body) {
    return finish(Answer{answer.status, *answer.raw_body, answer.raw_content_type, headers});
  }
  if (!is_2xx(answer.status)) {
    received.error = "scripted " + std::to_string(answer.status);
    return finish(
        Answer{answer.status, rpc_status(14, received.error, json), content_type, headers});
  }
  std::string out;
  switch (*received.signal) {
    case OtlpSignal::kLogs: {
      ExportLogsServiceResponse r;
      if (answer.rejected > 0) {
        r.mutable_partial_success()->set_rejected_log_records(answer.rejected);
        r.mutable_partial_success()->set_error_message(answer.error_message);
      }
      out = encode(r, json);
      break;
    }
    case OtlpSignal::kTraces: {
      ExportTraceServiceResponse r;
      if (answer.rejected > 0) {
        r.mutable_partial_success()->set_rejected_spans(answer.rejected);
        r.mutable_partial_success()->set_error_message(answer.error_message);
      }
      out = encode(r, json);
      break;
    }
    case OtlpSignal::kMetrics: {
      ExportMetricsServiceResponse r;
      if (answer.rejected > 0) {
        r.mutable_partial_success()->set_rejected_data_points(answer.rejected);
        r.mutable_partial_success()->set_error_message(answer.error_message);
      }
      out = encode(r, json);
      break;
    }
  }
  finish(Answer{answer.status, std::move(out), content_type, headers});
}

}  // namespace relay::emu
