// The network toolkit's client: one destination, one kept-alive connection, every request
// bounded by the wall clock. TLS lives in tls_openssl.cpp / tls_none.cpp (see tls.hpp).
#include <Poco/DeflatingStream.h>
#include <Poco/Exception.h>
#include <Poco/Net/HTTPBasicCredentials.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/String.h>
#include <Poco/Timespan.h>
#include <Poco/URI.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <telemetry_relay/net/client.hpp>
#include <thread>
#include <utility>

#include "tls.hpp"

namespace relay::sdk::net {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kIdHeader = "X-Telemetry-Relay-Batch-Id";
// Up to this size the body shares the request stream's buffer (and first send) with the headers.
constexpr size_t kBufferedBodyBytes = 2048;
constexpr size_t kMaxSendBytes = 1u << 30;

// The host's ids are hex; anything else that could break the header line is not sent.
bool header_safe(std::string_view value) {
  return !value.empty() && value.size() <= 128 &&
         std::all_of(value.begin(), value.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

int64_t ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// Bounds a request by the wall clock. POCO's socket timeouts start again after every
// SIGSTOP/SIGCONT or cgroup freeze (a blocking recv with SO_RCVTIMEO fails with EINTR and POCO
// retries it with the full timeout), and restart with every byte a slow peer trickles, so a hung
// request would outlive any number of Lambda freezes. When the deadline passes while armed, the
// watchdog shuts the socket down, which ends the blocked call.
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

// A blocking send may return short (the send timeout hit after some progress): carry on; a peer
// that really stalls makes the next call throw TimeoutException, as the stream did.
void send_all(Poco::Net::StreamSocket& socket, std::string_view body) {
  while (!body.empty()) {
    const int chunk = static_cast<int>(std::min<size_t>(body.size(), kMaxSendBytes));
    const int n = socket.sendBytes(body.data(), chunk);
    if (n <= 0) throw Poco::Net::ConnectionAbortedException("the connection broke while sending");
    body.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

std::vector<Header> headers_from_config(const Config& config, std::string_view prefix) {
  std::vector<Header> headers;
  for (const auto& [key, value] : config.with_prefix(prefix)) {
    std::string name = Poco::toLower(std::string(key.substr(prefix.size())));
    std::replace(name.begin(), name.end(), '_', '-');
    const bool valid_name = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '-';
    });
    if (!valid_name) {
      throw std::invalid_argument(printable(key, 128) +
                                  ": not a valid header name (letters, digits, _ or -)");
    }
    if (std::find(std::begin(kReservedHeaders), std::end(kReservedHeaders), name) !=
        std::end(kReservedHeaders)) {
      throw std::invalid_argument(std::string(key) + ": header '" + name +
                                  "' is set by the sink and cannot be configured");
    }
    // Any control character, not just CR/LF/NUL: a tab or ESC is never part of a key, and
    // receivers and proxies disagree on how to read one.
    if (std::any_of(value.begin(), value.end(),
                    [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
      throw std::invalid_argument(std::string(key) + ": the value of header '" + name +
                                  "' contains a control character (value not shown)");
    }
    headers.push_back({std::move(name), std::string(value)});
  }
  return headers;
}

std::string gzip(std::string_view body) {
  // zlib's fastest level: telemetry compresses well even so, and the CPU is the function's.
  constexpr int kLevel = 1;  // Z_BEST_SPEED
  std::ostringstream out;
  Poco::DeflatingOutputStream deflate(out, Poco::DeflatingStreamBuf::STREAM_GZIP, kLevel);
  deflate.write(body.data(), static_cast<std::streamsize>(body.size()));
  deflate.close();
  return std::move(out).str();
}

ClientOptions ClientOptions::from_config(const Config& config, std::string_view uri_key) {
  // A key the sink does not declare is absent from its validated configuration: the default.
  ClientOptions options;
  options.uri = config.text(uri_key);
  options.uri_key = uri_key;
  if (config.get("connect_timeout_ms")) {
    options.connect_timeout_ms = config.integer("connect_timeout_ms");
  }
  if (config.get("request_timeout_ms")) {
    options.request_timeout_ms = config.integer("request_timeout_ms");
  }
  options.ca_file = config.text("ca_file");
  options.cert_file = config.text("cert_file");
  options.key_file = config.text("key_file");
  if (config.get("gzip")) options.gzip = config.boolean("gzip");
  options.headers = headers_from_config(config);
  return options;
}

struct HttpClient::Impl {
  Host host;
  ClientOptions options;
  Poco::URI uri;
  std::string path;
  std::optional<std::pair<std::string, std::string>> basic_auth;
  // https: which CA certificates to trust, decided by the constructor, read by the first post().
  bool tls = false;
  bool system_store = false;
  std::shared_ptr<detail::TlsContext> tls_context;
  // Started by the first post(); declared before session: outlives every request.
  std::unique_ptr<Watchdog> watchdog;
  std::unique_ptr<Poco::Net::HTTPClientSession> session;
  bool reusable = false;  // session holds a connection a previous request left open

  Impl(const Host& h, ClientOptions o) : host(h), options(std::move(o)) {
    parse_uri();
    check_answer_rules();
    if (!options.headers.empty()) {
      std::string names;
      for (const Header& header : options.headers)
        names += (names.empty() ? "" : ", ") + header.name;
      host.debug("extra headers: " + names);  // names only: values may be secrets
    }
    check_client_certificate();
    if (uri.getScheme() == "https") choose_trust();
  }

  AnswerRules rules() const { return {options.retry_statuses, options.max_success_body}; }

  // The sink's own settings, not the user's: a mistake here is a bug in the sink.
  void check_answer_rules() const {
    for (int status : options.retry_statuses) {
      if (status < 400 || status > 599 || status == 413) {
        throw std::invalid_argument("retry status " + std::to_string(status) +
                                    ": only 4xx and 5xx other than 413 can be retried");
      }
    }
    if (options.max_success_body > kMaxSuccessBody) {
      throw std::invalid_argument("max_success_body " + std::to_string(options.max_success_body) +
                                  ": at most " + std::to_string(kMaxSuccessBody) + " bytes");
    }
  }

  // mTLS: both files or neither, https only, both readable now. Only the paths are ever quoted,
  // never what the files hold; OpenSSL reads them at the first post().
  void check_client_certificate() const {
    const bool cert = !options.cert_file.empty();
    const bool key = !options.key_file.empty();
    if (!cert && !key) return;
    if (cert != key) {
      throw std::invalid_argument(std::string("cert_file and key_file go together: ") +
                                  (cert ? "key_file" : "cert_file") + " is not set");
    }
    if (uri.getScheme() != "https") {
      throw std::invalid_argument("cert_file and key_file: a client certificate needs https, and " +
                                  options.uri_key + " is " + uri.getScheme() + "://" + authority());
    }
    for (const auto& [name, file] :
         {std::pair{"cert_file", &options.cert_file}, std::pair{"key_file", &options.key_file}}) {
      std::error_code error;
      if (!std::filesystem::is_regular_file(*file, error)) {
        throw std::invalid_argument(std::string(name) + "=" + printable(*file, 256) +
                                    ": no such file");
      }
      if (!std::ifstream(*file).is_open()) {
        throw std::invalid_argument(std::string(name) + "=" + printable(*file, 256) +
                                    ": cannot be read");
      }
    }
  }

  std::string authority() const {
    return printable(uri.getHost(), 253) + ":" + std::to_string(uri.getPort());
  }

  // Errors name the URI by scheme, host and port only, and never quote POCO's reason, which may
  // repeat a piece of the user info (a password with a '/' reads as a bad port).
  void parse_uri() {
    const std::string& value = options.uri;
    const auto invalid = [&](const std::string& why) {
      const std::optional<std::string> shown = redacted_uri(value);
      return std::invalid_argument(options.uri_key + "=" +
                                   (shown ? *shown : redacted_authority(value)) +
                                   " (the rest is not shown): " + why);
    };
    try {
      uri = Poco::URI(value);
    } catch (const Poco::Exception&) {
      throw invalid("not a valid URI");
    }
    if (uri.getScheme() != "http" && uri.getScheme() != "https") {
      throw invalid("the scheme must be http or https");
    }
    if (uri.getHost().empty()) throw invalid("no host");
    path = uri.getPathAndQuery();
    if (path.empty()) path += '/';  // not `path = "/"`: GCC 12 -O3 flags that with -Wrestrict
    const std::string userinfo = uri.getUserInfo();
    const bool explicit_auth =
        std::any_of(options.headers.begin(), options.headers.end(),
                    [](const Header& h) { return h.name == "authorization"; });
    if (!userinfo.empty() && !explicit_auth) {  // an explicit header beats the URI's credentials
      const auto colon = userinfo.find(':');
      basic_auth.emplace(userinfo.substr(0, colon),
                         colon == std::string::npos ? "" : userinfo.substr(colon + 1));
    }
  }

  void choose_trust() {
    tls = true;
    if (!options.ca_file.empty()) {
      if (!std::filesystem::is_regular_file(options.ca_file)) {
        throw std::invalid_argument("ca_file=" + options.ca_file + ": no such file");
      }
      return;
    }
    const CaBundleChoice choice =
        choose_ca_bundle(std::getenv("SSL_CERT_FILE"), kCaBundleCandidates);
    switch (choice.source) {
      case CaBundleChoice::Source::kDiscovered:
        options.ca_file = choice.file;
        host.debug("ca_file not set: trusting " + choice.file);
        break;
      case CaBundleChoice::Source::kEnvironment:
        system_store = true;  // OpenSSL's defaults read SSL_CERT_FILE
        host.debug("ca_file not set: trusting SSL_CERT_FILE=" + choice.file);
        break;
      case CaBundleChoice::Source::kOpenSslDefaults: {
        system_store = true;
        std::string tried;
        for (std::string_view candidate : kCaBundleCandidates) {
          tried += (tried.empty() ? "" : ", ") + std::string(candidate);
        }
        host.warn("no CA bundle found (tried " + tried +
                  ") and neither ca_file nor SSL_CERT_FILE is set: using OpenSSL's default trust "
                  "store, which may be empty; set ca_file if TLS handshakes fail");
        break;
      }
    }
  }

  Poco::Net::HTTPClientSession& connection() {
    if (!session) {
      if (tls) {
        session = detail::make_tls_session(uri.getHost(), uri.getPort(), *tls_context);
      } else {
        session = std::make_unique<Poco::Net::HTTPClientSession>(uri.getHost(), uri.getPort());
      }
      session->setProxyConfig({});  // never a proxy, whatever POCO's global default says
      session->setKeepAlive(true);
      reusable = false;
    }
    return *session;
  }

  Attempt request(std::string_view body, std::string_view id, Deadline deadline);
};

Attempt HttpClient::Impl::request(std::string_view body, std::string_view id, Deadline deadline) {
  Attempt attempt;
  const int64_t left_ms = deadline.remaining().count();
  if (left_ms <= 0) {
    attempt.error = "deadline passed before the request was sent";
    return attempt;
  }
  const int64_t connect_ms = std::min(options.connect_timeout_ms, left_ms);
  const int64_t request_ms = std::min(options.request_timeout_ms, left_ms);
  const auto started = Clock::now();
  const int64_t wall_ms =
      std::min(left_ms, options.connect_timeout_ms + options.request_timeout_ms);
  Poco::Net::HTTPClientSession& http = connection();
  http.setTimeout(Poco::Timespan(connect_ms * 1000), Poco::Timespan(request_ms * 1000),
                  Poco::Timespan(request_ms * 1000));

  Poco::Net::HTTPRequest post(Poco::Net::HTTPRequest::HTTP_POST, path,
                              Poco::Net::HTTPMessage::HTTP_1_1);
  for (const Header& header : options.headers) post.set(header.name, header.value);
  if (basic_auth) {
    Poco::Net::HTTPBasicCredentials(basic_auth->first, basic_auth->second).authenticate(post);
  }
  if (header_safe(id)) post.set(kIdHeader, std::string(id));
  post.setContentType(options.content_type);
  if (options.gzip) post.set("Content-Encoding", "gzip");
  post.setContentLength64(static_cast<Poco::Int64>(body.size()));
  post.setKeepAlive(true);

  bool sent = false;
  bool answered = false;
  bool broken = false;  // the session is closed after the watchdog is disarmed
  try {
    std::ostream& out = http.sendRequest(post);
    // Connected: from here the wall clock bounds the request, across freezes too.
    watchdog->arm(http.socket().impl()->sockfd(), started + std::chrono::milliseconds(wall_ms));
    // POCO's request stream hands the socket 4 KiB at a time (a 1 MiB body became 256 send()
    // calls). A small body still travels with the headers in one segment; a larger one goes to
    // the socket in one call.
    const bool direct = body.size() > kBufferedBodyBytes;
    if (!direct) out.write(body.data(), static_cast<std::streamsize>(body.size()));
    out.flush();
    if (!out) {
      if (const Poco::Exception* cause = http.networkException()) cause->rethrow();
      throw Poco::Net::ConnectionAbortedException("the connection broke while sending");
    }
    if (direct) {
      // Headers and body are two segments now: without NODELAY the body's last partial segment
      // could wait for the peer's delayed ACK of the headers (up to 40 ms).
      http.socket().setNoDelay(true);
      send_all(http.socket(), body);
    }
    sent = true;
    Answer answer = receive_answer(http, Poco::Timestamp(), answered, rules());
    attempt = std::move(answer.attempt);
    reusable = answer.reusable;
    broken = !reusable;
  } catch (const Poco::TimeoutException&) {
    broken = true;
    attempt.error = "timed out after " + std::to_string(sent ? request_ms : connect_ms) + " ms " +
                    (sent ? "waiting for the response" : "connecting or sending");
  } catch (const Poco::Net::ConnectionRefusedException&) {
    broken = true;
    attempt.error = "connection refused by " + authority();
  } catch (const Poco::Net::DNSException& e) {
    broken = true;
    attempt.error = "cannot resolve " + authority() + ": " + e.displayText();
  } catch (const Poco::Exception& e) {
    // Reset, aborted, no response at all: the connection is gone, the server may be fine.
    broken = true;
    bool closed = false;
    if (detail::describe_tls_error(e, attempt.error, closed)) {
      attempt.lost_connection = !answered && closed;
    } else {
      attempt.error = "transport error: " + e.displayText();
      attempt.lost_connection = !answered;
    }
  }
  // Disarmed before the socket is closed: the watchdog never touches a closed (reused) fd.
  if (watchdog->disarm()) {
    broken = true;
    attempt = Attempt{};
    attempt.error = "timed out after " + std::to_string(wall_ms) + " ms (wall clock) " +
                    (sent ? "waiting for the response" : "sending");
  }
  if (broken) {
    session.reset();
    reusable = false;
  }
  return attempt;
}

HttpClient::HttpClient(const Host& host, ClientOptions options)
    : impl_(std::make_unique<Impl>(host, std::move(options))) {}

HttpClient::~HttpClient() = default;

std::string HttpClient::destination() const {
  return impl_->uri.getScheme() + "://" + impl_->authority();
}

Attempt HttpClient::post(std::string_view body, std::string_view id, Deadline deadline) {
  Impl& impl = *impl_;
  // Set up on the first request, on the delivery thread: none of this is needed to start, and
  // reading a CA bundle costs tens of milliseconds of the function's init.
  if (impl.tls && !impl.tls_context) {
    if (deadline.expired()) {
      Attempt late;
      late.error = "deadline passed before the TLS context was set up";
      return late;
    }
    const auto started = Clock::now();
    const detail::TlsSettings settings{impl.options.ca_file, impl.system_store,
                                       impl.options.cert_file, impl.options.key_file};
    if (std::string error = detail::make_tls_context(settings, impl.tls_context); !error.empty()) {
      Attempt fatal;
      fatal.status = Status::kFatal;
      fatal.error = std::move(error);
      return fatal;
    }
    impl.host.debug(
        "TLS context ready (" +
        (impl.system_store ? std::string("system store") : "CA file " + impl.options.ca_file) +
        (impl.options.cert_file.empty() ? "" : ", client certificate " + impl.options.cert_file) +
        ") in " + std::to_string(ms_since(started)) + " ms");
  }
  if (!impl.watchdog) impl.watchdog = std::make_unique<Watchdog>();

  const auto started = Clock::now();
  std::string compressed;
  if (impl.options.gzip) {
    compressed = gzip(body);
    body = compressed;
  }
  const bool reused = impl.reusable;
  Attempt attempt = impl.request(body, id, deadline);
  if (attempt.lost_connection && reused) {
    // Most likely the idle connection died while Lambda froze us: one fresh try.
    impl.host.debug("connection reused from an earlier request failed (" + attempt.error +
                    "); reconnecting");
    attempt = impl.request(body, id, deadline);
  }
  impl.host.debug("POST " + std::to_string(body.size()) + " bytes" +
                  (impl.options.gzip ? " (gzip)" : "") + ": " +
                  (attempt.status == Status::kOk ? "HTTP " + std::to_string(attempt.http_status)
                                                 : attempt.error) +
                  " in " + std::to_string(ms_since(started)) + " ms");
  return attempt;
}

Status NetworkSink::report(Attempt attempt) {
  if (attempt.status == Status::kOk) return Status::kOk;
  if (attempt.too_large) return too_large(std::move(attempt.error));
  if (attempt.status == Status::kRetry && attempt.retry_after_ms > 0) {
    // Passed through as given (saturating): the host caps the hint.
    constexpr auto kMaxMs = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    return retry_after(
        std::chrono::milliseconds(static_cast<int64_t>(std::min(attempt.retry_after_ms, kMaxMs))),
        std::move(attempt.error));
  }
  return fail(attempt.status, std::move(attempt.error));
}

}  // namespace relay::sdk::net
