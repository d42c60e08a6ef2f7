#include "telemetry_listener.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/ThreadPool.h>
#include <simdjson.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <istream>
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

// Connections beyond the busy threads wait here; past it POCO refuses them and Lambda retries.
constexpr int kMaxQueuedConnections = 64;
constexpr int kListenBacklog = 64;
// Without a Content-Length the body arrives in pieces; read it in steps of this size.
constexpr size_t kReadStep = 64 * 1024;

struct Shared {
  BatchConsumer& consumer;
  const ListenerOptions& options;
  ListenerStats& stats;
  Poco::Logger& log;
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

class BatchHandler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit BatchHandler(const Shared& shared) : s_(shared) {}

  void handleRequest(HTTPServerRequest& request, HTTPServerResponse& response) override {
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
    if (sized && request.getContentLength64() > 0 && uint64_t(request.getContentLength64()) > cap) {
      too_large(request, response, "of " + std::to_string(request.getContentLength64()) + " bytes",
                0);
      return;
    }

    std::string body;
    if (!read_body(request, sized, cap, body)) {
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
    try {
      s_.consumer.consume(std::move(*parsed.batch));
    } catch (const std::exception& e) {
      s_.log.error("consumer failed on a batch of %z events: %s", events, std::string(e.what()));
      count(s_.stats.internal_errors, s_.stats.internal_error_bytes, bytes);
      reply(response, HTTPResponse::HTTP_INTERNAL_SERVER_ERROR, "internal error\n");
      return;
    }
    count(s_.stats.batches, s_.stats.bytes, bytes);
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
  bool counted_ = false;
};

class HandlerFactory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit HandlerFactory(Shared shared) : shared_(shared) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const HTTPServerRequest&) override {
    return new BatchHandler(shared_);
  }

 private:
  Shared shared_;
};

}  // namespace

TelemetryListener::TelemetryListener(BatchConsumer& consumer, ListenerOptions options)
    : consumer_(consumer), options_(options) {}

TelemetryListener::~TelemetryListener() { stop(); }

void TelemetryListener::start() {
  if (server_) return;
  const int threads = std::max(1, options_.max_threads);

  // 0.0.0.0 rather than sandbox.localdomain: it works whatever that name resolves to, and in
  // an emulator that delivers to 127.0.0.1.
  Poco::Net::ServerSocket socket;
  // SO_REUSEPORT stays off (POCO's two-argument bind sets it): a port another extension holds
  // must fail the bind, not be shared with it.
  socket.bind(Poco::Net::SocketAddress(Poco::Net::IPAddress(), options_.port), true, false);
  socket.listen(kListenBacklog);

  Poco::Net::HTTPServerParams::Ptr params = new Poco::Net::HTTPServerParams;
  params->setKeepAlive(true);
  params->setMaxThreads(threads);
  params->setMaxQueued(kMaxQueuedConnections);

  auto pool = std::make_unique<Poco::ThreadPool>(1, threads);
  auto server = std::make_unique<Poco::Net::HTTPServer>(
      new HandlerFactory(Shared{consumer_, options_, stats_, logger("listener")}), *pool, socket,
      params);
  server->start();
  pool_ = std::move(pool);
  server_ = std::move(server);
  logger("listener").debug("listening on 0.0.0.0:%d with %d threads", int(port()), threads);
}

void TelemetryListener::stop() {
  if (!server_) return;
  // POCO's accept loop only notices the stop flag between 250 ms polls; a connection wakes it
  // at once. Shutdown has a 2 s budget, so the quarter second matters.
  std::thread waker([port = port()] {
    try {
      Poco::Net::StreamSocket socket;
      socket.connect(Poco::Net::SocketAddress("127.0.0.1", port), Poco::Timespan(0, 200000));
    } catch (const Poco::Exception&) {
    }
  });
  server_->stopAll(true);
  waker.join();
  // Handlers reference this object; none may still run once stop() returns.
  pool_->joinAll();
  server_.reset();
  pool_.reset();
}

uint16_t TelemetryListener::port() const {
  return server_ ? server_->socket().address().port() : 0;
}

}  // namespace relay
