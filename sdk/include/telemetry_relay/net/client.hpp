// telemetry_relay/net/client.hpp: the network toolkit's HTTP(S) client for one destination, and
// what a network sink builds on it. Link it with relay_add_sink(... NETWORK); see the SDK README.
//
//   class MySink final : public relay::sdk::net::NetworkSink {
//    public:
//     static constexpr relay_config_key kConfigKeys[] = {...};  // endpoint, the timeouts, ...
//     MySink(const relay::sdk::Host& host, const relay::sdk::Config& config)
//         : client_(host, relay::sdk::net::ClientOptions::from_config(config, "endpoint")) {}
//     relay::sdk::Status deliver(const relay::sdk::Batch& batch, relay::sdk::Deadline d) override {
//       return report(client_.post(batch.json(), batch.id(), d));
//     }
//    private:
//     relay::sdk::net::HttpClient client_;
//   };
//
// The client keeps one connection alive between requests, bounds each request by its connect
// and request timeouts and by a wall-clock deadline that holds across a Lambda freeze, speaks
// TLS 1.2+ with verification always on (never a proxy, never a redirect), and sends one body in
// one call. OpenSSL is loaded only for an https:// destination (relay_add_sink's NETWORK builds
// the plugin twice; see sdk/src/net/tls_loader.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <telemetry_relay/net/response.hpp>
#include <telemetry_relay/sink.hpp>
#include <vector>

namespace relay::sdk::net {

struct Header {
  std::string name;   // lower case
  std::string value;  // may be a secret: never logged
};

// Headers the client sets itself: configuring them would break the request's framing.
inline constexpr std::string_view kReservedHeaders[] = {
    "content-type",      "content-length", "content-encoding",          "host",
    "transfer-encoding", "connection",     "x-telemetry-relay-batch-id"};

// Every `<prefix><name>` key as header <name> (underscores become '-', lower case), e.g.
// header_x_api_key=v as "x-api-key: v". Throws std::invalid_argument naming the key, never the
// value, for an invalid or reserved name and for a value with a control character. Declare the
// prefix RELAY_KEY_SECRET in kConfigKeys: values are often credentials.
std::vector<Header> headers_from_config(const Config& config, std::string_view prefix = "header_");

// The body gzip-compressed (RFC 1952), for Content-Encoding: gzip.
std::string gzip(std::string_view body);

struct ClientOptions {
  std::string uri;              // http:// or https://; user info becomes Basic credentials
  std::string uri_key = "uri";  // the configuration key it came from, for error messages
  int64_t connect_timeout_ms = 1000;
  int64_t request_timeout_ms = 5000;
  std::string ca_file;  // https: PEM bundle to trust; empty: SSL_CERT_FILE, else the system's
  // https, mutual TLS: the client's PEM certificate chain (its own first) and its unencrypted
  // PEM private key. Both or neither; never for http.
  std::string cert_file;
  std::string key_file;
  std::vector<Header> headers;
  bool gzip = false;  // compress the body (Content-Encoding: gzip)
  std::string content_type = "application/json";
  // The 4xx/5xx statuses retried (each with its Retry-After), every other one dropped; empty:
  // the default rule (response.hpp). 413 is always "too large" and cannot be listed.
  std::vector<int> retry_statuses;
  // Bytes of a 2xx answer's body kept in Attempt::body (at most kMaxSuccessBody); 0: none.
  size_t max_success_body = 0;

  // The conventional keys, read with Config::text/integer/boolean (declare them in kConfigKeys
  // with these names): <uri_key>, connect_timeout_ms, request_timeout_ms, ca_file, cert_file,
  // key_file, gzip and the header_ prefix; a key not declared keeps the default above. Throws
  // std::invalid_argument for a bad header (see headers_from_config).
  static ClientOptions from_config(const Config& config, std::string_view uri_key);
};

class HttpClient {
 public:
  // Checks the destination; throws std::invalid_argument naming uri_key with the URI's scheme,
  // host and port only (never user info, path or query), a ca_file that does not exist, a
  // cert_file or key_file that cannot be read (the key's bytes are never quoted), one of them
  // without the other or either for http, a retry status outside 400-599 (or 413), or a
  // max_success_body over kMaxSuccessBody. Sets up no connection and no TLS: the first post()
  // does, on the delivery thread.
  HttpClient(const Host& host, ClientOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // POSTs body (gzipped when configured) with id in X-Telemetry-Relay-Batch-Id when it is a
  // header-safe token, and judges the answer (see response.hpp). Returns by the deadline: a
  // request still running then has its socket shut down. A kept-alive connection found dead is
  // replaced once, transparently. An https destination whose CA bundle, client certificate or
  // key cannot be loaded answers FATAL.
  Attempt post(std::string_view body, std::string_view id, Deadline deadline);

  // "scheme://host:port": what a log line may say about the destination.
  std::string destination() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A sink whose deliveries are requests: report() hands an Attempt to the host as status, error
// text and feedback (Retry-After hint, too large).
class NetworkSink : public Sink {
 protected:
  Status report(Attempt attempt);
};

}  // namespace relay::sdk::net
