// The default sink: POSTs each batch's JSON array to DISPATCH_POST_URI (config key post_uri),
// with the seed's semantics plus status handling, timeouts and keep-alive (design section 6).
//
// Keys (env RELAY_HTTP_<KEY>): post_uri, connect_timeout_ms, request_timeout_ms, ca_file,
// header_<name>. Outcomes: 2xx OK; 408, 429, 5xx, 101 and transport errors RETRY (429 and 503
// with their Retry-After); 413 DROP as too large (the host retries in halves); other statuses,
// 3xx included (redirects are not followed), DROP. Interim 1xx answers are skipped. Every request
// carries the delivery's stable id in X-Telemetry-Relay-Batch-Id, so a receiver can deduplicate a
// retry. Without post_uri every batch is discarded (and counted so by the host).
#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPBasicCredentials.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/RejectCertificateHandler.h>
#include <Poco/Net/SSLException.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Timespan.h>
#include <Poco/URI.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <istream>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <telemetry_relay/sink.hpp>
#include <thread>
#include <utility>
#include <vector>

#include "http_response.h"
#include "http_support.h"

namespace {

using relay::sdk::Status;
using Clock = std::chrono::steady_clock;

using relay::http::Attempt;

constexpr const char* kBatchIdHeader = "X-Telemetry-Relay-Batch-Id";
// Up to this size the body shares the request stream's buffer (and first send) with the headers.
constexpr size_t kBufferedBodyBytes = 2048;
constexpr size_t kMaxSendBytes = 1u << 30;

// Headers the sink owns: letting configuration set them would break the request's framing.
constexpr std::string_view kReservedHeaders[] = {
    "content-type", "content-length",    "host",
    "connection",   "transfer-encoding", "x-telemetry-relay-batch-id"};

// The host's ids are hex; anything else that could break the header line is not sent.
bool header_safe(std::string_view value) {
  return !value.empty() && value.size() <= 128 &&
         std::all_of(value.begin(), value.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

// Keeps OpenSSL initialised for as long as a sink may use it (reference-counted by POCO).
struct SslLibrary {
  SslLibrary() { Poco::Net::initializeSSL(); }
  ~SslLibrary() { Poco::Net::uninitializeSSL(); }
  SslLibrary(const SslLibrary&) = delete;
  SslLibrary& operator=(const SslLibrary&) = delete;
};

// Bounds a request by the wall clock. POCO's socket timeouts start again after every
// SIGSTOP/SIGCONT or cgroup freeze (a blocking recv with SO_RCVTIMEO fails with EINTR and POCO
// retries it with the full timeout), so a hung request would outlive any number of Lambda
// freezes. When the deadline passes while armed, the watchdog shuts the socket down, which ends
// the blocked call; the outlet then retries the delivery under the same batch id.
class Watchdog {
 public:
  Watchdog() : thread_([this] { run(); }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void arm(int fd, Clock::time_point deadline) {
    std::lock_guard lock(mutex_);
    fd_ = fd;
    deadline_ = deadline;
    armed_ = fd >= 0;
    fired_ = false;
    ++generation_;
    changed_.notify_all();
  }
  // Returns true when it fired since arm().
  bool disarm() {
    std::lock_guard lock(mutex_);
    armed_ = false;
    ++generation_;  // no wake-up: the thread finds this out at the old deadline
    return fired_;
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    while (!stop_) {
      if (!armed_) {
        changed_.wait(lock);
        continue;
      }
      const uint64_t generation = generation_;
      const Clock::time_point deadline = deadline_;
      changed_.wait_until(lock, deadline, [&] { return stop_ || generation_ != generation; });
      if (!stop_ && generation_ == generation && Clock::now() >= deadline) {
        // The raw fd, not POCO's (TLS) socket: shutdown(2) is safe against a concurrent read.
        ::shutdown(fd_, SHUT_RDWR);
        fired_ = true;
        armed_ = false;
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  int fd_ = -1;
  Clock::time_point deadline_{};
  bool armed_ = false;
  bool fired_ = false;
  bool stop_ = false;
  uint64_t generation_ = 0;
  std::thread thread_;  // last: starts once the members above exist
};

class HttpSink final : public relay::sdk::Sink {
 public:
  HttpSink(const relay::sdk::Host& host, const relay::sdk::Config& config) : host_(host) {
    std::string uri(config.get_or("post_uri", ""));
    if (uri.empty()) {
      host_.warn("DISPATCH_POST_URI is not set: telemetry is discarded");
      return;
    }
    parse_uri(uri);
    connect_timeout_ms_ = config.get_int("connect_timeout_ms", 1000, 1, 60000);
    request_timeout_ms_ = config.get_int("request_timeout_ms", 5000, 1, 300000);
    parse_headers(config);
    if (uri_.getScheme() == "https") {
      choose_trust(config);
    }
    host_.info("posting telemetry to " + printable_uri());
  }

  Status deliver(const relay::sdk::Batch& batch, relay::sdk::Deadline deadline) override {
    if (discarding()) {
      return discarded();
    }
    // Set up on the first delivery, on the delivery thread: none of this is needed to start.
    if (tls_wanted_ && !context_) {
      if (deadline.expired()) {
        return fail(Status::kRetry, "deadline passed before the TLS context was set up");
      }
      if (std::string error = make_tls_context(); !error.empty()) {
        return fail(Status::kFatal, std::move(error));
      }
    }
    if (!watchdog_) {
      watchdog_ = std::make_unique<Watchdog>();
    }
    auto started = Clock::now();
    bool reused = reusable_;
    Attempt attempt = post(batch.json(), batch.id(), deadline);
    if (attempt.lost_connection && reused) {
      // Most likely the idle connection died while Lambda froze us: one fresh try.
      host_.debug("connection reused from an earlier delivery failed (" + attempt.error +
                  "); reconnecting");
      attempt = post(batch.json(), batch.id(), deadline);
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
    host_.debug("POST " + std::to_string(batch.size()) + " events, " +
                std::to_string(batch.json().size()) + " bytes: " +
                (attempt.status == Status::kOk ? "HTTP " + std::to_string(attempt.http_status)
                                               : attempt.error) +
                " in " + std::to_string(ms.count()) + " ms");
    if (attempt.status == Status::kOk) {
      return Status::kOk;
    }
    if (attempt.too_large) {
      return too_large(std::move(attempt.error));
    }
    if (attempt.status == Status::kRetry && attempt.retry_after_ms > 0) {
      return retry_after(std::chrono::milliseconds(attempt.retry_after_ms),
                         std::move(attempt.error));
    }
    return fail(attempt.status, std::move(attempt.error));
  }

 private:
  bool discarding() const { return uri_.empty(); }

  // Errors name the URI by scheme, host and port only, and never quote POCO's reason, which
  // may repeat a piece of the user info (a password with a '/' reads as a bad port).
  void parse_uri(const std::string& value) {
    const auto invalid = [&](const std::string& why) {
      const std::optional<std::string> shown = relay::http::redacted_uri(value);
      return std::invalid_argument(
          "post_uri=" + (shown ? *shown : relay::http::redacted_authority(value)) +
          " (the rest is not shown): " + why);
    };
    try {
      uri_ = Poco::URI(value);
    } catch (const Poco::Exception&) {
      throw invalid("not a valid URI");
    }
    if (uri_.getScheme() != "http" && uri_.getScheme() != "https") {
      throw invalid("the scheme must be http or https");
    }
    if (uri_.getHost().empty()) {
      throw invalid("no host");
    }
    path_ = uri_.getPathAndQuery();
    if (path_.empty()) {
      path_ += '/';  // not `path_ = "/"`: GCC 12 -O3 flags that with a false -Wrestrict
    }
    std::string userinfo = uri_.getUserInfo();
    if (!userinfo.empty()) {
      auto colon = userinfo.find(':');
      basic_auth_.emplace(userinfo.substr(0, colon),
                          colon == std::string::npos ? "" : userinfo.substr(colon + 1));
    }
  }

  // header_x_api_key=v -> "x-api-key: v". Values may be secrets: never logged or echoed.
  void parse_headers(const relay::sdk::Config& config) {
    for (const auto& [key, value] : config.with_prefix("header_")) {
      std::string name(key.substr(std::string_view("header_").size()));
      std::replace(name.begin(), name.end(), '_', '-');
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      bool valid_name = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-';
      });
      if (!valid_name) {
        throw std::invalid_argument(relay::http::printable(key, 128) +
                                    ": not a valid header name (letters, digits, _ or -)");
      }
      if (std::find(std::begin(kReservedHeaders), std::end(kReservedHeaders), name) !=
          std::end(kReservedHeaders)) {
        throw std::invalid_argument(std::string(key) + ": header '" + name +
                                    "' is set by the sink and cannot be configured");
      }
      // Any control character, not just CR/LF/NUL: a tab or ESC is never part of a key, and
      // receivers and proxies disagree on how to read one.
      if (std::any_of(value.begin(), value.end(), [](char c) {
            const auto u = static_cast<unsigned char>(c);
            return u < 0x20 || u == 0x7f;
          })) {
        throw std::invalid_argument(std::string(key) + ": the value of header '" + name +
                                    "' contains a control character (value not shown)");
      }
      if (name == "authorization") {
        basic_auth_.reset();  // an explicit header beats credentials in the URI
      }
      headers_.emplace_back(std::move(name), std::string(value));
    }
    if (!headers_.empty()) {
      std::string names;
      for (const auto& header : headers_) {
        names += (names.empty() ? "" : ", ") + header.first;
      }
      host_.debug("extra headers: " + names);
    }
  }

  // Which CA certificates an https destination is checked against: decided here, where a
  // missing ca_file is a configuration error, but read only by make_tls_context().
  void choose_trust(const relay::sdk::Config& config) {
    std::optional<std::string_view> configured = config.get("ca_file");
    std::string ca_file;
    bool system_store = false;
    if (configured && !configured->empty()) {
      ca_file = *configured;
      if (!std::filesystem::is_regular_file(ca_file)) {
        throw std::invalid_argument("ca_file=" + ca_file + ": no such file");
      }
    } else {
      const relay::http::CaBundleChoice choice = relay::http::choose_ca_bundle(
          std::getenv("SSL_CERT_FILE"), relay::http::kCaBundleCandidates);
      switch (choice.source) {
        case relay::http::CaBundleChoice::Source::kDiscovered:
          ca_file = choice.file;
          host_.debug("ca_file not set: trusting " + ca_file);
          break;
        case relay::http::CaBundleChoice::Source::kEnvironment:
          system_store = true;  // OpenSSL's defaults read SSL_CERT_FILE
          host_.debug("ca_file not set: trusting SSL_CERT_FILE=" + choice.file);
          break;
        case relay::http::CaBundleChoice::Source::kOpenSslDefaults: {
          system_store = true;
          std::string tried;
          for (std::string_view candidate : relay::http::kCaBundleCandidates) {
            tried += (tried.empty() ? "" : ", ") + std::string(candidate);
          }
          host_.warn("no CA bundle found (tried " + tried +
                     ") and neither ca_file nor SSL_CERT_FILE is set: using OpenSSL's default "
                     "trust store, which may be empty; set RELAY_HTTP_CA_FILE if TLS "
                     "handshakes fail");
          break;
        }
      }
    }
    tls_wanted_ = true;
    ca_file_ = ca_file;
    system_store_ = system_store;
  }

  // Initialises OpenSSL and reads the CA certificates (a system bundle holds ~140 of them: tens
  // of milliseconds that would otherwise delay the function's init). Returns the error, if any.
  std::string make_tls_context() {
    const auto started = Clock::now();
    try {
      ssl_.emplace();
      // STRICT, not RELAXED: POCO skips the host name check for localhost unless strict.
      Poco::Net::Context::Ptr context =
          new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, ca_file_,
                                 Poco::Net::Context::VERIFY_STRICT, 9, system_store_);
      context->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
      context->enableExtendedCertificateVerification(true);
      context->setInvalidCertificateHandler(new Poco::Net::RejectCertificateHandler(false));
      context_ = context;
    } catch (const Poco::Exception& e) {
      return "ca_file=" + (system_store_ ? std::string("(system store)") : ca_file_) +
             ": cannot load CA certificates (" + e.displayText() + ")";
    } catch (const std::exception& e) {
      return "cannot set up TLS: " + std::string(e.what());
    }
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    host_.debug("TLS context ready (" +
                (system_store_ ? std::string("system store") : "CA file " + ca_file_) + ") in " +
                std::to_string(ms) + " ms");
    return {};
  }

  // scheme://host:port only: user info, query and even the path (webhook URLs carry their
  // token there) may be credentials.
  std::string printable_uri() const { return uri_.getScheme() + "://" + printable_authority(); }
  std::string printable_authority() const {
    return relay::http::printable(uri_.getHost(), 253) + ":" + std::to_string(uri_.getPort());
  }

  Poco::Net::HTTPClientSession& session() {
    if (!session_) {
      if (context_) {
        session_ = std::make_unique<Poco::Net::HTTPSClientSession>(uri_.getHost(), uri_.getPort(),
                                                                   context_);
      } else {
        session_ = std::make_unique<Poco::Net::HTTPClientSession>(uri_.getHost(), uri_.getPort());
      }
      session_->setKeepAlive(true);
      reusable_ = false;
    }
    return *session_;
  }

  void reset_session() {
    session_.reset();
    reusable_ = false;
  }

  Attempt post(std::string_view body, std::string_view batch_id, relay::sdk::Deadline deadline) {
    Attempt attempt;
    int64_t left_ms = deadline.remaining().count();
    if (left_ms <= 0) {
      attempt.error = "deadline passed before the request was sent";
      return attempt;
    }
    int64_t request_ms = std::min(request_timeout_ms_, left_ms);
    const auto started = Clock::now();
    const int64_t wall_ms = std::min(left_ms, connect_timeout_ms_ + request_timeout_ms_);
    Poco::Net::HTTPClientSession& http = session();
    http.setTimeout(Poco::Timespan(std::min(connect_timeout_ms_, left_ms) * 1000),
                    Poco::Timespan(request_ms * 1000), Poco::Timespan(request_ms * 1000));

    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, path_,
                                   Poco::Net::HTTPMessage::HTTP_1_1);
    for (const auto& [name, value] : headers_) {
      request.set(name, value);
    }
    if (basic_auth_) {
      Poco::Net::HTTPBasicCredentials(basic_auth_->first, basic_auth_->second)
          .authenticate(request);
    }
    if (header_safe(batch_id)) {
      request.set(kBatchIdHeader, std::string(batch_id));
    }
    request.setContentType("application/json");
    request.setContentLength64(static_cast<Poco::Int64>(body.size()));
    request.setKeepAlive(true);

    bool sent = false;
    bool answered = false;
    bool broken = false;  // the session is closed after the watchdog is disarmed
    try {
      std::ostream& out = http.sendRequest(request);
      // Connected: from here the wall clock bounds the request, across freezes too.
      watchdog_->arm(http.socket().impl()->sockfd(), started + std::chrono::milliseconds(wall_ms));
      // POCO's request stream hands the socket 4 KiB at a time: a 1 MiB delivery became 256
      // send() calls, the largest CPU cost of the whole relay. A small body still travels with
      // the headers in one segment; a larger one goes to the socket in one call.
      const bool direct = body.size() > kBufferedBodyBytes;
      if (!direct) {
        out.write(body.data(), static_cast<std::streamsize>(body.size()));
      }
      out.flush();
      if (!out) {
        const Poco::Exception* cause = http.networkException();
        if (cause != nullptr) {
          cause->rethrow();
        }
        throw Poco::Net::ConnectionAbortedException("the connection broke while sending");
      }
      if (direct) {
        // Headers and body are two segments now: without NODELAY the body's last partial
        // segment could wait for the peer's delayed ACK of the headers (up to 40 ms).
        http.socket().setNoDelay(true);
        send_all(http.socket(), body);
      }
      sent = true;
      relay::http::Answer answer = relay::http::receive_answer(http, Poco::Timestamp(), answered);
      attempt = std::move(answer.attempt);
      reusable_ = answer.reusable;
      broken = !reusable_;
    } catch (const Poco::TimeoutException&) {
      broken = true;
      attempt.error = "timed out after " +
                      std::to_string(sent ? request_ms : std::min(connect_timeout_ms_, left_ms)) +
                      " ms " + (sent ? "waiting for the response" : "connecting or sending");
    } catch (const Poco::Net::ConnectionRefusedException&) {
      broken = true;
      attempt.error = "connection refused by " + printable_authority();
    } catch (const Poco::Net::SSLException& e) {
      broken = true;
      attempt.error = "TLS error: " + e.displayText();
      attempt.lost_connection =
          !answered &&
          dynamic_cast<const Poco::Net::SSLConnectionUnexpectedlyClosedException*>(&e) != nullptr;
    } catch (const Poco::Net::DNSException& e) {
      broken = true;
      attempt.error = "cannot resolve " + printable_authority() + ": " + e.displayText();
    } catch (const Poco::Exception& e) {
      // Reset, aborted, no response at all: the connection is gone, the server may be fine.
      broken = true;
      attempt.error = "transport error: " + e.displayText();
      attempt.lost_connection = !answered;
    }
    // Disarmed before the socket is closed: the watchdog never touches a closed (reused) fd.
    if (watchdog_->disarm()) {
      broken = true;
      attempt = Attempt{};
      attempt.error = "timed out after " + std::to_string(wall_ms) + " ms (wall clock) " +
                      (sent ? "waiting for the response" : "sending");
    }
    if (broken) {
      reset_session();
    }
    return attempt;
  }

  // A blocking send may return short (the send timeout hit after some progress): carry on; a
  // peer that really stalls makes the next call throw TimeoutException, as the stream did.
  static void send_all(Poco::Net::StreamSocket& socket, std::string_view body) {
    while (!body.empty()) {
      const int chunk = static_cast<int>(std::min<size_t>(body.size(), kMaxSendBytes));
      const int n = socket.sendBytes(body.data(), chunk);
      if (n <= 0) {
        throw Poco::Net::ConnectionAbortedException("the connection broke while sending");
      }
      body.remove_prefix(static_cast<size_t>(n));
    }
  }

  relay::sdk::Host host_;
  // Only https needs OpenSSL, and only from its first delivery: initialising it and reading a
  // CA bundle at create cost ~20 ms of the function's init.
  bool tls_wanted_ = false;
  std::string ca_file_;  // empty with system_store_
  bool system_store_ = false;
  std::optional<SslLibrary> ssl_;
  Poco::URI uri_;  // empty when discarding
  std::string path_;
  int64_t connect_timeout_ms_ = 1000;
  int64_t request_timeout_ms_ = 5000;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::optional<std::pair<std::string, std::string>> basic_auth_;
  Poco::Net::Context::Ptr context_;
  // Started by the first delivery; declared before session_: outlives every request.
  std::unique_ptr<Watchdog> watchdog_;
  std::unique_ptr<Poco::Net::HTTPClientSession> session_;
  bool reusable_ = false;  // session_ holds a connection a previous delivery left open
};

}  // namespace

RELAY_SINK_PLUGIN(HttpSink, RELAY_SINK_NAME, RELAY_SINK_VERSION);
