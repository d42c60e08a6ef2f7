// The otlp sink: Lambda telemetry as OpenTelemetry logs, traces and metrics over OTLP/HTTP
// (README "OTLP sink"). The life of a batch here:
//   1. lambda_mapping.cpp turns its events into log records, spans and metrics (keeping the
//      invocation state that spans batches: trace contexts, the init span, held log records);
//   2. protobuf_encoder.cpp or json_encoder.cpp writes one Export*ServiceRequest per signal;
//   3. one HttpClient per signal POSTs it (gzip, headers, TLS from the SDK toolkit), and
//      export_response.cpp reads a 200's partial_success.
// A signal that failed transiently keeps its encoded request until the host retries the batch
// (same batch id): only the requests not yet accepted are sent again, so a retry never
// duplicates what a receiver already took.
#include <Poco/StringTokenizer.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <deque>
#include <iterator>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <telemetry_relay/net/client.hpp>
#include <telemetry_relay/sink.hpp>
#include <utility>
#include <vector>

#include "export_response.h"
#include "json_encoder.h"
#include "lambda_mapping.h"
#include "otel_env.h"
#include "otlp_model.h"
#include "otlp_resource.h"
#include "protobuf_encoder.h"

namespace {

namespace key = relay::sdk::key;
namespace net = relay::sdk::net;
namespace otlp = relay::otlp;
using relay::sdk::Status;

constexpr std::string_view kScopeName = "telemetry-relay";
constexpr std::array<otlp::Signal, 3> kSignals = {otlp::Signal::kLogs, otlp::Signal::kTraces,
                                                  otlp::Signal::kMetrics};
// What a 200 answer may carry: a partial_success message, never large.
constexpr size_t kMaxResponseBody = 64 * 1024;
// Encoded requests keep their buffers from batch to batch up to this size.
constexpr size_t kMaxKeptBody = 1 << 20;

// Indexed by Signal: its name (RELAY_OTLP_SIGNALS, the URL path) and what its items are called.
constexpr std::string_view kSignalNames[] = {"logs", "traces", "metrics"};
constexpr std::string_view kItemNames[] = {"log records", "spans", "data points"};

constexpr std::string_view signal_name(otlp::Signal signal) {
  return kSignalNames[static_cast<size_t>(signal)];
}
constexpr std::string_view item_name(otlp::Signal signal) {
  return kItemNames[static_cast<size_t>(signal)];
}

// The OTLP exporter rule: a base endpoint gets the signal's path appended to its own path.
std::string signal_url(std::string base, otlp::Signal signal) {
  if (base.empty() || base.back() != '/') base += '/';
  return base + "v1/" + std::string(signal_name(signal));
}

uint64_t now_unix_nano() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

class OtlpSink final : public net::NetworkSink {
 public:
  // Endpoints are secret like the http sink's post_uri: user info, path and query may carry
  // credentials; headers usually do (API keys).
  static constexpr relay_config_key kConfigKeys[] = {
      key::uri("endpoint", "", "http|https",
               "OTLP/HTTP base URL: /v1/logs, /v1/traces, /v1/metrics are appended",
               RELAY_KEY_SECRET),
      key::uri("logs_endpoint", "", "http|https", "Full URL for logs (overrides endpoint)",
               RELAY_KEY_SECRET),
      key::uri("traces_endpoint", "", "http|https", "Full URL for traces (overrides endpoint)",
               RELAY_KEY_SECRET),
      key::uri("metrics_endpoint", "", "http|https", "Full URL for metrics (overrides endpoint)",
               RELAY_KEY_SECRET),
      key::choice("protocol", "http/protobuf", "http/protobuf|http/json|grpc",
                  "Encoding of the requests (grpc is not supported: use OTLP/HTTP)"),
      key::string("headers", "", "Request headers, OTel syntax: k1=v1,k2=v2 (values URL-decoded)",
                  RELAY_KEY_SECRET),
      key::choice("compression", "gzip", "gzip|none", "Request body compression"),
      key::integer("timeout_ms", "10000", 1, 300000,
                   "Timeout of one export request (the delivery's deadline bounds it too)"),
      key::integer("connect_timeout_ms", "1000", 1, 60000, "Connect timeout"),
      key::string("signals", "logs,traces,metrics", "Signals to export: a subset of the default"),
      key::boolean("platform_logs", "false",
                   "Platform events also as log records (START, END, REPORT...)"),
      key::string("ca_file", "",
                  "PEM CA bundle for https; unset: SSL_CERT_FILE, else the system's bundle"),
      key::string("cert_file", "", "PEM client certificate for mTLS (with key_file)"),
      key::string("key_file", "", "PEM private key of cert_file (unencrypted)"),
  };

