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
  int status = 0;      // what the receiver answered; kHung or kReset when it did not
  std::chrono::steady_clock::time_point at;

  std::string header(std::string_view name) const;  // case-insensitive; empty if absent

  static constexpr int kHung = -1;   // held without an answer (Fault::hang)
  static constexpr int kReset = -2;  // connection reset after part of the body (Fault::reset)
};

// What the receiver does with one request (fault injection for the collector's side).
struct Fault {
  enum class Kind { kAnswer, kHang, kReset };
  Kind kind = Kind::kAnswer;
  int status = 200;
  std::string retry_after;  // kAnswer: sent as the Retry-After header when non-empty

  static Fault answer(int status, std::string retry_after = {}) {
    return Fault{Kind::kAnswer, status, std::move(retry_after)};
  }
  // Reads the whole body, then never answers: the request is held until release_hangs() or
  // stop(), which close its connection without an answer.
  static Fault hang() { return Fault{Kind::kHang, 0, {}}; }
  // Reads about half of the body, then resets the connection (RST): a collector or proxy that
  // dies mid-request.
  static Fault reset() { return Fault{Kind::kReset, 0, {}}; }
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
  // Faults for the next requests, in order (shares the queue with push_statuses).
  void push_faults(const std::vector<Fault>& faults);
  // What every request gets once the queue is empty and no fail_for() is running.
  void set_default_fault(Fault fault);
  // Answers `status` to every request for `duration` from now (after the queue), then goes
  // back to the default: "500 for a while".
  void fail_for(int status, std::chrono::milliseconds duration);
  // Closes every held (hung) request's connection without an answer.
  void release_hangs();
  size_t hung_now() const;  // requests held right now
  bool wait_for_hung(size_t count, std::chrono::milliseconds timeout) const;
  void set_delay_ms(int delay_ms);  // before answering, to play a slow collector
  // Answers `status` to every body containing `needle` (a poison event), whatever the script
  // says; empty: off.
  void refuse_bodies_containing(std::string needle, int status);

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
  std::deque<Fault> script_;
  Fault default_fault_;
  std::chrono::steady_clock::time_point fail_until_{};
  int fail_status_ = 0;
  size_t hung_ = 0;
  uint64_t hang_generation_ = 0;  // bumped by release_hangs() and stop()
  bool stopping_ = false;
  int delay_ms_ = 0;
  std::string refused_needle_;
  int refused_status_ = 500;
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
