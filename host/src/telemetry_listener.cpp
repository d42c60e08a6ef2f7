#include "telemetry_listener.h"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/HTTPServerResponseImpl.h>
#include <Poco/Net/HTTPServerSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Net/TCPServer.h>
#include <Poco/Net/TCPServerConnection.h>
#include <Poco/Net/TCPServerConnectionFactory.h>
#include <Poco/Net/TCPServerParams.h>
#include <Poco/ThreadPool.h>
#include <simdjson.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <istream>
#include <list>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <thread>

#include "batch_parser.h"
#include "logging.h"

namespace relay {
namespace {

using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

constexpr int kListenBacklog = 64;
// Connection threads are many but shallow: no recursion, at most a 16 KiB scratch buffer.
constexpr int kThreadStackBytes = 512 * 1024;
constexpr int kSpareThreads = 8;
// Without a Content-Length the body arrives in pieces; read it in steps of this size.
constexpr size_t kReadStep = 64 * 1024;

}  // namespace

// Every open connection, so that none can hold the listener up. Per-read timeouts do not bound a
// client that trickles a byte at a time, so a connection that has not sent a whole request header
// within idle_timeout_ms (from opening, or from its previous answer), or a whole body within
// body_timeout_ms, is shut down by a reaper thread, which sleeps while no deadline is pending.
// Past max_connections a new connection evicts one that never sent a request (the oldest idle
// first, then the slowest body); a connection that has been served (the sender's) and a busy
// handler are never interrupted.
// Shutting a socket down from another thread unblocks its reader.
class ListenerConnections {
 public:
  enum class State { kWaiting, kReadingBody, kHandling };

  class Member;

  explicit ListenerConnections(const ListenerOptions& options, Poco::Logger& log)
      : max_(size_t(std::max(1, options.max_connections))),
        idle_timeout_(std::chrono::milliseconds(std::max(1, options.idle_timeout_ms))),
        body_timeout_(std::chrono::milliseconds(std::max(1, options.body_timeout_ms))),
        log_(log),
        reaper_([this] { reap(); }) {}

  ~ListenerConnections() { stop(); }

  // The acceptor thread, for each new connection: whether it may be served (it is closed if not).
  bool admit() {
    std::lock_guard lock(mutex_);
    if (stopping_) return false;
    // A connection that has been served (the sender's keep-alive one) is never evicted: only
    // its idle timeout closes it. Without an idle one to evict, a new connection waits in the
    // queue for a thread (an evicted one's, whose thread may lag behind a flood); past that it
    // is refused.
    if (pending_ + live_ >= max_ && !evict_one() && pending_ >= max_) {
      log_.warning("refused a telemetry connection: %z connections are open", pending_ + live_);
      return false;
    }
    ++pending_;
    return true;
  }

  // Shuts every connection down and refuses new ones. Idempotent.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      for (Entry& entry : entries_) shut_down(entry);
    }
    wake_.notify_all();
    if (reaper_.joinable()) reaper_.join();
  }

 private:
  using Clock = std::chrono::steady_clock;

  struct Entry {
    Poco::Net::StreamSocket socket;
    State state = State::kWaiting;
    Clock::time_point since;
    bool served = false;  // has had a request handled (a sender, not a squatter)
    bool evicted = false;
  };

  void shut_down(Entry& entry) {
    if (entry.evicted) return;
    entry.evicted = true;
    --live_;
    try {
      entry.socket.shutdown();
    } catch (const Poco::Exception&) {
      // Already closed by the client: its reader ends anyway.
    }
  }

  // The connection to give way to a new one, if any: the oldest that never sent a request, or
  // else the one reading its body the longest.
  bool evict_one() {
    Entry* victim = nullptr;
    auto rank = [](const Entry& e) { return e.state == State::kWaiting ? 0 : 1; };
    for (Entry& entry : entries_) {
      if (entry.evicted || entry.served || entry.state == State::kHandling) continue;
      if (victim == nullptr || rank(entry) < rank(*victim) ||
          (rank(entry) == rank(*victim) && entry.since < victim->since)) {
        victim = &entry;
      }
    }
    if (victim == nullptr) return false;
    if (log_.debug()) log_.debug("evicting an idle telemetry connection for a new one");
    shut_down(*victim);
    return true;
  }

  void reap() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      const Clock::time_point now = Clock::now();
      std::optional<Clock::time_point> next;
      for (Entry& entry : entries_) {
        if (entry.evicted || entry.state == State::kHandling) continue;
        const Clock::time_point deadline =
            entry.since + (entry.state == State::kWaiting ? idle_timeout_ : body_timeout_);
        if (deadline <= now) {
          if (log_.debug()) log_.debug("closing a telemetry connection that timed out");
          shut_down(entry);
        } else if (!next || deadline < *next) {
          next = deadline;
        }
      }
      // A state change only moves a deadline later, so only a new connection needs a wake-up.
      if (next) {
        wake_.wait_until(lock, *next);
      } else {
        wake_.wait(lock);
      }
    }
  }

  const size_t max_;
  const Clock::duration idle_timeout_;
  const Clock::duration body_timeout_;
  Poco::Logger& log_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::list<Entry> entries_;
  size_t pending_ = 0;  // admitted, not yet running
  size_t live_ = 0;     // entries not shut down
  bool stopping_ = false;
  std::thread reaper_;  // last: starts once the rest is built
};

