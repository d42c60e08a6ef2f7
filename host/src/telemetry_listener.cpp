#include "telemetry_listener.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/ThreadPool.h>
#include <simdjson.h>

#include <algorithm>
#include <istream>
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
  response.sendBuffer(text.data(), text.size());
}

class BatchHandler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit BatchHandler(const Shared& shared) : s_(shared) {}

  void handleRequest(HTTPServerRequest& request, HTTPServerResponse& response) override {
    try {
      handle(request, response);
    } catch (const std::exception& e) {
      internal_error(response, e.what());
    } catch (...) {
      internal_error(response, "an unknown exception");
    }
  }

 private:
  void handle(HTTPServerRequest& request, HTTPServerResponse& response) {
    if (request.getMethod() != Poco::Net::HTTPRequest::HTTP_POST) {
      ++s_.stats.rejected_method;
      if (s_.log.debug()) s_.log.debug("%s %s answered 405", request.getMethod(), request.getURI());
      // The body, if any, stays unread, so this connection cannot carry another request.
      if (has_body(request)) response.setKeepAlive(false);
      response.set("Allow", "POST");
      reply(response, HTTPResponse::HTTP_METHOD_NOT_ALLOWED, "only POST is accepted\n");
      return;
    }

    const size_t cap = s_.options.max_body_bytes;
    // Transfer-Encoding wins over Content-Length (RFC 9112 6.3), as in POCO's own stream choice.
    const bool sized = request.hasContentLength() && !request.getChunkedTransferEncoding();
    if (sized && request.getContentLength64() > 0 && uint64_t(request.getContentLength64()) > cap) {
      too_large(response, "of " + std::to_string(request.getContentLength64()) + " bytes");
      return;
    }

    std::string body;
    if (!read_body(request, sized, cap, body)) {
      too_large(response, "over " + std::to_string(cap) + " bytes (no Content-Length)");
      return;
    }
    if (sized && body.size() != uint64_t(request.getContentLength64())) {
      malformed(response, "body ended after " + std::to_string(body.size()) + " of " +
                              std::to_string(request.getContentLength64()) + " bytes");
      return;
    }

    const size_t bytes = body.size();
    ParseResult parsed = parse_batch(std::move(body));
    if (!parsed.batch) {
      malformed(response, parsed.error.message);
      return;
    }

    const size_t events = parsed.batch->events.size();
    try {
      s_.consumer.consume(std::move(*parsed.batch));
    } catch (const std::exception& e) {
      s_.log.error("consumer failed on a batch of %z events: %s", events, std::string(e.what()));
      reply(response, HTTPResponse::HTTP_INTERNAL_SERVER_ERROR, "internal error\n");
      return;
    }
    ++s_.stats.batches;
    s_.stats.events += events;
    s_.stats.bytes += bytes;
    if (s_.log.debug()) s_.log.debug("batch of %z events, %z bytes", events, bytes);
    reply(response, HTTPResponse::HTTP_OK);
  }

  // A handler that throws would leave POCO to drop the connection without an answer.
  void internal_error(HTTPServerResponse& response, const std::string& what) {
    s_.log.error("telemetry request failed: %s", what);
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

  void too_large(HTTPServerResponse& response, const std::string& size) {
    ++s_.stats.rejected_too_large;
    s_.log.warning("rejected a telemetry body %s: the cap is %z bytes", size,
                   s_.options.max_body_bytes);
    // The rest of the body is never read, so the connection cannot be reused.
    response.setKeepAlive(false);
    reply(response, HTTPResponse::HTTP_REQUEST_ENTITY_TOO_LARGE,
          "body " + size + " exceeds the limit of " + std::to_string(s_.options.max_body_bytes) +
              " bytes\n");
  }

  void malformed(HTTPServerResponse& response, const std::string& reason) {
    ++s_.stats.rejected_malformed;
    s_.log.warning("rejected a malformed telemetry batch: %s", reason);
    reply(response, HTTPResponse::HTTP_BAD_REQUEST, "malformed telemetry batch: " + reason + "\n");
  }

  const Shared& s_;
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
