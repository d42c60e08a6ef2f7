#include "receiver.h"

#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/NetSSL.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/String.h>
#include <Poco/ThreadPool.h>
#include <simdjson.h>

#include <algorithm>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "http_util.h"

namespace relay::emu {
namespace {

bool is_2xx(int status) { return status >= 200 && status < 300; }

void initialize_ssl_once() {
  static std::once_flag once;
  std::call_once(once, [] { Poco::Net::initializeSSL(); });
}

}  // namespace

std::string ReceivedRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (Poco::icompare(key, std::string(name)) == 0) return value;
  }
  return {};
}

std::optional<std::vector<std::string>> split_event_array(std::string_view body) {
  thread_local simdjson::ondemand::parser parser;
  const simdjson::padded_string padded(body);
  simdjson::ondemand::document doc;
  if (parser.iterate(padded).get(doc)) return std::nullopt;
  simdjson::ondemand::array array;
  if (doc.get_array().get(array)) return std::nullopt;
  std::vector<std::string> events;
  for (auto element : array) {
    simdjson::ondemand::object object;
    std::string_view raw;
    // object::raw_json() is the element's exact text in simdjson 3.0.1 (value has none).
    if (element.get_object().get(object) || object.raw_json().get(raw)) return std::nullopt;
    events.emplace_back(raw);
  }
  return events;
}

DeliveryCheck check_delivery(const std::vector<std::string>& expected,
                             const std::vector<std::string>& received) {
  DeliveryCheck check;
  check.expected = expected.size();
  check.received = received.size();
  std::unordered_map<std::string_view, int64_t> balance;
  for (const auto& text : expected) balance[text]++;
  std::unordered_map<std::string_view, bool> known;
  for (const auto& text : expected) known[text] = true;
  for (const auto& text : received) {
    if (!known.contains(text)) {
      check.unexpected++;
    } else if (--balance[text] < 0) {
      check.duplicates++;
    }
  }
  for (const auto& [text, left] : balance) {
    if (left > 0) check.missing += static_cast<size_t>(left);
  }
  return check;
}

Receiver::Receiver() : Receiver(Options{}) {}

Receiver::Receiver(Options options)
    : options_(std::move(options)),
      port_(options_.port),
      default_fault_(Fault::answer(options_.default_status)) {}

Receiver::~Receiver() { stop(); }

void Receiver::start() {
  if (server_) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  const Poco::Net::SocketAddress address("127.0.0.1", port_);
  std::unique_ptr<Poco::Net::ServerSocket> socket;
  if (!options_.cert_path.empty() && !options_.key_path.empty()) {
    initialize_ssl_once();
    Poco::Net::Context::Ptr context(new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE,
                                                           options_.key_path, options_.cert_path,
                                                           "", Poco::Net::Context::VERIFY_NONE));
    socket = std::make_unique<Poco::Net::SecureServerSocket>(address, 64, context);
  } else {
    socket = std::make_unique<Poco::Net::ServerSocket>(address, 64);
  }
  {
    std::lock_guard lock(mu_);
    port_ = socket->address().port();
  }
  auto params = Poco::AutoPtr<Poco::Net::HTTPServerParams>(new Poco::Net::HTTPServerParams);
  params->setMaxThreads(16);
  params->setKeepAlive(true);
  if (options_.keep_alive_timeout_ms > 0) {
    params->setKeepAliveTimeout(
        Poco::Timespan(options_.keep_alive_timeout_ms * Poco::Timespan::MILLISECONDS));
  }
  pool_ = std::make_unique<Poco::ThreadPool>(2, 16);
  server_ = std::make_unique<Poco::Net::HTTPServer>(
      new FnHandlerFactory([this](auto& request, auto& response) { handle(request, response); }),
      *pool_, *socket, params);
  server_->start();
}

void Receiver::stop() {
  if (!server_) return;
  {
    // Held requests give up (or the pool could never join) and are gone before the server
    // tears their connections down.
    std::unique_lock lock(mu_);
    stopping_ = true;
    ++hang_generation_;
    cv_.notify_all();
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return hung_ == 0; });
  }
  server_->stopAll(true);
  server_.reset();
  pool_->joinAll();
  pool_.reset();
}

bool Receiver::running() const { return server_ != nullptr; }

uint16_t Receiver::port() const {
  std::lock_guard lock(mu_);
  return port_;
}

std::string Receiver::url() const {
  const bool tls = !options_.cert_path.empty() && !options_.key_path.empty();
  return std::string(tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port());
}

void Receiver::push_statuses(const std::vector<int>& statuses) {
  std::lock_guard lock(mu_);
  for (const int status : statuses) script_.push_back(Fault::answer(status));
}

void Receiver::set_default_status(int status) {
  std::lock_guard lock(mu_);
  default_fault_ = Fault::answer(status);
}

void Receiver::push_faults(const std::vector<Fault>& faults) {
  std::lock_guard lock(mu_);
  script_.insert(script_.end(), faults.begin(), faults.end());
}

void Receiver::set_default_fault(Fault fault) {
  std::lock_guard lock(mu_);
  default_fault_ = std::move(fault);
}

void Receiver::fail_for(int status, std::chrono::milliseconds duration) {
  std::lock_guard lock(mu_);
  fail_status_ = status;
  fail_until_ = std::chrono::steady_clock::now() + duration;
}

void Receiver::release_hangs() {
  std::lock_guard lock(mu_);
  ++hang_generation_;
  cv_.notify_all();
}

size_t Receiver::hung_now() const {
  std::lock_guard lock(mu_);
  return hung_;
}

bool Receiver::wait_for_hung(size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return hung_ >= count; });
}