  OtlpSink(const relay::sdk::Host& host, const relay::sdk::Config& config)
      : host_(host), mapping_(mapping_options(config)) {
    const std::string protocol = config.text("protocol");
    if (protocol == "grpc") {
      throw std::invalid_argument(
          "RELAY_OTLP_PROTOCOL=grpc is not supported: use http/protobuf (OTLP/HTTP, port 4318) "
          "or http/json");
    }
    json_ = protocol == "http/json";
    const std::array<bool, 3> wanted = parse_signals(config.text("signals"));
    const std::vector<net::Header> headers = parse_headers(config.text("headers"));
    const std::string base = config.text("endpoint");
    const std::array<std::string_view, 3> own_keys = {"logs_endpoint", "traces_endpoint",
                                                      "metrics_endpoint"};
    std::vector<std::string> destinations;
    for (size_t i = 0; i < kSignals.size(); ++i) {
      if (!wanted[i]) continue;
      std::string url = config.text(own_keys[i]);
      std::string uri_key = std::string(own_keys[i]);
      if (url.empty() && !base.empty()) {
        url = signal_url(base, kSignals[i]);
        uri_key = "endpoint";
      }
      if (url.empty()) continue;
      net::ClientOptions options;
      options.uri = url;
      options.uri_key = uri_key;
      options.connect_timeout_ms = config.integer("connect_timeout_ms");
      options.request_timeout_ms = config.integer("timeout_ms");
      options.ca_file = config.text("ca_file");
      options.cert_file = config.text("cert_file");
      options.key_file = config.text("key_file");
      options.headers = headers;
      options.gzip = config.text("compression") == "gzip";
      options.content_type = json_ ? "application/json" : "application/x-protobuf";
      options.max_success_body = kMaxResponseBody;
      // OTLP/HTTP: only these are worth retrying, each with its Retry-After.
      options.retry_statuses = {429, 502, 503, 504};
      clients_[i] = std::make_unique<net::HttpClient>(host, std::move(options));
      destinations.push_back(std::string(signal_name(kSignals[i])) + " to " +
                             clients_[i]->destination());
    }
    if (destinations.empty()) {
      host.warn(
          "RELAY_OTLP_ENDPOINT is not set (nor a per-signal endpoint for an enabled "
          "signal): telemetry is discarded");
      return;
    }
    std::string warning;
    resource_ = otlp::build_resource(otlp::ResourceEnv::from_environment(), {}, resource_strings_,
                                     &warning);
    if (!warning.empty()) host.warn(warning);
    std::string line =
        "exporting OTLP/HTTP (" + protocol + ", " + config.text("compression") + "): ";
    for (size_t i = 0; i < destinations.size(); ++i) {
      line += (i ? ", " : "") + destinations[i];
    }
    host.info(line);
  }

  Status deliver(const relay::sdk::Batch& batch, relay::sdk::Deadline deadline) override {
    if (!exporting()) return discarded();
    note_account(batch.function_arn());
    // The host may try other deliveries between the retries of this one (a spooled one, the
    // halves of a split): each keeps its own requests until they are accepted.
    auto pending = std::find_if(pending_.begin(), pending_.end(), [&](const Pending& p) {
      return !batch.id().empty() && p.batch_id == batch.id();
    });
    if (pending == pending_.end()) {
      if (pending_.size() == kMaxPendingBatches) pending_.pop_front();  // given up by the host
      pending_.push_back(prepare(batch));
      pending = std::prev(pending_.end());
    }
    const Status status = send_pending(*pending, deadline, batch.size());
    if (status != Status::kRetry) {
      recycle(*pending);
      pending_.erase(pending);
    }
    return status;
  }