// A connection's place in ListenerConnections while its thread runs it.
class ListenerConnections::Member {
 public:
  Member(ListenerConnections& all, const Poco::Net::StreamSocket& socket) : all_(all) {
    {
      std::lock_guard lock(all_.mutex_);
      if (all_.pending_ > 0) --all_.pending_;
      if (all_.stopping_) return;
      entry_ = all_.entries_.insert(all_.entries_.end(),
                                    Entry{socket, State::kWaiting, Clock::now(), false, false});
      ++all_.live_;
    }
    all_.wake_.notify_all();
  }

  ~Member() {
    if (!entry_) return;
    std::lock_guard lock(all_.mutex_);
    if (!(*entry_)->evicted) --all_.live_;
    all_.entries_.erase(*entry_);
  }

  Member(const Member&) = delete;
  Member& operator=(const Member&) = delete;

  explicit operator bool() const { return entry_.has_value(); }

  void set(State state) {
    if (!entry_) return;
    std::lock_guard lock(all_.mutex_);
    Entry& entry = **entry_;
    if (entry.state == State::kHandling && state == State::kWaiting) entry.served = true;
    entry.state = state;
    entry.since = Clock::now();
  }

 private:
  ListenerConnections& all_;
  std::optional<std::list<Entry>::iterator> entry_;
};

namespace {

struct Shared {
  PostConsumer& consumer;
  const ListenerOptions& options;
  ListenerStats& stats;
  Poco::Logger& log;
  ListenerConnections& connections;
  Poco::Net::HTTPServerParams::Ptr params;
};

void reply(HTTPServerResponse& response, HTTPResponse::HTTPStatus status,
           const std::string& text = {}) {
  response.setStatusAndReason(status);
  if (!text.empty()) response.setContentType("text/plain; charset=utf-8");
  response.setContentLength64(int64_t(text.size()));
  // Not sendBuffer(): POCO holds that answer in a buffer until the handler returns, and some
  // answers are followed by a shutdown of the sending side (discard_rest).
  std::ostream& out = response.send();
  out.write(text.data(), std::streamsize(text.size()));
  out.flush();
}

class BatchHandler {
 public:
  BatchHandler(const Shared& shared, ListenerConnections::Member& connection)
      : s_(shared), connection_(connection) {}

  // Answers the request; never throws.
  void handle_request(HTTPServerRequest& request, HTTPServerResponse& response) {
    try {
      handle(request, response);
    } catch (const std::exception& e) {
      internal_error(request, response, e.what());
    } catch (...) {
      internal_error(request, response, "an unknown exception");
    }
  }

