// The default sink: POSTs each batch's JSON array to post_uri (DISPATCH_POST_URI), on the SDK's
// network toolkit (telemetry_relay/net/client.hpp), which does the HTTP(S), the timeouts and the
// wall-clock deadline, keep-alive, TLS, and the judging of the answer (design section 6).
//
// Outcomes: 2xx OK; 408, 429, 5xx, 101 and transport errors RETRY (429 and 503 with their
// Retry-After); 413 DROP as too large (the host retries in halves); other statuses, 3xx included
// (redirects are not followed), DROP. Every request carries the delivery's stable id in
// X-Telemetry-Relay-Batch-Id, so a receiver can deduplicate a retry. Without post_uri every batch
// is discarded (and counted so by the host).
#include <optional>
#include <telemetry_relay/net/client.hpp>
#include <telemetry_relay/sink.hpp>

namespace {

namespace key = relay::sdk::key;
namespace net = relay::sdk::net;

class HttpSink final : public net::NetworkSink {
 public:
  // post_uri is secret: user info, path and query may all carry credentials (webhook tokens).
  static constexpr relay_config_key kConfigKeys[] = {
      key::uri("post_uri", "", "http|https",
               "Where each batch is POSTed (also DISPATCH_POST_URI); unset: discard",
               RELAY_KEY_SECRET),
      key::integer("connect_timeout_ms", "1000", 1, 60000, "Connect timeout"),
      key::integer("request_timeout_ms", "5000", 1, 300000,
                   "Timeout of a request once connected (the delivery's deadline bounds it too)"),
      key::string("ca_file", "",
                  "PEM CA bundle for https; unset: SSL_CERT_FILE, else the system's bundle"),
      key::boolean("gzip", "false", "Compress the body (Content-Encoding: gzip)"),
      key::prefix("header_", "Extra header: header_x_api_key=v sends x-api-key: v",
                  RELAY_KEY_SECRET),
  };

  HttpSink(const relay::sdk::Host& host, const relay::sdk::Config& config) {
    if (config.text("post_uri").empty()) {
      host.warn("DISPATCH_POST_URI is not set: telemetry is discarded");
      return;
    }
    client_.emplace(host, net::ClientOptions::from_config(config, "post_uri"));
    host.info("posting telemetry to " + client_->destination());
  }

  relay::sdk::Status deliver(const relay::sdk::Batch& batch,
                             relay::sdk::Deadline deadline) override {
    if (!client_) return discarded();
    return report(client_->post(batch.json(), batch.id(), deadline));
  }

 private:
  std::optional<net::HttpClient> client_;  // empty when discarding
};

}  // namespace

RELAY_SINK_PLUGIN(HttpSink, RELAY_SINK_NAME, RELAY_SINK_VERSION);
