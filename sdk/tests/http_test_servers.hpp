// Local HTTP servers on 127.0.0.1 port 0 for the network toolkit's and the http sink's tests: a
// POCO HTTP(S) server with a configurable answer, and a raw socket server that answers with
// scripted bytes (the broken connections POCO's server would never produce).
#pragma once

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/NameValueCollection.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/StreamCopier.h>
#include <Poco/Timespan.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace relay::test {

using namespace std::chrono_literals;

struct Recorded {
  std::string method;
  std::string uri;
  std::string content_type;
  std::string body;
  Poco::Net::NameValueCollection headers;
};

// A POCO HTTP(S) server answering every request with a configurable status and body.
class StubServer {
 public:
  explicit StubServer(Poco::Net::Context::Ptr tls = nullptr) {
    Poco::Net::SocketAddress address("127.0.0.1", 0);
    Poco::Net::ServerSocket socket =
        tls ? Poco::Net::SecureServerSocket(address, 64, tls) : Poco::Net::ServerSocket(address);
    port_ = socket.address().port();
    auto params = new Poco::Net::HTTPServerParams;
    params->setKeepAlive(true);
    server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(*this), socket, params);
    server_->start();
  }
  ~StubServer() { server_->stopAll(true); }

  void respond(int status, std::string body = "",
               std::vector<std::pair<std::string, std::string>> headers = {}) {
    std::lock_guard lock(mutex_);
    status_ = status;
    body_ = std::move(body);
    headers_ = std::move(headers);
  }
  std::vector<Recorded> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  uint16_t port() const { return port_; }
  std::string url(const std::string& scheme = "http", const std::string& host = "127.0.0.1",
                  const std::string& path = "/ingest?token=abc") const {
    return scheme + "://" + host + ":" + std::to_string(port_) + path;
  }

 private:
  class Handler : public Poco::Net::HTTPRequestHandler {
   public:
    explicit Handler(StubServer& server) : server_(server) {}
    void handleRequest(Poco::Net::HTTPServerRequest& request,
                       Poco::Net::HTTPServerResponse& response) override {
      Recorded recorded;
      recorded.method = request.getMethod();
      recorded.uri = request.getURI();
      recorded.content_type = request.getContentType();
      for (const auto& [name, value] : request) {
        recorded.headers.add(name, value);
      }
      Poco::StreamCopier::copyToString(request.stream(), recorded.body);
      int status;
      std::string body;
      std::vector<std::pair<std::string, std::string>> headers;
      {
        std::lock_guard lock(server_.mutex_);
        server_.requests_.push_back(std::move(recorded));
        status = server_.status_;
        body = server_.body_;
        headers = server_.headers_;
      }
      response.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
      for (const auto& [name, value] : headers) response.set(name, value);
      response.setContentLength(static_cast<std::streamsize>(body.size()));
      response.send() << body;
    }

   private:
    StubServer& server_;
  };

  class Factory : public Poco::Net::HTTPRequestHandlerFactory {
   public:
    explicit Factory(StubServer& server) : server_(server) {}
    Poco::Net::HTTPRequestHandler* createRequestHandler(
        const Poco::Net::HTTPServerRequest&) override {
      return new Handler(server_);
    }

   private:
    StubServer& server_;
  };

  mutable std::mutex mutex_;
  int status_ = 200;
  std::string body_;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::vector<Recorded> requests_;
  uint16_t port_ = 0;
  std::unique_ptr<Poco::Net::HTTPServer> server_;
};

// True once `request` holds a whole request (headers and Content-Length bytes of body).
inline bool request_complete(const std::string& request) {
  auto end = request.find("\r\n\r\n");
  if (end == std::string::npos) {
    return false;
  }
  auto at = request.find("Content-Length: ");
  size_t length = at == std::string::npos ? 0 : std::stoul(request.substr(at + 16));
  return request.size() >= end + 4 + length;
}

// Answers the n-th request with the n-th scripted reply, raw bytes as given (interim responses
// included), on kept-alive connections; a reply may close its connection. `otherwise` once the
// script runs out (by default a 200 that keeps the connection).
class ScriptedServer {
 public:
  struct Reply {
    std::string bytes;
    bool close = false;
  };
  explicit ScriptedServer(std::vector<Reply> script)
      : ScriptedServer(std::move(script), Reply{kKeptOk, false}) {}
  ScriptedServer(std::vector<Reply> script, Reply otherwise)
      : script_(std::move(script)),
        otherwise_(std::move(otherwise)),
        socket_(Poco::Net::SocketAddress("127.0.0.1", 0)) {
    thread_ = std::thread([this] { run(); });
  }
  ~ScriptedServer() {
    stop_ = true;
    thread_.join();
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(socket_.address().port()) + "/";
  }
  int connections() {
    std::lock_guard lock(mutex_);
    return connections_;
  }
  // Waits until `n` connections have been answered and closed.
  bool wait_closed(int n) {
    std::unique_lock lock(mutex_);
    return closed_cv_.wait_for(lock, 10s, [&] { return closed_ >= n; });
  }

 private:
  void run() {
    while (!stop_) {
      if (!socket_.poll(Poco::Timespan(0, 50000), Poco::Net::Socket::SELECT_READ)) {
        continue;
      }
      Poco::Net::StreamSocket connection = socket_.acceptConnection();
      {
        std::lock_guard lock(mutex_);
        ++connections_;
      }
      try {
        while (serve_one(connection)) {
        }
      } catch (const Poco::Exception&) {
      }
      connection.close();
      std::lock_guard lock(mutex_);
      ++closed_;
      closed_cv_.notify_all();
    }
  }
  // Reads one request and answers it; false when the connection is done.
  bool serve_one(Poco::Net::StreamSocket& connection) {
    std::string request;
    char buffer[4096];
    while (!request_complete(request)) {
      if (stop_) return false;
      if (!connection.poll(Poco::Timespan(0, 50000), Poco::Net::Socket::SELECT_READ)) continue;
      int n = connection.receiveBytes(buffer, sizeof(buffer));
      if (n <= 0) return false;
      request.append(buffer, static_cast<size_t>(n));
    }
    const Reply& reply = next_ < script_.size() ? script_[next_++] : otherwise_;
    connection.sendBytes(reply.bytes.data(), static_cast<int>(reply.bytes.size()));
    return !reply.close;
  }

  static inline const std::string kKeptOk = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  std::vector<Reply> script_;
  const Reply otherwise_;
  size_t next_ = 0;
  Poco::Net::ServerSocket socket_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  int connections_ = 0;
  std::condition_variable closed_cv_;
  int closed_ = 0;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace relay::test