  // Held log records (waiting for their invocation's platform.start) go out now, untraced.
  Status flush(relay::sdk::Deadline deadline) override {
    Status status = Status::kOk;
    if (exporting() && mapping_.held() > 0) {
      output_.clear();
      mapping_.release_held(output_);
      const size_t records = output_.logs.size();
      Pending held = encode_pending("");
      status = send_pending(held, deadline, records);
      recycle(held);
    }
    report_counters();  // after the held records: they are counted too
    return status == Status::kOk ? status
                                 : fail(status, "held log records not exported: " + last_error_);
  }

 private:
  // One delivery's requests, encoded once: kept until each is accepted or refused for good.
  struct Pending {
    std::string batch_id;
    std::array<std::string, 3> bodies;  // per signal, encoded
    std::array<bool, 3> unsent{};       // per signal: bodies[i] waits to be sent
    std::array<size_t, 3> items{};
    std::array<bool, 3> accepted{};
    uint64_t rejected_logs = 0;  // refused or partially rejected, over every attempt
  };
  // Deliveries with a request still to send. The host retries one delivery at a time, but may
  // deliver others (spooled ones, split halves) in between; beyond this many it has given up on
  // the oldest.
  static constexpr size_t kMaxPendingBatches = 8;

  bool exporting() const { return clients_[0] || clients_[1] || clients_[2]; }

  void recycle(Pending& pending) {
    for (size_t i = 0; i < pending.bodies.size(); ++i) {
      // An unusually large batch's body is not worth keeping.
      if (pending.bodies[i].capacity() <= kMaxKeptBody) {
        spare_bodies_[i] = std::move(pending.bodies[i]);
      }
    }
  }

  static otlp::MappingOptions mapping_options(const relay::sdk::Config& config) {
    otlp::MappingOptions options;
    options.function_name = otlp::environment_variable("AWS_LAMBDA_FUNCTION_NAME");
    options.platform_logs = config.boolean("platform_logs");
    options.managed_instances =
        otlp::environment_variable("AWS_LAMBDA_INITIALIZATION_TYPE") == "lambda-managed-instances";
    return options;
  }

  static std::array<bool, 3> parse_signals(std::string_view text) {
    std::array<bool, 3> wanted{};
    for (const std::string& name : Poco::StringTokenizer(
             std::string(text), ",",
             Poco::StringTokenizer::TOK_TRIM | Poco::StringTokenizer::TOK_IGNORE_EMPTY)) {
      bool known = false;
      for (size_t i = 0; i < kSignals.size(); ++i) {
        if (name == signal_name(kSignals[i])) wanted[i] = known = true;
      }
      if (!known) {
        throw std::invalid_argument("RELAY_OTLP_SIGNALS: unknown signal '" + name +
                                    "' (expected a subset of logs,traces,metrics)");
      }
    }
    return wanted;
  }

  static std::vector<net::Header> parse_headers(std::string_view text) {
    // Validated like the http sink's header_* keys (names, reserved names, control characters),
    // never naming a value.
    std::vector<std::pair<std::string, std::string>> keys;
    for (auto& [name, value] : otlp::parse_otel_list(text, "RELAY_OTLP_HEADERS")) {
      keys.emplace_back("header_" + name, std::move(value));
    }
    std::vector<relay_kv> kvs;
    for (const auto& [k, v] : keys) kvs.push_back({{k.data(), k.size()}, {v.data(), v.size()}});
    try {
      return net::headers_from_config(relay::sdk::Config(kvs.data(), kvs.size()), "header_");
    } catch (const std::invalid_argument& error) {
      throw std::invalid_argument(std::string("RELAY_OTLP_HEADERS: ") + error.what());
    }
  }

  void note_account(std::string_view function_arn) {
    if (account_known_ || function_arn.empty()) return;
    const std::string_view account = otlp::account_id_from_arn(function_arn);
    if (account.empty()) return;
    account_known_ = true;
    resource_strings_.clear();
    resource_ = otlp::build_resource(otlp::ResourceEnv::from_environment(), account,
                                     resource_strings_, nullptr);
  }