 private:
  void handle(HTTPServerRequest& request, HTTPServerResponse& response) {
    if (request.getMethod() != Poco::Net::HTTPRequest::HTTP_POST) {
      if (s_.log.debug()) s_.log.debug("%s %s answered 405", request.getMethod(), request.getURI());
      response.set("Allow", "POST");
      if (!has_body(request)) {
        count(s_.stats.rejected_method, s_.stats.rejected_method_bytes, 0);
        reply(response, HTTPResponse::HTTP_METHOD_NOT_ALLOWED, "only POST is accepted\n");
        return;
      }
      // The body stays unread, so this connection cannot carry another request.
      const uint64_t declared = declared_length(request);
      count(s_.stats.rejected_method, s_.stats.rejected_method_bytes, declared);
      response.setKeepAlive(false);
      reply(response, HTTPResponse::HTTP_METHOD_NOT_ALLOWED, "only POST is accepted\n");
      const uint64_t discarded = discard_rest(request);
      // A chunked body announces no length: count what arrived.
      if (discarded > declared) s_.stats.rejected_method_bytes += discarded - declared;
      return;
    }

    const size_t cap = s_.options.max_body_bytes;
    // Transfer-Encoding wins over Content-Length (RFC 9112 6.3), as in POCO's own stream choice.
    const bool sized = request.hasContentLength() && !request.getChunkedTransferEncoding();
    if (sized && request.getContentLength64() < 0) {
      response.setKeepAlive(false);  // where this request ends is unknown
      malformed(response, 0, "invalid Content-Length");
      return;
    }
    if (sized && request.getContentLength64() > 0 && uint64_t(request.getContentLength64()) > cap) {
      too_large(request, response, "of " + std::to_string(request.getContentLength64()) + " bytes",
                0);
      return;
    }

    std::string body;
    connection_.set(ListenerConnections::State::kReadingBody);
    const bool complete = read_body(request, sized, cap, body);
    connection_.set(ListenerConnections::State::kHandling);
    if (!complete) {
      too_large(request, response, "over " + std::to_string(cap) + " bytes (no Content-Length)",
                body.size());
      return;
    }
    if (sized && body.size() != uint64_t(request.getContentLength64())) {
      malformed(response, body.size(),
                "body ended after " + std::to_string(body.size()) + " of " +
                    std::to_string(request.getContentLength64()) + " bytes");
      return;
    }

    const size_t bytes = body.size();
    ParseResult parsed = parse_batch(std::move(body));
    if (!parsed.batch) {
      malformed(response, bytes, parsed.error.message);
      return;
    }

    const size_t events = parsed.batch->events.size();
    if (parsed.invalid_events > 0) {
      // One line per batch: the count and the first reason (offsets only, never event bytes).
      s_.stats.invalid_events.fetch_add(parsed.invalid_events, std::memory_order_relaxed);
      s_.log.warning("dropped %z invalid events of a batch of %z bytes (kept %z); the first: %s",
                     parsed.invalid_events, bytes, events, parsed.error.message);
    }
    try {
      s_.consumer.consume(std::move(*parsed.batch));
    } catch (const std::exception& e) {
      s_.log.error("consumer failed on a batch of %z events: %s", events, std::string(e.what()));
      count(s_.stats.internal_errors, s_.stats.internal_error_bytes, bytes);
      reply(response, HTTPResponse::HTTP_INTERNAL_SERVER_ERROR, "internal error\n");
      return;
    }
    count(s_.stats.posts, s_.stats.bytes, bytes);
    s_.stats.events.fetch_add(events, std::memory_order_relaxed);
    if (s_.log.debug()) s_.log.debug("batch of %z events, %z bytes", events, bytes);
    reply(response, HTTPResponse::HTTP_OK);
  }

  // Every request is counted once, under the answer it gets (internal_error() counts the rest).
  void count(std::atomic<uint64_t>& requests, std::atomic<uint64_t>& bytes, uint64_t body_bytes) {
    counted_ = true;
    requests.fetch_add(1, std::memory_order_relaxed);
    bytes.fetch_add(body_bytes, std::memory_order_relaxed);
  }

  // A handler that throws would leave POCO to drop the connection without an answer.
  void internal_error(HTTPServerRequest& request, HTTPServerResponse& response,
                      const std::string& what) {
    s_.log.error("telemetry request failed: %s", what);
    if (!counted_) {
      count(s_.stats.internal_errors, s_.stats.internal_error_bytes, declared_length(request));
    }
    if (response.sent()) return;
    response.setKeepAlive(false);
    try {
      reply(response, HTTPResponse::HTTP_INTERNAL_SERVER_ERROR, "internal error\n");
    } catch (...) {
    }
  }

  static bool has_body(HTTPServerRequest& request) {
    return request.getChunkedTransferEncoding() ||
           (request.hasContentLength() && request.getContentLength64() > 0);
  }