void Receiver::set_delay_ms(int delay_ms) {
  std::lock_guard lock(mu_);
  delay_ms_ = delay_ms;
}

std::vector<ReceivedRequest> Receiver::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

size_t Receiver::request_count() const {
  std::lock_guard lock(mu_);
  return requests_.size();
}

std::vector<std::string> Receiver::event_texts(bool accepted_only) const {
  std::lock_guard lock(mu_);
  return accepted_only ? accepted_events_ : all_events_;
}

size_t Receiver::event_count(bool accepted_only) const {
  std::lock_guard lock(mu_);
  return accepted_only ? accepted_events_.size() : all_events_.size();
}

size_t Receiver::unparsed_bodies() const {
  std::lock_guard lock(mu_);
  return unparsed_;
}

bool Receiver::wait_for_requests(size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return requests_.size() >= count; });
}

bool Receiver::wait_for_events(size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return accepted_events_.size() >= count; });
}

uint16_t Receiver::free_port() {
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
  const uint16_t port = socket.address().port();
  socket.close();
  return port;
}

void Receiver::refuse_bodies_containing(std::string needle, int status) {
  std::lock_guard lock(mu_);
  refused_needle_ = std::move(needle);
  refused_status_ = status;
}

void Receiver::handle(Poco::Net::HTTPServerRequest& request,
                      Poco::Net::HTTPServerResponse& response) {
  ReceivedRequest received;
  received.method = request.getMethod();
  received.uri = request.getURI();
  received.client = request.clientAddress().toString();
  for (const auto& [name, value] : request) received.headers.emplace_back(name, value);

  Fault fault;
  int delay_ms = 0;
  {
    std::lock_guard lock(mu_);
    if (!script_.empty()) {
      fault = script_.front();
      script_.pop_front();
    } else if (std::chrono::steady_clock::now() < fail_until_) {
      fault = Fault::answer(fail_status_);
    } else {
      fault = default_fault_;
    }
    delay_ms = delay_ms_;
  }

  // The connection itself, to end it without an answer (hang released, reset). It is never
  // closed here: POCO's server may touch the same socket from another thread meanwhile (stopAll()
  // shuts every connection down), and closing it under POCO's feet is a data race on its
  // descriptor. The handler shuts it down or sets it to reset, turns keep-alive off and returns
  // without an answer; POCO then closes it on this thread.
  auto* impl = dynamic_cast<Poco::Net::HTTPServerRequestImpl*>(&request);
  if (fault.kind == Fault::Kind::kReset) {
    const std::streamsize length = request.getContentLength64();
    std::string part(static_cast<size_t>(length > 1 ? length / 2 : 1), '\0');
    request.stream().read(part.data(), static_cast<std::streamsize>(part.size()));
    part.resize(static_cast<size_t>(std::max<std::streamsize>(0, request.stream().gcount())));
    received.body = std::move(part);
    received.at = std::chrono::steady_clock::now();
    received.status = ReceivedRequest::kReset;
    {
      std::lock_guard lock(mu_);
      requests_.push_back(std::move(received));
      cv_.notify_all();
    }
    // POCO's close() after this handler then sends RST, not FIN; the unread rest of the body
    // would make it a reset anyway.
    // SocketImpl::setLinger is out of line: POCO's inline Socket::setLinger would read the socket
    // object in instrumented code, which TSan then reports against POCO's uninstrumented free.
    if (impl) impl->socket().impl()->setLinger(true, 0);
    response.setKeepAlive(false);
    return;
  }

  received.body = read_body(request);
  received.at = std::chrono::steady_clock::now();
  const auto events = split_event_array(received.body);

  if (fault.kind == Fault::Kind::kHang) {
    std::unique_lock lock(mu_);
    received.status = ReceivedRequest::kHung;
    if (events) all_events_.insert(all_events_.end(), events->begin(), events->end());
    requests_.push_back(std::move(received));
    ++hung_;
    cv_.notify_all();
    const uint64_t generation = hang_generation_;
    cv_.wait(lock, [&] { return hang_generation_ != generation || stopping_; });
    const bool stopping = stopping_;
    lock.unlock();
    // Released: the client sees the connection end without an answer. Stopping: stopAll() shuts
    // it down. Still counted as held meanwhile, so stop() waits for this shutdown (on a TLS
    // socket it writes the TLS close alert, which must not run beside stopAll()'s).
    if (impl && !stopping) {
      try {
        impl->socket().shutdown();
      } catch (const Poco::Exception&) {
        // The client is gone already.
      }
    }
    response.setKeepAlive(false);
    lock.lock();
    --hung_;
    cv_.notify_all();
    return;
  }

  if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  received.status = fault.status;
  {
    std::lock_guard lock(mu_);
    // A collector whose parser chokes on one event refuses every body holding it.
    if (!refused_needle_.empty() && received.body.find(refused_needle_) != std::string::npos) {
      received.status = refused_status_;
    }
  }
  const int status = received.status;
  {
    std::lock_guard lock(mu_);
    if (events) {
      all_events_.insert(all_events_.end(), events->begin(), events->end());
      if (is_2xx(status)) {
        accepted_events_.insert(accepted_events_.end(), events->begin(), events->end());
      }
    } else {
      unparsed_++;
    }
    requests_.push_back(std::move(received));
    cv_.notify_all();
  }
  Answer::Headers headers;
  if (!fault.retry_after.empty()) headers.emplace_back("Retry-After", fault.retry_after);
  send_answer(response, Answer{status, is_2xx(status) ? "{}" : R"({"error":"scripted"})",
                               "application/json", std::move(headers)});
}

}  // namespace relay::emu