  Pending prepare(const relay::sdk::Batch& batch) {
    events_.clear();
    events_.reserve(batch.size());
    for (relay::sdk::Event event : batch) {
      events_.push_back({event.type(), event.time(), event.record()});
    }
    output_.clear();
    mapping_.map(events_, now_unix_nano(), output_);
    note_mapping_counters();
    return encode_pending(batch.id());
  }

  Pending encode_pending(std::string_view batch_id) {
    Pending pending;
    pending.batch_id = std::string(batch_id);
    pending.bodies = std::move(spare_bodies_);
    size_t points = 0;
    for (const otlp::Metric& metric : output_.metrics) {
      points += metric.number_points.size() + metric.histogram_points.size();
    }
    encode_signal(pending, otlp::Signal::kLogs, output_.logs, &otlp::LogsRequest::records,
                  output_.logs.size());
    encode_signal(pending, otlp::Signal::kTraces, output_.spans, &otlp::TracesRequest::spans,
                  output_.spans.size());
    encode_signal(pending, otlp::Signal::kMetrics, output_.metrics, &otlp::MetricsRequest::metrics,
                  points);
    output_.clear();
    return pending;
  }

  // Encodes one signal's items into pending when that signal is exported and has any. The items
  // go into the request and come back: their capacity, and the body's, serve the next batch
  // (fresh memory per batch costs page faults).
  template <class Request, class Item>
  void encode_signal(Pending& pending, otlp::Signal signal, std::vector<Item>& items,
                     std::vector<Item> Request::*member, size_t count) {
    const auto i = static_cast<size_t>(signal);
    if (!clients_[i] || items.empty()) return;
    Request request{&resource_, {kScopeName, RELAY_SINK_VERSION}, {}};
    request.*member = std::move(items);
    json_ ? otlp::encode_json(request, pending.bodies[i])
          : otlp::encode_protobuf(request, pending.bodies[i]);
    items = std::move(request.*member);
    pending.items[i] = count;
    pending.unsent[i] = true;
  }

  // Sends what is left of the pending batch, signal by signal. A transient failure stops and
  // keeps the rest for the host's retry; a permanent one is counted and the others go on.
  Status send_pending(Pending& pending, relay::sdk::Deadline deadline, size_t events) {
    for (size_t i = 0; i < kSignals.size(); ++i) {
      if (!pending.unsent[i]) continue;
      net::Attempt attempt = clients_[i]->post(pending.bodies[i], pending.batch_id, deadline);
      if (attempt.status == Status::kRetry || attempt.status == Status::kFatal) {
        last_error_ = std::string(signal_name(kSignals[i])) + ": " + attempt.error;
        attempt.error = last_error_;
        return report(std::move(attempt));
      }
      const size_t items = pending.items[i];
      pending.unsent[i] = false;
      if (attempt.status == Status::kDrop) {
        const bool any_accepted = pending.accepted[0] || pending.accepted[1] || pending.accepted[2];
        if (attempt.too_large && kSignals[i] == otlp::Signal::kLogs && !any_accepted) {
          return too_large(std::string(signal_name(kSignals[i])) + ": " + attempt.error);
        }
        if (attempt.http_status == 415) {
          attempt.error += json_ ? " (the endpoint refuses OTLP/JSON: try http/protobuf)"
                                 : " (the endpoint refuses OTLP protobuf: try http/json)";
        }
        // Counted here, logged once per status: the receiver will answer the same to the next
        // batch, and a line per batch would flood the function's logs.
        dropped_[i] += items;
        note_once("drop " + std::to_string(attempt.http_status),
                  std::string(signal_name(kSignals[i])) + ": " + attempt.error + " (" +
                      std::to_string(items) + " " + std::string(item_name(kSignals[i])) +
                      " dropped)");
        if (kSignals[i] == otlp::Signal::kLogs) pending.rejected_logs += items;
        continue;
      }
      pending.accepted[i] = true;
      pending.rejected_logs += judge_success(kSignals[i], attempt);
    }
    if (pending.rejected_logs > 0) {
      return partially_rejected(std::min<uint64_t>(pending.rejected_logs, events));
    }
    return Status::kOk;
  }