  // Reads the whole body into one buffer with room for the parser's padding. Returns false
  // once more than cap bytes arrived (it reads at most cap + 1).
  static bool read_body(HTTPServerRequest& request, bool sized, size_t cap, std::string& body) {
    std::istream& in = request.stream();
    if (sized) {
      const size_t length = size_t(std::max<int64_t>(request.getContentLength64(), 0));
      body.reserve(length + simdjson::SIMDJSON_PADDING);
      body.resize(length);
      in.read(body.data(), std::streamsize(length));
      body.resize(size_t(in.gcount()));
      return true;
    }
    body.reserve(kReadStep + simdjson::SIMDJSON_PADDING);
    while (body.size() <= cap) {
      const size_t old_size = body.size();
      const size_t step = std::min(kReadStep, cap + 1 - old_size);
      body.resize(old_size + step);
      in.read(body.data() + old_size, std::streamsize(step));
      body.resize(old_size + size_t(in.gcount()));
      if (size_t(in.gcount()) < step) return true;
    }
    return false;
  }

  // What the client announced it sends (0 without a Content-Length, or when chunked).
  static uint64_t declared_length(HTTPServerRequest& request) {
    if (!request.hasContentLength() || request.getChunkedTransferEncoding()) return 0;
    return uint64_t(std::max<int64_t>(request.getContentLength64(), 0));
  }

  // After the answer to a body left (partly) unread: shuts down the sending side, so a client
  // reading the answer sees it end, then reads and throws away what the client still sends, until
  // the end of this request's body, the client closing, or the discard bounds. A client that
  // writes its whole body before it reads (most do) then finds the answer instead of a reset,
  // which closing with unread data would send. Returns the bytes discarded. Never buffers more
  // than one small scratch block; the connection closes after it (keep-alive is off).
  uint64_t discard_rest(HTTPServerRequest& request) {
    auto* impl = dynamic_cast<Poco::Net::HTTPServerRequestImpl*>(&request);
    if (impl == nullptr) return 0;
    uint64_t discarded = 0;
    try {
      Poco::Net::StreamSocket& socket = impl->socket();
      // shutdown only reads the descriptor, as the server's own stopAll() does concurrently;
      // closing it here would race with that (POCO closes it once the handler returns).
      // StreamSocket::shutdownSend() is out of line, like setOption() below.
      socket.shutdownSend();
      std::istream& in = request.stream();
      const auto until =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(s_.options.discard_max_ms);
      char scratch[16 * 1024];
      while (in && discarded < s_.options.discard_max_bytes) {
        const auto left = std::chrono::duration_cast<std::chrono::microseconds>(
            until - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        // Each read waits at most for what is left of the time bound. Through SocketImpl's
        // out-of-line setOption: POCO's inline setters read the socket object in this (maybe
        // TSan-instrumented) code while POCO's own, uninstrumented, code frees it later, which
        // ThreadSanitizer reports as a race it cannot see the ordering of.
        socket.impl()->setOption(SOL_SOCKET, SO_RCVTIMEO, Poco::Timespan(left.count()));
        const size_t want =
            size_t(std::min<uint64_t>(sizeof scratch, s_.options.discard_max_bytes - discarded));
        in.read(scratch, std::streamsize(want));
        if (in.gcount() <= 0) break;
        discarded += uint64_t(in.gcount());
      }
    } catch (const Poco::Exception& e) {
      // A client that closed or reset: nothing left to discard.
      if (s_.log.debug()) s_.log.debug("discarding an unread body ended: %s", e.displayText());
    }
    return discarded;
  }

  // body_read: bytes of the body already read (a chunked body grows past the cap before this).
  void too_large(HTTPServerRequest& request, HTTPServerResponse& response, const std::string& size,
                 uint64_t body_read) {
    const uint64_t known = std::max(declared_length(request), body_read);
    count(s_.stats.rejected_too_large, s_.stats.rejected_too_large_bytes, known);
    s_.log.warning("rejected a telemetry body %s: the cap is %z bytes", size,
                   s_.options.max_body_bytes);
    // The rest of the body is not kept, so the connection cannot be reused.
    response.setKeepAlive(false);
    reply(response, HTTPResponse::HTTP_REQUEST_ENTITY_TOO_LARGE,
          "body " + size + " exceeds the limit of " + std::to_string(s_.options.max_body_bytes) +
              " bytes\n");
    const uint64_t discarded = discard_rest(request);
    // A chunked body announces no length: count what arrived.
    if (body_read + discarded > known) {
      s_.stats.rejected_too_large_bytes += body_read + discarded - known;
    }
  }

  void malformed(HTTPServerResponse& response, uint64_t bytes, const std::string& reason) {
    count(s_.stats.rejected_malformed, s_.stats.rejected_malformed_bytes, bytes);
    s_.log.warning("rejected a malformed telemetry batch: %s", reason);
    reply(response, HTTPResponse::HTTP_BAD_REQUEST, "malformed telemetry batch: " + reason + "\n");
  }

  const Shared& s_;
  ListenerConnections::Member& connection_;
  bool counted_ = false;
};

// Reads and throws away what a client still sends, within the discard bounds, so that closing
// with unread data does not reset the connection before the client reads the answer.
void drain(Poco::Net::StreamSocket& socket, const ListenerOptions& options) {
  try {
    socket.shutdownSend();
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(options.discard_max_ms);
    char scratch[16 * 1024];
    for (size_t drained = 0; drained < options.discard_max_bytes;) {
      const auto left = std::chrono::duration_cast<std::chrono::microseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      socket.impl()->setOption(SOL_SOCKET, SO_RCVTIMEO, Poco::Timespan(left.count()));
      const int n = socket.receiveBytes(scratch, sizeof scratch);
      if (n <= 0) break;
      drained += size_t(n);
    }
  } catch (const Poco::Exception&) {
    // The client closed, reset or went quiet: nothing left to protect the answer from.
  }
}

// One connection: POCO's HTTPServerConnection loop, plus what it lacks: the connection's state
// for ListenerConnections, and a 400 (rather than a silent close) for a request whose header
// POCO cannot take apart.
class Connection : public Poco::Net::TCPServerConnection {
 public:
  Connection(const Poco::Net::StreamSocket& socket, const Shared& shared)
      : TCPServerConnection(socket), s_(shared), params_(shared.params) {}

