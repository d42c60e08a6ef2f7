// Example network sink: POSTs each batch as NDJSON (one event per line, as Lambda sent it) to
// the URI in config key "endpoint", on the SDK's network toolkit. Build it with
// relay_add_sink(... NETWORK); see CMakeLists.txt beside it.
#include <stdexcept>
#include <string>
#include <telemetry_relay/net/client.hpp>
#include <telemetry_relay/sink.hpp>

namespace {

namespace key = relay::sdk::key;
namespace net = relay::sdk::net;

class WebhookSink final : public net::NetworkSink {
 public:
  // The toolkit's conventional keys (ClientOptions::from_config reads them), and the endpoint,
  // secret like the headers: a webhook URL usually carries its token.
  static constexpr relay_config_key kConfigKeys[] = {
      key::uri("endpoint", "", "https|http", "Where batches go (required)", RELAY_KEY_SECRET),
      key::integer("connect_timeout_ms", "1000", 1, 60000, "Connect timeout"),
      key::integer("request_timeout_ms", "5000", 1, 300000, "Request timeout"),
      key::string("ca_file", "", "PEM CA bundle for https; unset: the system's"),
      key::boolean("gzip", "true", "Compress the body (Content-Encoding: gzip)"),
      key::prefix("header_", "Extra header, e.g. header_authorization", RELAY_KEY_SECRET),
  };

  WebhookSink(const relay::sdk::Host& host, const relay::sdk::Config& config)
      : client_(host, options(config)) {
    host.info("posting to " + client_.destination());  // scheme, host and port only
  }

  relay::sdk::Status deliver(const relay::sdk::Batch& batch,
                             relay::sdk::Deadline deadline) override {
    std::string body;
    for (const relay_event& event : batch.events()) {
      body.append(relay::sdk::Event(event).json()).push_back('\n');
    }
    return report(client_.post(body, batch.id(), deadline));  // OK, RETRY (+Retry-After), DROP
  }

 private:
  static net::ClientOptions options(const relay::sdk::Config& config) {
    if (config.text("endpoint").empty()) throw std::invalid_argument("endpoint: required");
    net::ClientOptions options = net::ClientOptions::from_config(config, "endpoint");
    options.content_type = "application/x-ndjson";
    return options;
  }

  net::HttpClient client_;
};

}  // namespace

RELAY_SINK_PLUGIN(WebhookSink, RELAY_SINK_NAME, RELAY_SINK_VERSION);
