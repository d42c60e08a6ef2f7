#pragma once

// A scriptable HTTP(S) endpoint standing in for a sink's collector (e.g. DISPATCH_POST_URI):
// records every request, answers from a queue of statuses, and splits JSON-array bodies into
// the exact text of each event. Also the helpers to compare what arrived with what was sent.

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

struct ReceivedRequest {
  std::string method;
  std::string uri;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string client;  // peer address: a new port means a new connection
  int status = 0;      // what the receiver answered
  std::chrono::steady_clock::time_point at;

  std::string header(std::string_view name) const;  // case-insensitive; empty if absent
};

class Receiver {
 public:
  struct Options {
    uint16_t port = 0;  // 0: ephemeral
    // Both set: HTTPS with this certificate chain and key (PEM).
    std::string cert_path;
    std::string key_path;
    int default_status = 200;
    // Closes a keep-alive connection idle this long (0: POCO's default, 10 s), e.g. to leave
    // a client's pooled connection dead across a freeze.
    int keep_alive_timeout_ms = 0;
  };

  Receiver();
  explicit Receiver(Options options);
  ~Receiver();
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  // Binds 127.0.0.1:<port> and serves; throws Poco::Exception if the port is taken. May be
  // called after stop() to come back on the same port.
  void start();
  void stop();
  bool running() const;
  uint16_t port() const;
  std::string url() const;  // http(s)://127.0.0.1:<port>

  // Statuses for the next requests, in order; then the default status.
  void push_statuses(const std::vector<int>& statuses);
  void set_default_status(int status);
  void set_delay_ms(int delay_ms);  // before answering, to play a slow collector

  std::vector<ReceivedRequest> requests() const;
  size_t request_count() const;
  // Events of requests answered 2xx (accepted_only) or of every request.
  std::vector<std::string> event_texts(bool accepted_only = true) const;
  size_t event_count(bool accepted_only = true) const;
  size_t unparsed_bodies() const;  // bodies that were not a JSON array of objects

  bool wait_for_requests(size_t count, std::chrono::milliseconds timeout) const;
  bool wait_for_events(size_t count, std::chrono::milliseconds timeout) const;

  // A port free right now (bound and released), for "collector down at first" tests.
  static uint16_t free_port();

 private:
  void handle(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response);

  Options options_;
  std::unique_ptr<Poco::ThreadPool> pool_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  uint16_t port_ = 0;
  std::deque<int> script_;
  int default_status_ = 200;
  int delay_ms_ = 0;
  std::vector<ReceivedRequest> requests_;
  std::vector<std::string> accepted_events_;
  std::vector<std::string> all_events_;
  size_t unparsed_ = 0;
};

// The exact text of each element of a JSON array of objects; nullopt if `body` is not one.
std::optional<std::vector<std::string>> split_event_array(std::string_view body);

struct DeliveryCheck {
  size_t expected = 0;
  size_t received = 0;
  size_t missing = 0;     // expected, never received
  size_t duplicates = 0;  // received more often than expected
  size_t unexpected = 0;  // received, never expected
  bool exact() const { return missing == 0 && duplicates == 0 && unexpected == 0; }
};

// Compares as multisets of exact texts (order across batches is not guaranteed).
DeliveryCheck check_delivery(const std::vector<std::string>& expected,
                             const std::vector<std::string>& received);

}  // namespace relay::emu