  void run() override {
    Poco::Net::HTTPServerSession session(socket(), params_);
    // After the session: it leaves ListenerConnections before the session closes the socket, so
    // a shutdown from another thread can never reach a descriptor already reused.
    ListenerConnections::Member member(s_.connections, socket());
    if (!member) return;
    try {
      while (session.hasMoreRequests() && serve_one(session, member)) {
      }
    } catch (const Poco::Exception& e) {
      // A client that closed, reset, timed out or was evicted.
      if (s_.log.debug()) s_.log.debug("telemetry connection ended: %s", e.displayText());
    }
  }

 private:
  // Returns whether the connection may carry another request.
  bool serve_one(Poco::Net::HTTPServerSession& session, ListenerConnections::Member& member) {
    Poco::Net::HTTPServerResponseImpl response(session);
    std::optional<Poco::Net::HTTPServerRequestImpl> request;
    try {
      request.emplace(response, session, params_.get());
    } catch (const Poco::Net::NoMessageException&) {
      return false;  // closed between requests
    } catch (const Poco::Net::MessageException& e) {
      return bad_header(session, e.displayText());
    } catch (const Poco::SyntaxException& e) {
      // Content-Length: abc, or 2^64+1: POCO reads it while building the request.
      return bad_header(session, e.displayText());
    }
    member.set(ListenerConnections::State::kHandling);
    response.setDate(Poco::Timestamp());
    // POCO keeps whatever version the request line named ("H^TP/1.1"); answers name a real one.
    response.setVersion(request->getVersion() == Poco::Net::HTTPMessage::HTTP_1_0
                            ? Poco::Net::HTTPMessage::HTTP_1_0
                            : Poco::Net::HTTPMessage::HTTP_1_1);
    const bool keep_alive = params_->getKeepAlive() && session.canKeepAlive();
    response.setKeepAlive(keep_alive && request->getKeepAlive());
    if (request->getExpectContinue() && response.getStatus() == HTTPResponse::HTTP_OK) {
      response.sendContinue();
    }
    BatchHandler(s_, member).handle_request(*request, response);
    session.setKeepAlive(keep_alive && response.getKeepAlive());
    member.set(ListenerConnections::State::kWaiting);
    return true;
  }

