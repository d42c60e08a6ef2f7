// The built http sink (librelay-sink-http.so), loaded like the host loads it and driven against
// local servers on 127.0.0.1 port 0: plain and TLS POCO servers, and raw sockets for the broken
// connections POCO's server would never produce.
#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/InflatingStream.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/ServerSocket.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <telemetry_relay/testing.hpp>
#include <vector>

#include "http_test_servers.hpp"

namespace {

namespace sdk_testing = relay::sdk::testing;
using namespace std::chrono_literals;
using relay::test::ScriptedServer;
using relay::test::StubServer;

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
  void deliver_across_a_closed_connection();
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

// Two deliveries of batch_, the server closing the kept-alive connection after each.
void HttpSinkTest::deliver_across_a_closed_connection() {
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

TEST_F(HttpSinkTest, KeepAliveConnectionClosedBetweenDeliveriesIsReplacedTransparently) {
  deliver_across_a_closed_connection();
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
  deliver_across_a_closed_connection();
}

TEST_F(HttpSinkTest, GzipSendsTheBatchCompressed) {
  StubServer server;
  auto sink = create({{"post_uri", server.url()}, {"gzip", "true"}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  EXPECT_TRUE(sink.deliver(batch_.build()).ok());
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].headers.get("Content-Encoding", ""), "gzip");
  std::istringstream compressed(requests[0].body);
  Poco::InflatingInputStream inflate(compressed, Poco::InflatingStreamBuf::STREAM_GZIP);
  std::string body;
  Poco::StreamCopier::copyToString(inflate, body);
  EXPECT_EQ(body, batch_json());
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

TEST_F(HttpSinkTest, AReservedHeaderFailsCreate) {
  auto reserved = create({{"post_uri", "http://127.0.0.1:9/"}, {"header_content_length", "1"}});
  EXPECT_FALSE(reserved.created());
  EXPECT_NE(reserved.create_outcome().error.find("header_content_length"), std::string::npos);
  auto encoding = create({{"post_uri", "http://127.0.0.1:9/"}, {"header_content_encoding", "br"}});
  EXPECT_FALSE(encoding.created()) << "the sink says whether the body is gzipped";
  EXPECT_NE(encoding.create_outcome().error.find("header_content_encoding"), std::string::npos);
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
  // What the key table lets through (an absolute http(s) URI with a host) and POCO cannot use.
  struct Case {
    std::string uri;
    std::string shown;
  };
  for (const Case& c : {
           Case{"http://user:S3CR3T@collector.example:99999/in", "http://collector.example:99999"},
           Case{"https://user:S3/CR3T@collector.example/in", "https://collector.example"},
           Case{"https://user:S3?CR3T@collector.example/in", "https://collector.example"},
           Case{"https://S3CR3T@/in?token=S3CR3T", "https://<no host>"},
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

// What the key table refuses (another scheme, no host, not a URI): post_uri is secret, so its
// one error line shows no part of it, and the sink discards as without post_uri.
TEST_F(HttpSinkTest, APostUriTheKeyTableRefusesIsNamedRedactedAndDiscards) {
  for (const std::string uri :
       {"htps://user:S3CR3T@collector.example/in?token=S3CR3T", "https:///in?token=S3CR3T",
        "ftp://S3CR3T@collector.example/in#S3CR3T", "collector.example/in?token=S3CR3T"}) {
    host_.clear();
    auto sink = create({{"post_uri", uri}});
    ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
    EXPECT_TRUE(host_.logged("post_uri=<redacted>: ")) << uri;
    EXPECT_FALSE(host_.logged("S3CR3T")) << uri;
    const auto outcome = sink.deliver(batch_.build());
    EXPECT_TRUE(outcome.ok() && outcome.discarded) << uri;
  }
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
  // Tab and DEL pass the key table (text) and the toolkit refuses them, failing create.
  for (const std::string& value : std::vector<std::string>{"s3cr3t\tkey", "s3cr3t\x7fkey"}) {
    auto sink = create({{"post_uri", "http://127.0.0.1:9/"}, {"header_x_api_key", value}});
    ASSERT_FALSE(sink.created());
    const std::string& error = sink.create_outcome().error;
    EXPECT_NE(error.find("x-api-key"), std::string::npos) << error;
    EXPECT_NE(error.find("control character"), std::string::npos) << error;
    EXPECT_EQ(error.find("s3cr3t"), std::string::npos) << error;
  }
  // Other control characters the key table refuses first: one error line naming the key, never
  // the value, and the header is not sent.
  StubServer server;
  for (const std::string& value :
       std::vector<std::string>{"s3cr3t\x1b[2Jkey", "s3cr3t\x01", std::string("s3cr3t\0key", 10),
                                "s3cr3t\r\nX-Evil: 1"}) {
    host_.clear();
    auto sink = create({{"post_uri", server.url()}, {"header_x_api_key", value}});
    ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
    ASSERT_EQ(host_.count(RELAY_LOG_ERROR), 1u);
    EXPECT_TRUE(host_.logged("header_x_api_key=<redacted>: text with control characters"));
    EXPECT_FALSE(host_.logged("s3cr3t"));
    EXPECT_TRUE(sink.deliver(batch_.build()).ok());
    EXPECT_FALSE(server.requests().back().headers.has("X-Api-Key"));
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

// The key table (kConfigKeys) checks the values before the sink sees them: one error line
// naming key, value and the default used instead (RELAY_STRICT makes it an init error).
TEST_F(HttpSinkTest, OutOfRangeValuesAreNamedAndReplacedByTheDefault) {
  ScriptedServer server({});
  auto zero = create({{"post_uri", server.url()}, {"connect_timeout_ms", "0"}});
  ASSERT_TRUE(zero.created()) << zero.create_outcome().error;
  EXPECT_TRUE(host_.logged("connect_timeout_ms=0: not an integer in [1, 60000]; using 1000"));
  auto text = create({{"post_uri", server.url()}, {"request_timeout_ms", "5s"}});
  ASSERT_TRUE(text.created()) << text.create_outcome().error;
  EXPECT_TRUE(host_.logged("request_timeout_ms=5s: not an integer in [1, 300000]; using 5000"));
  EXPECT_TRUE(text.deliver(batch_.build()).ok());
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

  // A server whose certificate (issued for certificate_host) the sink must not trust: the
  // delivery is retried with a TLS error and the server never sees a request.
  void expect_tls_refusal(const std::string& certificate_host, sdk_testing::KeyValues config) {
    StubServer server(server_context(certificate_host));
    config.emplace_back("post_uri", server.url("https", "localhost"));
    auto sink = create(config);
    ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
    auto outcome = sink.deliver(batch_.build());
    EXPECT_EQ(outcome.status, RELAY_RETRY);
    EXPECT_NE(outcome.error.find("TLS"), std::string::npos) << outcome.error;
    EXPECT_TRUE(server.requests().empty());
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
  expect_tls_refusal("localhost", {});
}

TEST_F(HttpsSinkTest, CertificateForAnotherHostIsRejected) {
  expect_tls_refusal("other", {{"ca_file", dir_ + "/other.pem"}});
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

  // A day: passed through as given, the host caps it (one cap, in the host's outlet).
  server.respond(503, "", {{"Retry-After", "86400"}});
  EXPECT_EQ(sink.deliver(batch_.build()).retry_after_ms, 86400000u);

  server.respond(500, "", {{"Retry-After", "7"}});  // not a status that defines it
  outcome = sink.deliver(batch_.build());
  EXPECT_EQ(outcome.status, RELAY_RETRY);
  EXPECT_EQ(outcome.retry_after_ms, 0u);

  server.respond(429, "", {{"Retry-After", "soon"}});
  outcome = sink.deliver(batch_.build());
  EXPECT_EQ(outcome.status, RELAY_RETRY);
  EXPECT_EQ(outcome.retry_after_ms, 0u);
}

}  // namespace
