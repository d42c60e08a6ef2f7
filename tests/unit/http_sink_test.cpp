// The built http sink (librelay-sink-http.so), loaded like the host loads it and driven against
// local servers on 127.0.0.1 port 0: plain and TLS POCO servers, and raw sockets for the broken
// connections POCO's server would never produce.
#include <Poco/DateTimeFormatter.h>
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
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <telemetry_relay/testing.hpp>
#include <thread>
#include <vector>

#include "../../plugins/http/http_response.h"
#include "../../plugins/http/http_support.h"

namespace {

namespace sdk_testing = relay::sdk::testing;
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
bool request_complete(const std::string& request) {
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

class HttpSinkTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    library_ = new sdk_testing::Library(RELAY_PLUGIN_DIR "/librelay-sink-http.so");
  }
  static void TearDownTestSuite() {
    delete library_;
    library_ = nullptr;
  }

  void SetUp() override {
    batch_
        .add(
            R"({"time":"2024-01-01T00:00:00.000Z","type":"platform.start","record":{"requestId":"r1","version":"$LATEST"}})")
        .add(
            R"({"time":"2024-01-01T00:00:00.001Z","type":"function","record":"caf\u00e9 \"quoted\" é\n"})");
  }

  sdk_testing::SinkInstance create(const sdk_testing::KeyValues& config) {
    return sdk_testing::SinkInstance::create(library_->descriptor(), host_, config);
  }
  std::string batch_json() {
    const relay_batch& batch = batch_.build();
    return std::string(batch.json.data, batch.json.size);
  }

  static sdk_testing::Library* library_;
  sdk_testing::FakeHost host_;
  sdk_testing::BatchBuilder batch_;
};

sdk_testing::Library* HttpSinkTest::library_ = nullptr;

TEST_F(HttpSinkTest, PostsTheBatchJsonByteForByte) {
  StubServer server;
  auto sink = create({{"post_uri", server.url()}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  auto outcome = sink.deliver(batch_.build());
  EXPECT_EQ(outcome.status, RELAY_OK) << outcome.error;
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].uri, "/ingest?token=abc");
  EXPECT_EQ(requests[0].content_type, "application/json");
  EXPECT_EQ(requests[0].body, batch_json());
  EXPECT_EQ(host_.count(RELAY_LOG_WARN) + host_.count(RELAY_LOG_ERROR), 0u);
  EXPECT_FALSE(host_.logged("token=abc")) << "the query may hold credentials";
}