  // A fresh response: the one the failed request was attached to points at it.
  bool bad_header(Poco::Net::HTTPServerSession& session, const std::string& why) {
    s_.stats.rejected_malformed.fetch_add(1, std::memory_order_relaxed);
    s_.log.warning("rejected a malformed telemetry request: %s", why);
    Poco::Net::HTTPServerResponseImpl response(session);
    response.setVersion(Poco::Net::HTTPMessage::HTTP_1_1);
    response.setKeepAlive(false);
    reply(response, HTTPResponse::HTTP_BAD_REQUEST, "malformed request header\n");
    session.setKeepAlive(false);
    drain(socket(), s_.options);
    return false;
  }

  const Shared& s_;
  Poco::Net::HTTPServerParams::Ptr params_;
};

class ConnectionFactory : public Poco::Net::TCPServerConnectionFactory {
 public:
  explicit ConnectionFactory(Shared shared) : shared_(std::move(shared)) {}
  Poco::Net::TCPServerConnection* createConnection(const Poco::Net::StreamSocket& socket) override {
    return new Connection(socket, shared_);
  }

 private:
  const Shared shared_;
};

class Admission : public Poco::Net::TCPServerConnectionFilter {
 public:
  explicit Admission(ListenerConnections& connections) : connections_(connections) {}
  bool accept(const Poco::Net::StreamSocket&) override { return connections_.admit(); }

 private:
  ListenerConnections& connections_;
};

}  // namespace

TelemetryListener::TelemetryListener(PostConsumer& consumer, ListenerOptions options)
    : consumer_(consumer), options_(options) {}

void TelemetryListener::start() {
  if (server_) return;
  const int max_connections = std::max(1, options_.max_connections);
  Poco::Logger& log = logger("listener");

  // 0.0.0.0 rather than sandbox.localdomain: it works whatever that name resolves to, and in
  // an emulator that delivers to 127.0.0.1.
  Poco::Net::ServerSocket socket;
  // SO_REUSEPORT stays off (POCO's two-argument bind sets it): a port another extension holds
  // must fail the bind, not be shared with it.
  socket.bind(Poco::Net::SocketAddress(Poco::Net::IPAddress(), options_.port), true, false);
  socket.listen(kListenBacklog);

  Poco::Net::HTTPServerParams::Ptr params = new Poco::Net::HTTPServerParams;
  params->setKeepAlive(true);
  // Per read; ListenerConnections bounds the whole header and body.
  params->setTimeout(Poco::Timespan(Poco::Timespan::TimeDiff(options_.idle_timeout_ms) * 1000));
  params->setKeepAliveTimeout(
      Poco::Timespan(Poco::Timespan::TimeDiff(options_.idle_timeout_ms) * 1000));
  // One thread per connection: admission keeps connections within max_connections, so the
  // queue only holds connections waiting for an evicted (or, all busy, a finished) one's thread.
  params->setMaxThreads(max_connections);
  params->setMaxQueued(2 * max_connections);

  auto connections = std::make_unique<ListenerConnections>(options_, log);
  // Threads start on demand and end when their connection does. Spare capacity: a thread that
  // just ended a connection is briefly neither running nor idle in the pool, and POCO's
  // dispatcher, finding no thread then, would leave the next connection queued until another
  // one arrives.
  auto pool =
      std::make_unique<Poco::ThreadPool>(1, max_connections + kSpareThreads, 60, kThreadStackBytes);
  auto server = std::make_unique<Poco::Net::TCPServer>(
      new ConnectionFactory(Shared{consumer_, options_, stats_, log, *connections, params}), *pool,
      socket, params);
  server->setConnectionFilter(new Admission(*connections));
  server->start();
  connections_ = std::move(connections);
  pool_ = std::move(pool);
  server_ = std::move(server);
  log.debug("listening on 0.0.0.0:%d, at most %d connections", int(port()), max_connections);
}

TelemetryListener::~TelemetryListener() {
  if (!server_) return;
  // Aborts open connections (their threads end) and refuses new ones. POCO's accept loop notices
  // the stop between its 250 ms polls.
  connections_->stop();
  server_->stop();
  // Connections reference this object; none may still run once it is gone.
  pool_->joinAll();
}

uint16_t TelemetryListener::port() const {
  return server_ ? server_->socket().address().port() : 0;
}

}  // namespace relay
