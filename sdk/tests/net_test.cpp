// The network toolkit (telemetry_relay/net/*, sdk/src/net) on its own, linked into this test with
// its TLS build: classification, Retry-After, gzip, headers and redaction, the wall-clock
// deadline. The http sink's tests (plugins/http/tests) drive the same code through a plugin.
#include <Poco/DateTimeFormatter.h>
#include <Poco/InflatingStream.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/StreamCopier.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <set>
#include <sstream>
#include <string>
#include <telemetry_relay/net/client.hpp>
#include <telemetry_relay/testing.hpp>
#include <thread>
#include <tuple>
#include <vector>

#include "http_test_servers.hpp"
#include "tls_select.hpp"

namespace {

namespace net = relay::sdk::net;
namespace sdk_testing = relay::sdk::testing;
using namespace std::chrono_literals;
using relay::sdk::Status;
using relay::test::ScriptedServer;
using relay::test::StubServer;

constexpr std::string_view kBody =
    R"([{"time":"2024-01-01T00:00:00.000Z","type":"function","record":"hi"}])";

net::ClientOptions options_for(const std::string& uri) {
  net::ClientOptions options;
  options.uri = uri;
  options.uri_key = "endpoint";
  return options;
}

relay::sdk::Deadline in_10s() { return relay::sdk::Deadline::in(10s); }

// Every final status, judged by the one table (response.hpp's header comment).
TEST(Classify, EveryFinalStatusByTheTable) {
  for (int status = 200; status <= 599; ++status) {
    Poco::Net::HTTPResponse response(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
    const net::Attempt attempt = net::classify(response, "body", Poco::Timestamp());
    const Status expected = status < 300                                      ? Status::kOk
                            : status == 408 || status == 429 || status >= 500 ? Status::kRetry
                                                                              : Status::kDrop;
    EXPECT_EQ(attempt.status, expected) << status;
    EXPECT_EQ(attempt.too_large, status == 413) << status;
    EXPECT_EQ(attempt.http_status, status);
    EXPECT_EQ(attempt.error.empty(), status < 300) << status << ": " << attempt.error;
  }
}

TEST(Classify, RetryAfterOnlyFor429And503AndPassedThroughUncapped) {
  const Poco::Timestamp now;
  for (int status : {429, 503, 500, 408, 400}) {
    Poco::Net::HTTPResponse response(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
    response.set("Retry-After", "3600");
    const uint64_t expected = status == 429 || status == 503 ? 3600000u : 0u;
    EXPECT_EQ(net::classify(response, "", now).retry_after_ms, expected) << status;
  }
}

// OTLP's rule (a sink's list): exactly the listed statuses retried, each with its Retry-After;
// every other 4xx and 5xx dropped; 2xx, 3xx and 413 as by default.
TEST(Classify, ASinksRetryStatusesReplaceTheDefaultRule) {
  const std::vector<int> otlp = {429, 502, 503, 504};
  const net::AnswerRules rules{otlp};
  const Poco::Timestamp now;
  for (int status = 200; status <= 599; ++status) {
    Poco::Net::HTTPResponse response(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
    response.set("Retry-After", "7");
    const net::Attempt attempt = net::classify(response, "body", now, rules);
    const bool retried = status == 429 || status == 502 || status == 503 || status == 504;
    const Status expected = status < 300 ? Status::kOk : retried ? Status::kRetry : Status::kDrop;
    EXPECT_EQ(attempt.status, expected) << status;
    EXPECT_EQ(attempt.too_large, status == 413) << status;
    EXPECT_EQ(attempt.retry_after_ms, retried ? 7000u : 0u) << status;
    EXPECT_EQ(attempt.error.empty(), status < 300) << status;
  }
}

TEST(Classify, TheContentTypeIsKeptPrintableAndBounded) {
  Poco::Net::HTTPResponse response(Poco::Net::HTTPResponse::HTTP_OK);
  EXPECT_EQ(net::classify(response, "", Poco::Timestamp()).content_type, "");
  response.setContentType("application/x-protobuf");
  EXPECT_EQ(net::classify(response, "", Poco::Timestamp()).content_type, "application/x-protobuf");
  response.setStatus(Poco::Net::HTTPResponse::HTTP_BAD_GATEWAY);
  response.setContentType("text/html\x01" + std::string(500, 'x'));
  const std::string shown = net::classify(response, "", Poco::Timestamp()).content_type;
  EXPECT_EQ(shown.rfind("text/html?", 0), 0u) << shown;
  EXPECT_LE(shown.size(), net::kContentTypeBytes + 3);
}

// A 2xx body is kept only when asked, up to the limit, and marked truncated beyond it.
TEST(HttpClient, KeepsTheSuccessBodyUpToTheLimit) {
  sdk_testing::FakeHost host;
  StubServer server;
  const std::string answer = R"({"partialSuccess":{"rejectedLogRecords":"2","errorMessage":"x"}})";
  server.respond(200, answer, {{"Content-Type", "application/json"}});

  net::HttpClient plain(relay::sdk::Host(host), options_for(server.url()));
  net::Attempt attempt = plain.post(kBody, "id1", in_10s());
  EXPECT_EQ(attempt.status, Status::kOk);
  EXPECT_EQ(attempt.body, "") << "not kept by default";
  EXPECT_FALSE(attempt.body_truncated);
  EXPECT_EQ(attempt.content_type, "application/json");

  net::ClientOptions options = options_for(server.url());
  options.max_success_body = 64 * 1024;
  net::HttpClient keeping(relay::sdk::Host(host), options);
  attempt = keeping.post(kBody, "id1", in_10s());
  EXPECT_EQ(attempt.status, Status::kOk);
  EXPECT_EQ(attempt.body, answer);
  EXPECT_FALSE(attempt.body_truncated);

  options.max_success_body = 10;
  net::HttpClient short_limit(relay::sdk::Host(host), options);
  for (int i = 0; i < 2; ++i) {  // the rest was drained: the connection carries the next one
    attempt = short_limit.post(kBody, "id1", in_10s());
    EXPECT_EQ(attempt.status, Status::kOk);
    EXPECT_EQ(attempt.body, answer.substr(0, 10));
    EXPECT_TRUE(attempt.body_truncated);
  }

  // Larger than anything drained: cut, and the connection abandoned, never read to the end.
  const std::string huge(300 * 1024, 'h');
  server.respond(200, huge, {{"Content-Type", "application/x-protobuf"}});
  options.max_success_body = net::kMaxSuccessBody;
  net::HttpClient bounded(relay::sdk::Host(host), options);
  attempt = bounded.post(kBody, "id1", in_10s());
  EXPECT_EQ(attempt.status, Status::kOk);
  EXPECT_EQ(attempt.body, huge.substr(0, net::kMaxSuccessBody));
  EXPECT_TRUE(attempt.body_truncated);
  EXPECT_EQ(attempt.content_type, "application/x-protobuf");

  // Error statuses still quote only the excerpt, never the kept body.
  server.respond(500, huge);
  attempt = bounded.post(kBody, "id1", in_10s());
  EXPECT_EQ(attempt.status, Status::kRetry);
  EXPECT_TRUE(attempt.body.empty());
  EXPECT_LT(attempt.error.size(), 400u);
}

TEST(HttpClient, RetriesOnlyTheListedStatusesWithTheirRetryAfter) {
  sdk_testing::FakeHost host;
  StubServer server;
  net::ClientOptions options = options_for(server.url());
  options.retry_statuses = {429, 502, 503, 504};
  net::HttpClient client(relay::sdk::Host(host), options);
  for (auto [status, expected, wait] :
       {std::tuple{429, Status::kRetry, 5000u}, std::tuple{502, Status::kRetry, 5000u},
        std::tuple{503, Status::kRetry, 5000u}, std::tuple{504, Status::kRetry, 5000u},
        std::tuple{500, Status::kDrop, 0u}, std::tuple{408, Status::kDrop, 0u},
        std::tuple{400, Status::kDrop, 0u}, std::tuple{200, Status::kOk, 0u}}) {
    server.respond(status, "why", {{"Retry-After", "5"}});
    const net::Attempt attempt = client.post(kBody, "id1", in_10s());
    EXPECT_EQ(attempt.status, expected) << status << ": " << attempt.error;
    EXPECT_EQ(attempt.retry_after_ms, wait) << status;
  }
  // Transport errors stay retried.
  uint16_t port;
  {
    Poco::Net::ServerSocket probe(Poco::Net::SocketAddress("127.0.0.1", 0));
    port = probe.address().port();
  }
  net::ClientOptions refused_options =
      options_for("http://127.0.0.1:" + std::to_string(port) + "/");
  refused_options.retry_statuses = options.retry_statuses;
  net::HttpClient refused(relay::sdk::Host(host), refused_options);
  EXPECT_EQ(refused.post(kBody, "id1", in_10s()).status, Status::kRetry);
}

TEST(HttpClient, RejectsAnswerRulesItCannotHonour) {
  sdk_testing::FakeHost host;
  for (int status : {413, 200, 302, 399, 600, 0}) {
    net::ClientOptions options = options_for("http://127.0.0.1:9/");
    options.retry_statuses = {503, status};
    EXPECT_THROW(net::HttpClient(relay::sdk::Host(host), options), std::invalid_argument) << status;
  }
  net::ClientOptions options = options_for("http://127.0.0.1:9/");
  options.max_success_body = net::kMaxSuccessBody + 1;
  EXPECT_THROW(net::HttpClient(relay::sdk::Host(host), options), std::invalid_argument);
}

// The client against real servers: the statuses, 101 and a transport error.
TEST(HttpClient, ClassifiesWhatTheServerAnswers) {
  sdk_testing::FakeHost host;
  StubServer server;
  net::HttpClient client(relay::sdk::Host(host), options_for(server.url()));
  for (auto [status, expected] : {std::pair{200, Status::kOk}, std::pair{204, Status::kOk},
                                  std::pair{408, Status::kRetry}, std::pair{429, Status::kRetry},
                                  std::pair{503, Status::kRetry}, std::pair{413, Status::kDrop},
                                  std::pair{404, Status::kDrop}, std::pair{308, Status::kDrop}}) {
    server.respond(status, status == 204 ? "" : "why");
    const net::Attempt attempt = client.post(kBody, "id1", in_10s());
    EXPECT_EQ(attempt.status, expected) << status << ": " << attempt.error;
    EXPECT_EQ(attempt.http_status, status);
  }
  ScriptedServer switching({{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"}});
  net::HttpClient other(relay::sdk::Host(host), options_for(switching.url()));
  EXPECT_EQ(other.post(kBody, "id1", in_10s()).status, Status::kRetry);

  uint16_t port;
  {
    Poco::Net::ServerSocket probe(Poco::Net::SocketAddress("127.0.0.1", 0));
    port = probe.address().port();
  }
  net::HttpClient refused(relay::sdk::Host(host),
                          options_for("http://127.0.0.1:" + std::to_string(port) + "/"));
  const net::Attempt attempt = refused.post(kBody, "id1", in_10s());
  EXPECT_EQ(attempt.status, Status::kRetry);
  EXPECT_NE(attempt.error.find("refused"), std::string::npos) << attempt.error;
}

std::string gunzip(const std::string& compressed) {
  std::istringstream in(compressed);
  Poco::InflatingInputStream inflate(in, Poco::InflatingStreamBuf::STREAM_GZIP);
  std::string out;
  Poco::StreamCopier::copyToString(inflate, out);
  return out;
}

TEST(Gzip, TheBodyArrivesCompressedAndInflatesToTheOriginal) {
  sdk_testing::FakeHost host;
  StubServer server;
  net::ClientOptions options = options_for(server.url());
  options.gzip = true;
  net::HttpClient client(relay::sdk::Host(host), options);
  std::string large(kBody);
  for (int i = 0; i < 2000; ++i) large += std::string(100, 'x') + std::to_string(i);
  for (std::string_view body : {kBody, std::string_view(large)}) {
    EXPECT_EQ(client.post(body, "id1", in_10s()).status, Status::kOk);
    const auto recorded = server.requests().back();
    EXPECT_EQ(recorded.headers.get("Content-Encoding", ""), "gzip");
    EXPECT_EQ(recorded.content_type, "application/json");
    EXPECT_EQ(gunzip(recorded.body), body);
    if (body.size() > 10000) {
      EXPECT_LT(recorded.body.size(), body.size() / 10);
    }
  }
  EXPECT_EQ(gunzip(net::gzip("")), "");
}

TEST(Gzip, OffByDefault) {
  sdk_testing::FakeHost host;
  StubServer server;
  net::HttpClient client(relay::sdk::Host(host), options_for(server.url()));
  EXPECT_EQ(client.post(kBody, "id1", in_10s()).status, Status::kOk);
  EXPECT_FALSE(server.requests().back().headers.has("Content-Encoding"));
  EXPECT_EQ(server.requests().back().body, kBody);
}

// Header values and URI credentials are sent, and never appear in a log line or an error, on
// success or failure, at every level.
TEST(Headers, SecretsAreSentButNeverLogged) {
  sdk_testing::FakeHost host;
  StubServer server;
  net::ClientOptions options = options_for(
      "http://user:S3CR3T-PASS@127.0.0.1:" + std::to_string(server.port()) + "/in?token=S3CR3T-Q");
  options.headers = {{"x-api-key", "S3CR3T-KEY"}};
  net::HttpClient client(relay::sdk::Host(host), options);
  EXPECT_EQ(client.destination(), "http://127.0.0.1:" + std::to_string(server.port()));
  server.respond(500, "no");
  const net::Attempt failed = client.post(kBody, "id1", in_10s());
  EXPECT_EQ(failed.status, Status::kRetry);
  EXPECT_EQ(failed.error.find("S3CR3T"), std::string::npos) << failed.error;
  server.respond(200);
  EXPECT_EQ(client.post(kBody, "id1", in_10s()).status, Status::kOk);
  const auto recorded = server.requests().back();
  EXPECT_EQ(recorded.headers.get("x-api-key", ""), "S3CR3T-KEY");
  EXPECT_EQ(recorded.headers.get("Authorization", ""), "Basic dXNlcjpTM0NSM1QtUEFTUw==");
  EXPECT_TRUE(host.logged("extra headers: x-api-key"));
  EXPECT_GT(host.count(RELAY_LOG_DEBUG), 0u);
  EXPECT_FALSE(host.logged("S3CR3T"));
}

TEST(Headers, FromConfigurationNamesTheKeyNeverTheValue) {
  const sdk_testing::KeyValues given = {
      {"header_x_api_key", "k"}, {"header_X_Trace", "t"}, {"other", "o"}};
  std::vector<relay_kv> kv;
  for (const auto& [k, v] : given) kv.push_back({{k.data(), k.size()}, {v.data(), v.size()}});
  const auto headers = net::headers_from_config(relay::sdk::Config(kv.data(), kv.size()));
  ASSERT_EQ(headers.size(), 2u);
  EXPECT_EQ(headers[0].name, "x-api-key");
  EXPECT_EQ(headers[1].name, "x-trace");

  for (const auto& [key, value] :
       std::vector<std::pair<std::string, std::string>>{{"header_host", "S3CR3T"},
                                                        {"header_content_encoding", "S3CR3T"},
                                                        {"header_x_key", "S3CR3T\tx"},
                                                        {"header_x_key", "S3CR3T\r\nX: y"},
                                                        {"header_x key", "S3CR3T"}}) {
    const relay_kv one{{key.data(), key.size()}, {value.data(), value.size()}};
    try {
      net::headers_from_config(relay::sdk::Config(&one, 1));
      ADD_FAILURE() << key << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find("S3CR3T"), std::string::npos) << e.what();
    }
  }
}

relay::sdk::Config config_of(const std::vector<relay_kv>& kv) {
  return relay::sdk::Config(kv.data(), kv.size());
}
relay_kv kv(std::string_view key, std::string_view value) {
  return {{key.data(), key.size()}, {value.data(), value.size()}};
}

TEST(ClientOptions, FromConfigReadsTheConventionalKeysAndKeepsDefaultsForAbsentOnes) {
  const net::ClientOptions bare =
      net::ClientOptions::from_config(config_of({kv("endpoint", "http://h.example/")}), "endpoint");
  EXPECT_EQ(bare.uri, "http://h.example/");
  EXPECT_EQ(bare.uri_key, "endpoint");
  EXPECT_EQ(bare.connect_timeout_ms, 1000);
  EXPECT_EQ(bare.request_timeout_ms, 5000);
  EXPECT_FALSE(bare.gzip);
  EXPECT_TRUE(bare.headers.empty());

  const net::ClientOptions full = net::ClientOptions::from_config(
      config_of({kv("endpoint", "https://h.example/"), kv("connect_timeout_ms", "250"),
                 kv("request_timeout_ms", "9000"), kv("ca_file", "/ca.pem"), kv("gzip", "true"),
                 kv("header_x_a", "1"), kv("cert_file", "/client.pem"),
                 kv("key_file", "/client.key")}),
      "endpoint");
  EXPECT_EQ(full.cert_file, "/client.pem");
  EXPECT_EQ(full.key_file, "/client.key");
  EXPECT_TRUE(bare.cert_file.empty() && bare.key_file.empty());
  EXPECT_EQ(full.connect_timeout_ms, 250);
  EXPECT_EQ(full.request_timeout_ms, 9000);
  EXPECT_EQ(full.ca_file, "/ca.pem");
  EXPECT_TRUE(full.gzip);
  ASSERT_EQ(full.headers.size(), 1u);
  EXPECT_EQ(full.headers[0].name, "x-a");
}

// A peer that trickles its answer a byte at a time restarts POCO's receive timeout with every
// byte, the way a Lambda freeze restarts it: only the wall-clock deadline ends the request.
class TrickleServer {
 public:
  TrickleServer() : socket_(Poco::Net::SocketAddress("127.0.0.1", 0)) {
    thread_ = std::thread([this] {
      if (!socket_.poll(Poco::Timespan(10, 0), Poco::Net::Socket::SELECT_READ)) return;
      Poco::Net::StreamSocket connection = socket_.acceptConnection();
      const std::string head = "HTTP/1.1 200 OK\r\nX-Slow: ";
      try {
        connection.sendBytes(head.data(), static_cast<int>(head.size()));
        while (!stop_) {
          connection.sendBytes("a", 1);
          std::this_thread::sleep_for(50ms);
        }
      } catch (const Poco::Exception&) {
        // The client shut the connection down.
      }
    });
  }
  ~TrickleServer() {
    stop_ = true;
    thread_.join();
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(socket_.address().port()) + "/";
  }

 private:
  Poco::Net::ServerSocket socket_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(Deadline, AWallClockDeadlineEndsARequestThatKeepsTheSocketBusy) {
  sdk_testing::FakeHost host;
  TrickleServer server;
  net::ClientOptions options = options_for(server.url());
  options.request_timeout_ms = 300000;  // never reached: each byte restarts POCO's timeout
  net::HttpClient client(relay::sdk::Host(host), options);
  const auto started = std::chrono::steady_clock::now();
  const net::Attempt attempt = client.post(kBody, "id1", relay::sdk::Deadline::in(1s));
  EXPECT_EQ(attempt.status, Status::kRetry);
  EXPECT_NE(attempt.error.find("(wall clock)"), std::string::npos) << attempt.error;
  // The header alone would take 8192 bytes * 50 ms = 7 minutes to hit POCO's limit.
  EXPECT_LT(std::chrono::steady_clock::now() - started, 60s);
}

TEST(Deadline, AnExpiredDeadlineSendsNothing) {
  sdk_testing::FakeHost host;
  StubServer server;
  net::HttpClient client(relay::sdk::Host(host), options_for(server.url()));
  const net::Attempt attempt =
      client.post(kBody, "id1", relay::sdk::Deadline(relay::sdk::Deadline::now_unix_ms() - 1));
  EXPECT_EQ(attempt.status, Status::kRetry);
  EXPECT_NE(attempt.error.find("deadline"), std::string::npos);
  EXPECT_TRUE(server.requests().empty());
}

TEST(HttpClient, AnInvalidUriNamesTheKeyWithSchemeHostAndPortOnly) {
  sdk_testing::FakeHost host;
  for (const std::string uri : {"ftp://u:S3CR3T@h.example/x", "http://u:S3/CR3T@h.example/x"}) {
    try {
      net::HttpClient client(relay::sdk::Host(host), options_for(uri));
      ADD_FAILURE() << uri;
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()).rfind("endpoint=", 0), 0u) << e.what();
      EXPECT_EQ(std::string(e.what()).find("S3"), std::string::npos) << e.what();
    }
  }
}

// A NetworkSink hands the attempt to the host: status, text, Retry-After and too-large feedback.
class ReportSink final : public net::NetworkSink {
 public:
  ReportSink(const relay::sdk::Host&, const relay::sdk::Config&) {}
  Status deliver(const relay::sdk::Batch&, relay::sdk::Deadline) override { return report(next); }
  static inline net::Attempt next;
};

TEST(NetworkSink, ReportHandsTheAttemptToTheHost) {
  static constexpr relay_sink_descriptor kDescriptor =
      relay::sdk::detail::Glue<ReportSink>::descriptor("report", "1");
  sdk_testing::FakeHost host;
  sdk_testing::BatchBuilder batch;
  batch.add(R"({"time":"t","type":"function","record":"x"})");
  auto sink = sdk_testing::SinkInstance::create(kDescriptor, host, {});
  ASSERT_TRUE(sink.created());

  ReportSink::next = {Status::kRetry, 429, "HTTP 429 Too Many Requests", false, false, UINT64_MAX};
  auto outcome = sink.deliver(batch.build());
  EXPECT_EQ(outcome.status, RELAY_RETRY);
  EXPECT_EQ(outcome.error, "HTTP 429 Too Many Requests");
  EXPECT_EQ(outcome.retry_after_ms, static_cast<uint64_t>(INT64_MAX)) << "saturated, not wrapped";

  ReportSink::next = {Status::kDrop, 413, "HTTP 413", false, true, 0};
  outcome = sink.deliver(batch.build());
  EXPECT_EQ(outcome.status, RELAY_DROP);
  EXPECT_TRUE(outcome.too_large);

  ReportSink::next = {Status::kOk, 200, "", false, false, 0};
  EXPECT_TRUE(sink.deliver(batch.build()).ok());
}

TEST(Batch, EventsAsASpan) {
  sdk_testing::BatchBuilder builder;
  builder.add(R"({"time":"t1","type":"function","record":"a"})")
      .add(R"({"time":"t2","type":"platform.start","record":{}})");
  const relay::sdk::Batch batch(builder.build());
  const std::span<const relay_event> events = batch.events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(relay::sdk::Event(events[1]).type(), "platform.start");
  EXPECT_EQ(relay::sdk::Event(events.front()).time(), "t1");
}

TEST(RetryAfter, DeltaSeconds) {
  const Poco::Timestamp now;
  EXPECT_EQ(net::parse_retry_after_ms("5", now), 5000u);
  EXPECT_EQ(net::parse_retry_after_ms(" 3\t", now), 3000u);
  EXPECT_EQ(net::parse_retry_after_ms("0", now), 0u);
  EXPECT_EQ(net::parse_retry_after_ms("60", now), 60000u);
  EXPECT_EQ(net::parse_retry_after_ms("61", now), 61000u) << "not capped: the host caps";
  EXPECT_EQ(net::parse_retry_after_ms("86400", now), 86400000u);
}

TEST(RetryAfter, HugeValuesSaturateInsteadOfWrapping) {
  const Poco::Timestamp now;
  EXPECT_EQ(net::parse_retry_after_ms("18446744073709551", now), 18446744073709551000u);
  EXPECT_EQ(net::parse_retry_after_ms("18446744073709552", now), UINT64_MAX)
      << "seconds * 1000 would overflow";
  EXPECT_EQ(net::parse_retry_after_ms("18446744073709551615", now), UINT64_MAX);
  EXPECT_EQ(net::parse_retry_after_ms("99999999999999999999999999", now), UINT64_MAX);
  const uint64_t far = net::parse_retry_after_ms("Fri, 31 Dec 9999 23:59:59 GMT", now);
  EXPECT_GT(far, uint64_t{7900} * 365 * 24 * 3600 * 1000) << "a date in 9999, as given";
}

TEST(RetryAfter, HttpDatesInEveryAllowedForm) {
  const Poco::Timestamp now;
  const Poco::Timestamp later = now + Poco::Timespan(20, 0);
  for (const std::string* format :
       {&Poco::DateTimeFormat::HTTP_FORMAT, &Poco::DateTimeFormat::RFC850_FORMAT,
        &Poco::DateTimeFormat::ASCTIME_FORMAT}) {
    const std::string text = Poco::DateTimeFormatter::format(later, *format);
    const uint64_t ms = net::parse_retry_after_ms(text, now);
    EXPECT_GT(ms, 18000u) << text;
    EXPECT_LE(ms, 20000u) << text;
  }
  EXPECT_EQ(net::parse_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", now), 0u)
      << "a date in the past means now";
}

TEST(RetryAfter, GarbageIsNoHint) {
  const Poco::Timestamp now;
  for (const char* value : {"", "   ", "-5", "+5", "1.5", "5s", "soon", "0x10", "Wed, 99 Foo",
                            "Wed, 21 Oct 2015 07:28:00", "\r\n5"}) {
    EXPECT_EQ(net::parse_retry_after_ms(value, now), 0u) << value;
  }
  EXPECT_EQ(net::parse_retry_after_ms(std::string(1000, '9'), now), 0u)
      << "an absurdly long value is ignored, not parsed";
}

TEST(CaBundle, SslCertFileWins) {
  const auto choice = net::choose_ca_bundle("/custom/ca.pem", net::kCaBundleCandidates,
                                            [](const std::string&) { return true; });
  EXPECT_EQ(choice.source, net::CaBundleChoice::Source::kEnvironment);
  EXPECT_EQ(choice.file, "/custom/ca.pem");
}

TEST(CaBundle, FirstExistingCandidateInOrder) {
  using Source = net::CaBundleChoice::Source;
  auto only = [](std::set<std::string> present) {
    return [present](const std::string& path) { return present.count(path) > 0; };
  };
  // Amazon Linux first (where Lambda runs), even when a Debian bundle exists too.
  auto choice = net::choose_ca_bundle(
      nullptr, net::kCaBundleCandidates,
      only({"/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/certs/ca-certificates.crt"}));
  EXPECT_EQ(choice.source, Source::kDiscovered);
  EXPECT_EQ(choice.file, "/etc/pki/tls/certs/ca-bundle.crt");
  choice = net::choose_ca_bundle("", net::kCaBundleCandidates,
                                 only({"/etc/ssl/certs/ca-certificates.crt"}));
  EXPECT_EQ(choice.file, "/etc/ssl/certs/ca-certificates.crt");
  choice = net::choose_ca_bundle(nullptr, net::kCaBundleCandidates, only({"/etc/ssl/cert.pem"}));
  EXPECT_EQ(choice.file, "/etc/ssl/cert.pem");
  choice = net::choose_ca_bundle(nullptr, net::kCaBundleCandidates, only({}));
  EXPECT_EQ(choice.source, Source::kOpenSslDefaults);
  EXPECT_TRUE(choice.file.empty());
}

TEST(CaBundle, TheRealFilesystemCheckRejectsFoldersAndMissingFiles) {
  const std::string_view candidates[] = {"/nonexistent/ca.pem", "/etc",
                                         RELAY_SOURCE_DIR "/README.md"};
  const auto choice = net::choose_ca_bundle(nullptr, candidates);
  EXPECT_EQ(choice.file, RELAY_SOURCE_DIR "/README.md");
}

}  // namespace

namespace {

TEST(RedactedUri, ShowsOnlySchemeHostAndPort) {
  using net::redacted_uri;
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
  EXPECT_EQ(net::redacted_authority("u:p@db.example:5432/x"), "db.example:5432");
  EXPECT_EQ(net::redacted_authority("ht tps://u:p@db.example/x"), "db.example");
}

}  // namespace

namespace {

// The plugin's entry picks the TLS build when any destination is https (tls_loader.cpp).
struct Selection {
  static constexpr relay_config_key kKeys[] = {
      relay::sdk::key::uri("endpoint", "", "http|https", "base"),
      relay::sdk::key::uri("logs_endpoint", "", "https|http", "logs"),
      relay::sdk::key::uri("plain_only", "", "http", "never TLS"),
      relay::sdk::key::string("ca_file", "", "not a destination"),
  };
  relay_sink_descriptor descriptor{};
  Selection() {
    descriptor.config_keys = kKeys;
    descriptor.config_key_count = std::size(kKeys);
  }
  bool wants_tls(const std::vector<std::pair<std::string, std::string>>& given,
                 std::string_view uri_key = "") const {
    std::vector<relay_kv> entries;
    for (const auto& [k, v] : given) entries.push_back(kv(k, v));
    return relay::sdk::net::detail::wants_tls(descriptor, uri_key, entries.data(), entries.size());
  }
};

TEST(TlsSelection, AnyDeclaredUriKeyWithAnHttpsValuePicksTheTlsBuild) {
  const Selection sink;
  EXPECT_FALSE(sink.wants_tls({}));
  EXPECT_FALSE(sink.wants_tls({{"endpoint", "http://a/"}, {"logs_endpoint", "http://b/"}}));
  EXPECT_TRUE(sink.wants_tls({{"endpoint", "https://a/"}}));
  EXPECT_TRUE(sink.wants_tls({{"endpoint", "http://a/"}, {"logs_endpoint", "https://b/"}}));
  EXPECT_TRUE(sink.wants_tls({{"logs_endpoint", " HTTPS://b/"}})) << "case and blanks";
  EXPECT_FALSE(sink.wants_tls({{"logs_endpoint", "https://b/"}, {"logs_endpoint", "http://b/"}}))
      << "the last entry of a repeated key wins";
  EXPECT_FALSE(sink.wants_tls({{"plain_only", "https://c/"}, {"ca_file", "https://d/"}}))
      << "only URI keys that allow https count";
  EXPECT_FALSE(sink.wants_tls({{"other", "https://e/"}}));
}

TEST(TlsSelection, AnExplicitUriKeyAloneDecides) {
  const Selection sink;
  EXPECT_FALSE(
      sink.wants_tls({{"endpoint", "http://a/"}, {"logs_endpoint", "https://b/"}}, "endpoint"));
  EXPECT_TRUE(sink.wants_tls({{"endpoint", "https://a/"}}, "endpoint"));
  EXPECT_TRUE(sink.wants_tls({{"ca_file", "https://d/"}}, "ca_file"));
}

}  // namespace