  // A 200's partial_success: the rejected items are dropped; log records count as events.
  uint64_t judge_success(otlp::Signal signal, const net::Attempt& attempt) {
    std::string error;
    // The answer's encoding is the request's (OTLP/HTTP), unless its Content-Type says otherwise.
    const std::string& type = attempt.content_type;
    const bool json = type.find("json") != std::string::npos ||
                      (json_ && type.find("protobuf") == std::string::npos);
    const std::optional<otlp::PartialSuccess> partial =
        otlp::parse_export_response(signal, json, attempt.body, error);
    const size_t index = static_cast<size_t>(signal);
    if (!partial) {
      note_once("not otlp", std::string(signal_name(signal)) + ": HTTP " +
                                std::to_string(attempt.http_status) +
                                " with a body that is not an OTLP response (" + error +
                                "); counted as delivered");
      return 0;
    }
    if (partial->rejected <= 0 && partial->error_message.empty()) return 0;
    rejected_[index] += static_cast<uint64_t>(std::max<int64_t>(partial->rejected, 0));
    note_once("partial",
              std::string(signal_name(signal)) + ": the receiver rejected " +
                  std::to_string(partial->rejected) + " " + std::string(item_name(signal)) +
                  (partial->error_message.empty() ? std::string() : ": " + partial->error_message));
    return signal == otlp::Signal::kLogs ? static_cast<uint64_t>(partial->rejected) : 0;
  }

  // One warning per kind of trouble; the counts come at shutdown (report_counters).
  void note_once(const std::string& kind, const std::string& message) {
    if (!noted_.insert(kind).second) return;
    host_.warn(message + " (further ones are counted, not logged)");
  }

  void note_mapping_counters() {
    const otlp::MappingCounters& c = mapping_.counters();
    if (c.invalid_utf8 > 0) note_once("utf8", "a log line held invalid UTF-8: replaced by U+FFFD");
    if (c.unparsed_records > 0) {
      note_once("unparsed",
                "a record was neither Lambda's text format nor a JSON object: kept whole");
    }
    if (c.unknown_types_skipped > 0) note_once("unknown", "skipped an event of an unknown type");
    if (c.bad_tracing > 0) {
      note_once("tracing", "an invocation had a missing or malformed X-Ray tracing");
    }
  }

  void report_counters() {
    const otlp::MappingCounters& c = mapping_.counters();
    std::string line;
    const auto add = [&](uint64_t n, std::string_view what) {
      if (n > 0) line += (line.empty() ? "" : ", ") + std::to_string(n) + " " + std::string(what);
    };
    add(c.invalid_utf8, "log lines with invalid UTF-8 replaced");
    add(c.unparsed_records, "records kept whole");
    add(c.unknown_types_skipped, "events of unknown types skipped");
    add(c.bad_tracing, "malformed or missing tracing values");
    add(c.unsampled, "unsampled invocations without spans");
    add(c.held_released_untraced, "log records sent without trace context");
    add(rejected_[0], "log records rejected by the receiver");
    add(rejected_[1], "spans rejected by the receiver");
    add(rejected_[2], "data points rejected by the receiver");
    add(dropped_[0], "log records dropped on a refused request");
    add(dropped_[1], "spans dropped on a refused request");
    add(dropped_[2], "data points dropped on a refused request");
    if (!line.empty()) host_.info("otlp: " + line);
  }

  relay::sdk::Host host_;
  bool json_ = false;
  std::array<std::unique_ptr<net::HttpClient>, 3> clients_;  // per signal; null: not exported
  otlp::StringStore resource_strings_;
  otlp::Resource resource_;
  bool account_known_ = false;
  otlp::LambdaMapping mapping_;
  std::vector<otlp::LambdaEvent> events_;
  otlp::MappingOutput output_;
  std::deque<Pending> pending_;
  // Bodies of finished deliveries, kept for their capacity: fresh memory per batch costs page
  // faults.
  std::array<std::string, 3> spare_bodies_;
  std::array<uint64_t, 3> rejected_{};  // by partial_success, per signal
  std::array<uint64_t, 3> dropped_{};   // in requests answered with a permanent failure
  std::set<std::string> noted_;         // the kinds of trouble already logged
  std::string last_error_;
};

}  // namespace

RELAY_SINK_PLUGIN(OtlpSink, RELAY_SINK_NAME, RELAY_SINK_VERSION);