TEST_F(HttpSinkTest, StatusDecidesTheOutcome) {
  StubServer server;
  auto sink = create({{"post_uri", server.url()}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  struct Case {
    int status;
    relay_status expected;
  };
  for (Case c : {Case{200, RELAY_OK}, Case{202, RELAY_OK}, Case{204, RELAY_OK},
                 Case{500, RELAY_RETRY}, Case{503, RELAY_RETRY}, Case{408, RELAY_RETRY},
                 Case{429, RELAY_RETRY}, Case{400, RELAY_DROP}, Case{404, RELAY_DROP},
                 Case{413, RELAY_DROP}, Case{301, RELAY_DROP}}) {
    server.respond(c.status, c.status == 204 ? "" : "reason for " + std::to_string(c.status));
    auto outcome = sink.deliver(batch_.build());
    EXPECT_EQ(outcome.status, c.expected) << "HTTP " << c.status << ": " << outcome.error;
    EXPECT_EQ(outcome.too_large, c.status == 413) << "HTTP " << c.status;
    if (c.expected != RELAY_OK && c.status != 301) {  // a redirect's body is not quoted
      EXPECT_NE(outcome.error.find("HTTP " + std::to_string(c.status)), std::string::npos)
          << outcome.error;
      EXPECT_NE(outcome.error.find("reason for " + std::to_string(c.status)), std::string::npos)
          << outcome.error;
    }
  }
  EXPECT_EQ(server.requests().size(), 11u);
}

TEST_F(HttpSinkTest, ErrorBodyExcerptIsShortAndSanitized) {
  StubServer server;
  server.respond(400, "bad\r\n\x01" + std::string(1000, 'x'));
  auto sink = create({{"post_uri", server.url()}});
  ASSERT_TRUE(sink.created());
  auto outcome = sink.deliver(batch_.build());
  EXPECT_EQ(outcome.status, RELAY_DROP);
  EXPECT_NE(outcome.error.find("HTTP 400 Bad Request: bad  ?xxx"), std::string::npos)
      << outcome.error;
  EXPECT_LE(outcome.error.size(), 300u);
  EXPECT_EQ(outcome.error.substr(outcome.error.size() - 3), "...");
}

TEST_F(HttpSinkTest, ConnectionRefusedIsRetried) {
  uint16_t port;
  {
    Poco::Net::ServerSocket probe(Poco::Net::SocketAddress("127.0.0.1", 0));
    port = probe.address().port();
  }
  auto sink = create({{"post_uri", "http://127.0.0.1:" + std::to_string(port) + "/"}});
  ASSERT_TRUE(sink.created());
  auto outcome = sink.deliver(batch_.build());
  EXPECT_EQ(outcome.status, RELAY_RETRY);
  EXPECT_NE(outcome.error.find("refused"), std::string::npos) << outcome.error;
}

TEST_F(HttpSinkTest, ServerThatNeverAnswersIsRetriedWithinTheTimeout) {
  // Listening but never accepting: the kernel completes the handshake, nobody ever answers.
  Poco::Net::ServerSocket silent(Poco::Net::SocketAddress("127.0.0.1", 0));
  std::string url = "http://127.0.0.1:" + std::to_string(silent.address().port()) + "/";
  auto started = std::chrono::steady_clock::now();
  {
    auto sink = create({{"post_uri", url}, {"request_timeout_ms", "200"}});
    ASSERT_TRUE(sink.created());
    auto outcome = sink.deliver(batch_.build());
    EXPECT_EQ(outcome.status, RELAY_RETRY);
    EXPECT_NE(outcome.error.find("timed out"), std::string::npos) << outcome.error;
  }
  {
    // The deadline, not the (long) request timeout, bounds the wait.
    auto sink = create({{"post_uri", url}, {"request_timeout_ms", "300000"}});
    ASSERT_TRUE(sink.created());
    auto outcome = sink.deliver(batch_.build(), relay::sdk::Deadline::in(300ms).unix_ms());
    EXPECT_EQ(outcome.status, RELAY_RETRY);
    EXPECT_NE(outcome.error.find("timed out"), std::string::npos) << outcome.error;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started, 60s);
}

TEST_F(HttpSinkTest, ExpiredDeadlineIsRetriedWithoutSending) {
  StubServer server;
  auto sink = create({{"post_uri", server.url()}});
  ASSERT_TRUE(sink.created());
  auto outcome = sink.deliver(batch_.build(), relay::sdk::Deadline::now_unix_ms() - 1);
  EXPECT_EQ(outcome.status, RELAY_RETRY);
  EXPECT_NE(outcome.error.find("deadline"), std::string::npos) << outcome.error;
  EXPECT_TRUE(server.requests().empty());
}

// A keep-alive 200, then the connection closes anyway, the way an idle connection dies while
// Lambda keeps the extension frozen.
const ScriptedServer::Reply kOkThenClose{
    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n", true};

TEST_F(HttpSinkTest, KeepAliveConnectionClosedBetweenDeliveriesIsReplacedTransparently) {
  ScriptedServer server({}, kOkThenClose);
  auto sink = create({{"post_uri", server.url()}});
  ASSERT_TRUE(sink.created());
  auto first = sink.deliver(batch_.build());
  EXPECT_EQ(first.status, RELAY_OK) << first.error;
  ASSERT_TRUE(server.wait_closed(1));
  auto second = sink.deliver(batch_.build());
  EXPECT_EQ(second.status, RELAY_OK) << second.error;
  EXPECT_TRUE(server.wait_closed(2));
  EXPECT_TRUE(host_.logged("reconnecting")) << "the second delivery should have reused the first "
                                               "connection, found it dead and reconnected";
}

// A body past the size that shares the headers' stream buffer goes to the socket in one call.
void add_large_events(sdk_testing::BatchBuilder& batch) {
  for (int i = 0; i < 2000; ++i) {
    batch.add(R"({"time":"2024-01-01T00:00:00.000Z","type":"function","record":"line )" +
              std::to_string(i) + std::string(150, 'x') + "\"}");
  }
}

TEST_F(HttpSinkTest, LargeBatchIsPostedByteForByteOnAKeptAliveConnection) {
  add_large_events(batch_);
  StubServer server;
  auto sink = create({{"post_uri", server.url()}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  for (int i = 0; i < 2; ++i) {
    auto outcome = sink.deliver(batch_.build());
    EXPECT_EQ(outcome.status, RELAY_OK) << outcome.error;
  }
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  ASSERT_GT(batch_json().size(), 300000u);
  EXPECT_EQ(requests[0].body, batch_json());
  EXPECT_EQ(requests[1].body, batch_json());
  EXPECT_FALSE(host_.logged("reconnecting"));
}

TEST_F(HttpSinkTest, LargeBatchOnAConnectionClosedBetweenDeliveriesIsResent) {
  add_large_events(batch_);
  ScriptedServer server({}, kOkThenClose);
  auto sink = create({{"post_uri", server.url()}});
  ASSERT_TRUE(sink.created());
  auto first = sink.deliver(batch_.build());
  EXPECT_EQ(first.status, RELAY_OK) << first.error;
  ASSERT_TRUE(server.wait_closed(1));
  auto second = sink.deliver(batch_.build());
  EXPECT_EQ(second.status, RELAY_OK) << second.error;
  EXPECT_TRUE(server.wait_closed(2));
}

TEST_F(HttpSinkTest, KeepAliveConnectionIsReused) {
  StubServer server;
  auto sink = create({{"post_uri", server.url()}});
  ASSERT_TRUE(sink.created());
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(sink.deliver(batch_.build()).ok());
  }
  EXPECT_EQ(server.requests().size(), 3u);
  EXPECT_FALSE(host_.logged("reconnecting"));
}

TEST_F(HttpSinkTest, ExtraHeadersAreSentAndTheirValuesNeverLogged) {
  StubServer server;
  auto sink = create({{"post_uri", server.url()},
                      {"header_x_api_key", "s3cr3t-key"},
                      {"header_authorization", "Bearer s3cr3t-token"}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  EXPECT_TRUE(sink.deliver(batch_.build()).ok());
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].headers.get("X-Api-Key", ""), "s3cr3t-key");
  EXPECT_EQ(requests[0].headers.get("Authorization", ""), "Bearer s3cr3t-token");
  EXPECT_EQ(requests[0].content_type, "application/json");
  EXPECT_FALSE(host_.logged("s3cr3t"));
}

TEST_F(HttpSinkTest, BadHeaderConfigurationFailsCreateWithoutEchoingTheValue) {
  auto reserved = create({{"post_uri", "http://127.0.0.1:9/"}, {"header_content_length", "1"}});
  EXPECT_FALSE(reserved.created());
  EXPECT_NE(reserved.create_outcome().error.find("header_content_length"), std::string::npos);
  auto injected =
      create({{"post_uri", "http://127.0.0.1:9/"}, {"header_x_token", "s3cr3t\r\nX-Evil: 1"}});
  EXPECT_FALSE(injected.created());
  EXPECT_NE(injected.create_outcome().error.find("header_x_token"), std::string::npos);
  EXPECT_EQ(injected.create_outcome().error.find("s3cr3t"), std::string::npos);
}

TEST_F(HttpSinkTest, MissingPostUriDiscardsWithOneWarning) {
  for (const sdk_testing::KeyValues& config :
       {sdk_testing::KeyValues{}, sdk_testing::KeyValues{{"post_uri", ""}}}) {
    host_.clear();
    auto sink = create(config);
    ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
    for (int i = 0; i < 2; ++i) {
      const auto outcome = sink.deliver(batch_.build());
      EXPECT_TRUE(outcome.ok());
      EXPECT_TRUE(outcome.discarded) << "the host must count these as discarded, not delivered";
    }
    auto lines = host_.lines();
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].level, RELAY_LOG_WARN);
    EXPECT_EQ(lines[0].message, "DISPATCH_POST_URI is not set: telemetry is discarded");
  }
}

TEST_F(HttpSinkTest, InvalidPostUriFailsCreateShowingOnlySchemeHostAndPort) {
  struct Case {
    std::string uri;
    std::string shown;
  };
  for (const Case& c : {
           Case{"htps://user:S3CR3T@collector.example/in?token=S3CR3T", "htps://collector.example"},
           Case{"http://user:S3CR3T@collector.example:99999/in", "http://collector.example:99999"},
           Case{"https://user:S3/CR3T@collector.example/in", "https://collector.example"},
           Case{"https://user:S3?CR3T@collector.example/in", "https://collector.example"},
           Case{"https://S3CR3T@/in?token=S3CR3T", "https://<no host>"},
           Case{"ftp://S3CR3T@collector.example/in#S3CR3T", "ftp://collector.example"},
           Case{"collector.example/in?token=S3CR3T", "collector.example"},
           Case{"http://[::1", "http://<invalid host>"},
       }) {
    auto sink = create({{"post_uri", c.uri}});
    ASSERT_FALSE(sink.created()) << c.uri;
    const std::string& error = sink.create_outcome().error;
    EXPECT_EQ(error.find("S3"), std::string::npos) << error;
    EXPECT_EQ(error.find("CR3T"), std::string::npos) << error;
    EXPECT_NE(error.find("post_uri=" + c.shown + " "), std::string::npos) << error;
  }
  EXPECT_FALSE(host_.logged("S3CR3T"));
}

TEST_F(HttpSinkTest, TheDestinationIsLoggedWithoutUserInfoPathOrQuery) {
  StubServer server;
  auto sink = create({{"post_uri", "http://key:S3CR3T@127.0.0.1:" + std::to_string(server.port()) +
                                       "/hooks/S3CR3T?token=S3CR3T#S3CR3T"}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  EXPECT_TRUE(sink.deliver(batch_.build()).ok());
  EXPECT_TRUE(
      host_.logged("posting telemetry to http://127.0.0.1:" + std::to_string(server.port())));
  EXPECT_FALSE(host_.logged("S3CR3T"));
}

TEST_F(HttpSinkTest, AControlCharacterInAHeaderValueFailsCreateNamingOnlyTheHeader) {
  for (const std::string& value :
       std::vector<std::string>{"s3cr3t\tkey", "s3cr3t\x1b[2Jkey", "s3cr3t\x7fkey", "s3cr3t\x01",
                                std::string("s3cr3t\0key", 10)}) {
    auto sink = create({{"post_uri", "http://127.0.0.1:9/"}, {"header_x_api_key", value}});
    ASSERT_FALSE(sink.created());
    const std::string& error = sink.create_outcome().error;
    EXPECT_NE(error.find("x-api-key"), std::string::npos) << error;
    EXPECT_NE(error.find("control character"), std::string::npos) << error;
    EXPECT_EQ(error.find("s3cr3t"), std::string::npos) << error;
  }
  auto name = create({{"post_uri", "http://127.0.0.1:9/"}, {"header_x\x1b[2J", "v"}});
  ASSERT_FALSE(name.created());
  EXPECT_EQ(name.create_outcome().error.find('\x1b'), std::string::npos)
      << "the name is quoted printable only";
  EXPECT_NE(name.create_outcome().error.find("header_x?[2J"), std::string::npos)
      << name.create_outcome().error;
}

TEST_F(HttpSinkTest, InterimResponsesAreSkippedAndKeepTheConnectionInStep) {
  ScriptedServer server({
      {"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
       "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
      {"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
       "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
  });
  auto sink = create({{"post_uri", server.url()}});
  ASSERT_TRUE(sink.created());
  auto a = sink.deliver(batch_.build());
  EXPECT_EQ(a.status, RELAY_OK) << a.error;
  auto b = sink.deliver(batch_.build());
  EXPECT_EQ(b.status, RELAY_RETRY) << b.error;
  EXPECT_NE(b.error.find("HTTP 500 Internal Server Error: oops"), std::string::npos) << b.error;
  auto c = sink.deliver(batch_.build());
  EXPECT_EQ(c.status, RELAY_OK) << c.error;
  EXPECT_EQ(server.connections(), 1) << "one kept-alive connection, answers in step";
}

TEST_F(HttpSinkTest, EndlessInterimResponsesAreATransientFailure) {
  std::string interim;
  for (int i = 0; i < 50; ++i) interim += "HTTP/1.1 102 Processing\r\n\r\n";
  ScriptedServer server({{interim + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"}});
  auto sink = create({{"post_uri", server.url()}});
  ASSERT_TRUE(sink.created());
  auto outcome = sink.deliver(batch_.build());
  EXPECT_EQ(outcome.status, RELAY_RETRY) << outcome.error;
  EXPECT_NE(outcome.error.find("interim"), std::string::npos) << outcome.error;
  EXPECT_TRUE(sink.deliver(batch_.build()).ok()) << "on a new connection";
  EXPECT_EQ(server.connections(), 2);
}

TEST_F(HttpSinkTest, AConnectionLostAfterAnInterimAnswerIsNotResentAtOnce) {
  // The first delivery leaves a kept-alive connection; on it the second request gets 102 and the
  // connection closes: the receiver has the request, so the reused-connection resend is no cure.
  ScriptedServer server({{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
                         {"HTTP/1.1 102 Processing\r\n\r\n", true}});
  auto sink = create({{"post_uri", server.url()}});
  ASSERT_TRUE(sink.created());
  EXPECT_TRUE(sink.deliver(batch_.build()).ok());
  auto outcome = sink.deliver(batch_.build());
  EXPECT_EQ(outcome.status, RELAY_RETRY) << outcome.error;
  EXPECT_FALSE(host_.logged("reconnecting"));
  EXPECT_EQ(server.connections(), 1);
}

TEST_F(HttpSinkTest, SwitchingProtocolsIsRetriedOnANewConnection) {
  ScriptedServer server(
      {{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\n\r\n"}});
  auto sink = create({{"post_uri", server.url()}});
  ASSERT_TRUE(sink.created());
  auto outcome = sink.deliver(batch_.build());
  EXPECT_EQ(outcome.status, RELAY_RETRY) << outcome.error;
  EXPECT_NE(outcome.error.find("HTTP 101"), std::string::npos) << outcome.error;
  EXPECT_TRUE(sink.deliver(batch_.build()).ok());
  EXPECT_EQ(server.connections(), 2) << "the switched connection is never reused";
}

TEST_F(HttpSinkTest, ARedirectIsDroppedNamingOnlyWhereItPointsTo) {
  StubServer server;
  auto sink = create({{"post_uri", server.url()}});
  ASSERT_TRUE(sink.created());
  server.respond(
      308, "moved to https://collector.example:8443/in?token=S3CR3T",
      {{"Location", "https://user:S3CR3T@collector.example:8443/S3CR3T/in?token=S3CR3T#S3CR3T"}});
  auto outcome = sink.deliver(batch_.build());
  EXPECT_EQ(outcome.status, RELAY_DROP);
  EXPECT_NE(outcome.error.find("HTTP 308"), std::string::npos) << outcome.error;
  EXPECT_NE(outcome.error.find("not followed"), std::string::npos) << outcome.error;
  EXPECT_NE(outcome.error.find("https://collector.example:8443)"), std::string::npos)
      << outcome.error;
  EXPECT_EQ(outcome.error.find("S3CR3T"), std::string::npos) << outcome.error;

  server.respond(302, "", {{"Location", "/elsewhere?token=S3CR3T"}});
  outcome = sink.deliver(batch_.build());
  EXPECT_EQ(outcome.status, RELAY_DROP);
  EXPECT_NE(outcome.error.find("a relative reference"), std::string::npos) << outcome.error;
  EXPECT_EQ(outcome.error.find("S3CR3T"), std::string::npos) << outcome.error;
  EXPECT_EQ(server.requests().size(), 2u) << "never followed";
}

TEST_F(HttpSinkTest, PayloadTooLargeAsksTheHostToSplit) {
  StubServer server;
  server.respond(413, "too big");
  auto sink = create({{"post_uri", server.url()}});
  ASSERT_TRUE(sink.created());
  auto outcome = sink.deliver(batch_.build());
  EXPECT_EQ(outcome.status, RELAY_DROP);
  EXPECT_TRUE(outcome.too_large);
  EXPECT_NE(outcome.error.find("HTTP 413"), std::string::npos) << outcome.error;
  server.respond(400, "bad");
  EXPECT_FALSE(sink.deliver(batch_.build()).too_large);
}

TEST_F(HttpSinkTest, OutOfRangeValuesFailCreateNamingKeyValueAndRange) {
  auto zero = create({{"post_uri", "http://127.0.0.1:9/"}, {"connect_timeout_ms", "0"}});
  EXPECT_FALSE(zero.created());
  EXPECT_EQ(zero.create_outcome().error,
            "connect_timeout_ms=0 is out of range: expected an integer in [1, 60000]");
  auto text = create({{"post_uri", "http://127.0.0.1:9/"}, {"request_timeout_ms", "5s"}});
  EXPECT_FALSE(text.created());
  EXPECT_EQ(text.create_outcome().error,
            "request_timeout_ms=5s is not an integer: expected an integer in [1, 300000]");
  auto ca = create({{"post_uri", "https://127.0.0.1:9/"}, {"ca_file", "/nonexistent/ca.pem"}});
  EXPECT_FALSE(ca.created());
  EXPECT_NE(ca.create_outcome().error.find("ca_file=/nonexistent/ca.pem"), std::string::npos);
}

// TLS against certificates made with the openssl CLI in a temporary directory.
class HttpsSinkTest : public HttpSinkTest {
 protected:
  static void SetUpTestSuite() {
    HttpSinkTest::SetUpTestSuite();
    char dir_template[] = "/tmp/relay-http-tls-XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
    for (auto [name, cn] :
         {std::pair{"localhost", "localhost"}, std::pair{"other", "other.example"}}) {
      std::string command =
          "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
          "-nodes -days 2 -subj /CN=" +
          std::string(cn) + " -addext subjectAltName=DNS:" + cn + " -keyout " + dir_ + "/" + name +
          ".key -out " + dir_ + "/" + name + ".pem 2>/dev/null";
      ASSERT_EQ(std::system(command.c_str()), 0) << command;
    }
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(dir_);
    HttpSinkTest::TearDownTestSuite();
  }

  static Poco::Net::Context::Ptr server_context(const std::string& name) {
    return new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, dir_ + "/" + name + ".key",
                                  dir_ + "/" + name + ".pem", "", Poco::Net::Context::VERIFY_NONE);
  }

  size_t count_logged(const std::string& text) const {
    size_t n = 0;
    for (const auto& line : host_.lines()) n += line.message.find(text) != std::string::npos;
    return n;
  }

  static std::string dir_;
};

std::string HttpsSinkTest::dir_;

TEST_F(HttpsSinkTest, TrustedThroughCaFileDelivers) {
  StubServer server(server_context("localhost"));
  auto sink = create(
      {{"post_uri", server.url("https", "localhost")}, {"ca_file", dir_ + "/localhost.pem"}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  auto outcome = sink.deliver(batch_.build());
  EXPECT_EQ(outcome.status, RELAY_OK) << outcome.error;
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].body, batch_json());
}

TEST_F(HttpsSinkTest, LargeBatchIsPostedByteForByteOverTls) {
  add_large_events(batch_);
  StubServer server(server_context("localhost"));
  auto sink = create(
      {{"post_uri", server.url("https", "localhost")}, {"ca_file", dir_ + "/localhost.pem"}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  for (int i = 0; i < 2; ++i) {
    auto outcome = sink.deliver(batch_.build());
    EXPECT_EQ(outcome.status, RELAY_OK) << outcome.error;
  }
  ASSERT_EQ(server.requests().size(), 2u);
  EXPECT_EQ(server.requests()[0].body, batch_json());
  EXPECT_EQ(server.requests()[1].body, batch_json());
}

TEST_F(HttpsSinkTest, UntrustedCertificateIsRetriedWithATlsError) {
  StubServer server(server_context("localhost"));
  auto sink = create({{"post_uri", server.url("https", "localhost")}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  auto outcome = sink.deliver(batch_.build());
  EXPECT_EQ(outcome.status, RELAY_RETRY);
  EXPECT_NE(outcome.error.find("TLS"), std::string::npos) << outcome.error;
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(HttpsSinkTest, CertificateForAnotherHostIsRejected) {
  StubServer server(server_context("other"));
  auto sink =
      create({{"post_uri", server.url("https", "localhost")}, {"ca_file", dir_ + "/other.pem"}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  auto outcome = sink.deliver(batch_.build());
  EXPECT_EQ(outcome.status, RELAY_RETRY);
  EXPECT_NE(outcome.error.find("TLS"), std::string::npos) << outcome.error;
  EXPECT_TRUE(server.requests().empty());
}

// The CA bundle is read and OpenSSL set up by the first delivery, on the delivery thread, not
// by create (which runs in the function's init): create accepts a CA file that holds no
// certificate yet, and the delivery then trusts what the file holds by that time.
TEST_F(HttpsSinkTest, CreateLeavesTheTlsSetUpToTheFirstDelivery) {
  StubServer server(server_context("localhost"));
  const std::string ca_file = dir_ + "/lazy-ca.pem";
  { std::ofstream(ca_file) << "not a certificate yet\n"; }
  auto sink = create({{"post_uri", server.url("https", "localhost")}, {"ca_file", ca_file}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  EXPECT_EQ(count_logged("TLS context ready"), 0u) << "create set up TLS";

  std::filesystem::copy_file(dir_ + "/localhost.pem", ca_file,
                             std::filesystem::copy_options::overwrite_existing);
  for (int i = 0; i < 2; ++i) {
    auto outcome = sink.deliver(batch_.build());
    EXPECT_EQ(outcome.status, RELAY_OK) << outcome.error;
  }
  EXPECT_EQ(server.requests().size(), 2u);
  EXPECT_EQ(count_logged("TLS context ready"), 1u) << "set up once, by the first delivery";
}

TEST_F(HttpsSinkTest, AnUnreadableCaBundleDisablesTheSinkAtItsFirstDelivery) {
  StubServer server(server_context("localhost"));
  const std::string ca_file = dir_ + "/garbage-ca.pem";
  { std::ofstream(ca_file) << "not a certificate\n"; }
  auto sink = create({{"post_uri", server.url("https", "localhost")}, {"ca_file", ca_file}});
  ASSERT_TRUE(sink.created()) << "only a missing file is found without reading it";
  auto outcome = sink.deliver(batch_.build());
  EXPECT_EQ(outcome.status, RELAY_FATAL);
  EXPECT_NE(outcome.error.find("ca_file=" + ca_file + ": cannot load CA certificates"),
            std::string::npos)
      << outcome.error;
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(HttpsSinkTest, AnExpiredDeadlineIsRetriedBeforeTheTlsSetUp) {
  StubServer server(server_context("localhost"));
  auto sink = create(
      {{"post_uri", server.url("https", "localhost")}, {"ca_file", dir_ + "/localhost.pem"}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  auto late = sink.deliver(batch_.build(), relay::sdk::Deadline::now_unix_ms() - 1);
  EXPECT_EQ(late.status, RELAY_RETRY);
  EXPECT_NE(late.error.find("deadline"), std::string::npos) << late.error;
  EXPECT_EQ(count_logged("TLS context ready"), 0u);
  EXPECT_EQ(sink.deliver(batch_.build()).status, RELAY_OK);
  EXPECT_EQ(count_logged("TLS context ready"), 1u);
}

}  // namespace

namespace {

TEST_F(HttpSinkTest, EveryRequestCarriesTheBatchIdTheSameOnARetry) {
  StubServer server;
  auto sink = create({{"post_uri", server.url()}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  server.respond(503);
  EXPECT_EQ(sink.deliver(batch_.build()).status, RELAY_RETRY);
  server.respond(200);
  EXPECT_TRUE(sink.deliver(batch_.build()).ok());
  batch_.id("fedcba9876543210fedcba9876543210");
  EXPECT_TRUE(sink.deliver(batch_.build()).ok());
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].headers.get("X-Telemetry-Relay-Batch-Id", ""),
            sdk_testing::BatchBuilder::kDefaultId);
  EXPECT_EQ(requests[1].headers.get("X-Telemetry-Relay-Batch-Id", ""),
            sdk_testing::BatchBuilder::kDefaultId);
  EXPECT_EQ(requests[2].headers.get("X-Telemetry-Relay-Batch-Id", ""),
            "fedcba9876543210fedcba9876543210");
}

TEST_F(HttpSinkTest, ABatchFromAnAbi10HostHasNoIdHeaderAndGetsNoFeedback) {
  StubServer server;
  server.respond(429, "", {{"Retry-After", "5"}});
  auto sink = create({{"post_uri", server.url()}});
  ASSERT_TRUE(sink.created());
  relay_batch old = batch_.build();
  old.struct_size = offsetof(relay_batch, batch_id);  // what a 1.0 host builds
  relay_deliver_feedback untouched{};
  untouched.struct_size = sizeof(untouched);
  old.feedback = &untouched;  // beyond struct_size: the plugin must not write it
  const auto outcome = sink.deliver(old);
  EXPECT_EQ(outcome.status, RELAY_RETRY);
  EXPECT_EQ(untouched.retry_after_ms, 0u);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_FALSE(requests[0].headers.has("X-Telemetry-Relay-Batch-Id"));
}

TEST_F(HttpSinkTest, TheBatchIdHeaderCannotBeConfigured) {
  auto sink =
      create({{"post_uri", "http://127.0.0.1:9/"}, {"header_x_telemetry_relay_batch_id", "mine"}});
  EXPECT_FALSE(sink.created());
  EXPECT_NE(sink.create_outcome().error.find("x-telemetry-relay-batch-id"), std::string::npos)
      << sink.create_outcome().error;
}

TEST_F(HttpSinkTest, RetryAfterOf429And503IsHandedToTheHost) {
  StubServer server;
  auto sink = create({{"post_uri", server.url()}});
  ASSERT_TRUE(sink.created());

  server.respond(429, "slow down", {{"Retry-After", "7"}});
  auto outcome = sink.deliver(batch_.build());
  EXPECT_EQ(outcome.status, RELAY_RETRY);
  EXPECT_EQ(outcome.retry_after_ms, 7000u);
  EXPECT_NE(outcome.error.find("HTTP 429"), std::string::npos) << outcome.error;

  const Poco::Timestamp in_30s = Poco::Timestamp() + Poco::Timespan(30, 0);
  server.respond(503, "",
                 {{"Retry-After",
                   Poco::DateTimeFormatter::format(in_30s, Poco::DateTimeFormat::HTTP_FORMAT)}});
  outcome = sink.deliver(batch_.build());
  EXPECT_EQ(outcome.status, RELAY_RETRY);
  EXPECT_GT(outcome.retry_after_ms, 20000u);
  EXPECT_LE(outcome.retry_after_ms, 30000u);

  server.respond(503, "", {{"Retry-After", "86400"}});  // a day: capped
  EXPECT_EQ(sink.deliver(batch_.build()).retry_after_ms, relay::http::kMaxRetryAfterMs);

  server.respond(500, "", {{"Retry-After", "7"}});  // not a status that defines it
  outcome = sink.deliver(batch_.build());
  EXPECT_EQ(outcome.status, RELAY_RETRY);
  EXPECT_EQ(outcome.retry_after_ms, 0u);

  server.respond(429, "", {{"Retry-After", "soon"}});
  outcome = sink.deliver(batch_.build());
  EXPECT_EQ(outcome.status, RELAY_RETRY);
  EXPECT_EQ(outcome.retry_after_ms, 0u);
}

TEST(RetryAfter, DeltaSeconds) {
  const Poco::Timestamp now;
  EXPECT_EQ(relay::http::parse_retry_after_ms("5", now), 5000u);
  EXPECT_EQ(relay::http::parse_retry_after_ms(" 3\t", now), 3000u);
  EXPECT_EQ(relay::http::parse_retry_after_ms("0", now), 0u);
  EXPECT_EQ(relay::http::parse_retry_after_ms("60", now), 60000u);
  EXPECT_EQ(relay::http::parse_retry_after_ms("61", now), 60000u);
  EXPECT_EQ(relay::http::parse_retry_after_ms("120", now, 1000000), 120000u);
}

TEST(RetryAfter, HugeValuesAreCapped) {
  const Poco::Timestamp now;
  EXPECT_EQ(relay::http::parse_retry_after_ms("18446744073709551615", now), 60000u);
  EXPECT_EQ(relay::http::parse_retry_after_ms("99999999999999999999999999", now), 60000u);
  EXPECT_EQ(relay::http::parse_retry_after_ms("18446744073709552", now, UINT64_MAX),
            UINT64_MAX);  // seconds * 1000 would overflow: the cap, not a wrapped value
  EXPECT_EQ(relay::http::parse_retry_after_ms("Fri, 31 Dec 9999 23:59:59 GMT", now), 60000u);
}

TEST(RetryAfter, HttpDatesInEveryAllowedForm) {
  const Poco::Timestamp now;
  const Poco::Timestamp later = now + Poco::Timespan(20, 0);
  for (const std::string* format :
       {&Poco::DateTimeFormat::HTTP_FORMAT, &Poco::DateTimeFormat::RFC850_FORMAT,
        &Poco::DateTimeFormat::ASCTIME_FORMAT}) {
    const std::string text = Poco::DateTimeFormatter::format(later, *format);
    const uint64_t ms = relay::http::parse_retry_after_ms(text, now);
    EXPECT_GT(ms, 18000u) << text;
    EXPECT_LE(ms, 20000u) << text;
  }
  EXPECT_EQ(relay::http::parse_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", now), 0u)
      << "a date in the past means now";
}

TEST(RetryAfter, GarbageIsNoHint) {
  const Poco::Timestamp now;
  for (const char* value : {"", "   ", "-5", "+5", "1.5", "5s", "soon", "0x10", "Wed, 99 Foo",
                            "Wed, 21 Oct 2015 07:28:00", "\r\n5"}) {
    EXPECT_EQ(relay::http::parse_retry_after_ms(value, now), 0u) << value;
  }
  EXPECT_EQ(relay::http::parse_retry_after_ms(std::string(1000, '9'), now), 0u)
      << "an absurdly long value is ignored, not parsed";
}

TEST(CaBundle, SslCertFileWins) {
  const auto choice = relay::http::choose_ca_bundle(
      "/custom/ca.pem", relay::http::kCaBundleCandidates, [](const std::string&) { return true; });
  EXPECT_EQ(choice.source, relay::http::CaBundleChoice::Source::kEnvironment);
  EXPECT_EQ(choice.file, "/custom/ca.pem");
}

TEST(CaBundle, FirstExistingCandidateInOrder) {
  using Source = relay::http::CaBundleChoice::Source;
  auto only = [](std::set<std::string> present) {
    return [present](const std::string& path) { return present.count(path) > 0; };
  };
  // Amazon Linux first (where Lambda runs), even when a Debian bundle exists too.
  auto choice = relay::http::choose_ca_bundle(
      nullptr, relay::http::kCaBundleCandidates,
      only({"/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/certs/ca-certificates.crt"}));
  EXPECT_EQ(choice.source, Source::kDiscovered);
  EXPECT_EQ(choice.file, "/etc/pki/tls/certs/ca-bundle.crt");
  choice = relay::http::choose_ca_bundle("", relay::http::kCaBundleCandidates,
                                         only({"/etc/ssl/certs/ca-certificates.crt"}));
  EXPECT_EQ(choice.file, "/etc/ssl/certs/ca-certificates.crt");
  choice = relay::http::choose_ca_bundle(nullptr, relay::http::kCaBundleCandidates,
                                         only({"/etc/ssl/cert.pem"}));
  EXPECT_EQ(choice.file, "/etc/ssl/cert.pem");
  choice = relay::http::choose_ca_bundle(nullptr, relay::http::kCaBundleCandidates, only({}));
  EXPECT_EQ(choice.source, Source::kOpenSslDefaults);
  EXPECT_TRUE(choice.file.empty());
}

TEST(CaBundle, TheRealFilesystemCheckRejectsFoldersAndMissingFiles) {
  const std::string_view candidates[] = {"/nonexistent/ca.pem", "/etc",
                                         RELAY_SOURCE_DIR "/README.md"};
  const auto choice = relay::http::choose_ca_bundle(nullptr, candidates);
  EXPECT_EQ(choice.file, RELAY_SOURCE_DIR "/README.md");
}

}  // namespace

namespace {

TEST(RedactedUri, ShowsOnlySchemeHostAndPort) {
  using relay::http::redacted_uri;
  EXPECT_EQ(redacted_uri("https://u:p@h.example:8443/a?b#c"), "https://h.example:8443");
  EXPECT_EQ(redacted_uri("http://h.example"), "http://h.example");
  EXPECT_EQ(redacted_uri("http://[::1]:80/x"), "http://[::1]:80");
  EXPECT_EQ(redacted_uri("https://KEY@h.example"), "https://h.example");
  EXPECT_EQ(redacted_uri("https://u:p/w@h.example/x"), "https://h.example");
  EXPECT_EQ(redacted_uri("https://h.example:p4ss/x"), "https://h.example:<invalid port>");
  EXPECT_EQ(redacted_uri("https://h.ex%61mple/"), "https://<invalid host>");
  EXPECT_EQ(redacted_uri("https:///x"), "https://<no host>");
  EXPECT_EQ(redacted_uri("h.example/x"), std::nullopt);
  EXPECT_EQ(redacted_uri("/relative?token=x"), std::nullopt);
  EXPECT_EQ(redacted_uri("1http://h"), std::nullopt);
  EXPECT_EQ(relay::http::redacted_authority("u:p@db.example:5432/x"), "db.example:5432");
  EXPECT_EQ(relay::http::redacted_authority("ht tps://u:p@db.example/x"), "db.example");
}

}  // namespace
