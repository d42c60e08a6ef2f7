#include "telemetry_listener.h"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/StreamCopier.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "batch_parser.h"
#include "mock_post_consumer.h"
#include "test_support.h"

namespace relay {
namespace {

using ::testing::_;
using ::testing::HasSubstr;
using ::testing::StartsWith;

using MockConsumer = testing::MockPostConsumer;

// Keeps every batch the listener delivered; consume runs on listener threads.
class Collected {
 public:
  void add(TelemetryPost&& batch) {
    std::lock_guard<std::mutex> lock(mutex_);
    batches_.push_back(std::move(batch));
  }
  std::vector<TelemetryPost> take() {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::move(batches_);
  }

 private:
  std::mutex mutex_;
  std::vector<TelemetryPost> batches_;
};

std::string read_fixture(const std::string& name) {
  std::ifstream in(std::filesystem::path(RELAY_SOURCE_DIR) / "tests/data/telemetry" / name,
                   std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

struct Answer {
  int status = 0;
  std::string body;
  Poco::Net::HTTPResponse response;
};

Answer send(Poco::Net::HTTPClientSession& session, const std::string& method,
            const std::string& path, const std::string& body, bool chunked = false) {
  Poco::Net::HTTPRequest request(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
  request.setContentType("application/json");
  if (chunked) {
    request.setChunkedTransferEncoding(true);
  } else if (method != Poco::Net::HTTPRequest::HTTP_GET || !body.empty()) {
    request.setContentLength64(int64_t(body.size()));
  }
  session.sendRequest(request) << body;
  Answer answer;
  std::istream& in = session.receiveResponse(answer.response);
  Poco::StreamCopier::copyToString(in, answer.body);
  answer.status = answer.response.getStatus();
  return answer;
}

// For requests an HTTP client library would not send: writes raw bytes, then reads everything
// the server sends until it closes the connection.
std::string raw_exchange(uint16_t port, const std::string& bytes, bool close_write = false) {
  Poco::Net::StreamSocket socket(Poco::Net::SocketAddress("127.0.0.1", port));
  socket.setReceiveTimeout(Poco::Timespan(30, 0));
  socket.sendBytes(bytes.data(), int(bytes.size()));
  if (close_write) socket.shutdownSend();
  std::string received;
  char buffer[4096];
  for (;;) {
    int n = socket.receiveBytes(buffer, sizeof buffer);
    if (n <= 0) break;
    received.append(buffer, size_t(n));
  }
  return received;
}

class ListenerTest : public ::testing::Test {
 protected:
  static constexpr size_t kCap = 4096;

  void SetUp() override {
    ON_CALL(consumer_, consume(_)).WillByDefault([this](TelemetryPost&& batch) {
      collected_.add(std::move(batch));
    });
    listener_.start();
    ASSERT_NE(listener_.port(), 0);
  }

  std::unique_ptr<Poco::Net::HTTPClientSession> session() {
    auto s = std::make_unique<Poco::Net::HTTPClientSession>("127.0.0.1", listener_.port());
    s->setTimeout(Poco::Timespan(30, 0));
    s->setKeepAlive(true);
    return s;
  }

  ::testing::StrictMock<MockConsumer> consumer_;
  Collected collected_;
  TelemetryListener listener_{consumer_, ListenerOptions{.port = 0, .max_body_bytes = kCap}};
};

TEST_F(ListenerTest, PostDeliversTheExactEventsAndAnswersEmpty200) {
  const std::string body = read_fixture("cold_invoke.json");
  EXPECT_CALL(consumer_, consume(_)).Times(1);
  auto s = session();
  Answer answer = send(*s, "POST", "/", body);
  EXPECT_EQ(answer.status, 200);
  EXPECT_EQ(answer.body, "");

  std::vector<TelemetryPost> batches = collected_.take();
  ASSERT_EQ(batches.size(), 1u);
  const TelemetryPost& got = batches[0];
  EXPECT_EQ(*got.body, body);
  TelemetryPost expected = *parse_batch(body).batch;
  ASSERT_EQ(got.events.size(), expected.events.size());
  for (size_t i = 0; i < got.events.size(); ++i) {
    EXPECT_EQ(got.events[i].json, expected.events[i].json);
    EXPECT_EQ(got.events[i].type, expected.events[i].type);
    EXPECT_EQ(got.events[i].time, expected.events[i].time);
    EXPECT_EQ(got.events[i].record, expected.events[i].record);
    EXPECT_GE(got.events[i].json.data(), got.body->data());
    EXPECT_LE(got.events[i].json.data() + got.events[i].json.size(),
              got.body->data() + got.body->size());
  }
  EXPECT_EQ(listener_.stats().posts, 1u);
  EXPECT_EQ(listener_.stats().events, 10u);
  EXPECT_EQ(listener_.stats().bytes, body.size());
}

TEST_F(ListenerTest, OtherMethodsAre405) {
  EXPECT_CALL(consumer_, consume(_)).Times(0);
  auto s = session();
  Answer get = send(*s, "GET", "/", "");
  EXPECT_EQ(get.status, 405);
  EXPECT_EQ(get.response.get("Allow", ""), "POST");
  EXPECT_EQ(send(*s, "PUT", "/", "[]").status, 405);
  EXPECT_EQ(listener_.stats().rejected_method, 2u);
}

TEST_F(ListenerTest, MalformedBodiesAre400AndNeverConsumed) {
  EXPECT_CALL(consumer_, consume(_)).Times(0);
  auto s = session();
  Answer answer = send(*s, "POST", "/", "{}");
  EXPECT_EQ(answer.status, 400);
  EXPECT_THAT(answer.body, HasSubstr("not a JSON array"));
  EXPECT_THAT(send(*s, "POST", "/", R"([{"type":"a"})").body, HasSubstr("truncated"));
  EXPECT_THAT(send(*s, "POST", "/", "").body, HasSubstr("empty body"));
  EXPECT_EQ(listener_.stats().rejected_malformed, 3u);
  EXPECT_EQ(listener_.stats().posts, 0u);
}

TEST_F(ListenerTest, ContentLengthOverTheCapIs413WithoutWaitingForTheBody) {
  EXPECT_CALL(consumer_, consume(_)).Times(0);
  // No body byte is ever sent: an answer proves the listener did not wait to read it.
  std::string received = raw_exchange(
      listener_.port(), "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n");
  EXPECT_THAT(received, StartsWith("HTTP/1.1 413"));
  EXPECT_THAT(received, HasSubstr("Connection: Close"));
  EXPECT_THAT(received, HasSubstr("exceeds the limit of 4096 bytes"));
  EXPECT_EQ(listener_.stats().rejected_too_large, 1u);
}

TEST_F(ListenerTest, BodyExactlyAtTheCapIsAccepted) {
  EXPECT_CALL(consumer_, consume(_)).Times(2);
  std::string body = R"([{"type":"function","record":")";
  body += std::string(kCap - body.size() - 3, 'x') + "\"}]";
  ASSERT_EQ(body.size(), kCap);
  auto s = session();
  EXPECT_EQ(send(*s, "POST", "/", body).status, 200);
  EXPECT_EQ(send(*s, "POST", "/", body, /*chunked=*/true).status, 200);
}

TEST_F(ListenerTest, ChunkedBodyOverTheCapIs413) {
  EXPECT_CALL(consumer_, consume(_)).Times(0);
  // Chunks add up to cap + 1 bytes and nothing follows: the listener reads every byte sent, so
  // closing the connection cannot reset it before the answer is read.
  std::string request = "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 4; ++i) request += "400\r\n" + std::string(1024, ' ') + "\r\n";
  request += "1\r\n[";
  std::string received = raw_exchange(listener_.port(), request);
  EXPECT_THAT(received, StartsWith("HTTP/1.1 413"));
  EXPECT_EQ(listener_.stats().rejected_too_large, 1u);
}

// A client that writes its whole body before it reads the answer, as HTTP clients do: the
// listener refuses the body on its Content-Length at once, but must read and discard the rest,
// or closing the connection with unread data resets it and the client never sees the 413.
TEST_F(ListenerTest, AClientSendingAWholeOverLimitBodyReads413) {
  ::signal(SIGPIPE, SIG_IGN);  // a reset connection must fail the send, not end the test
  EXPECT_CALL(consumer_, consume(_)).Times(0);
  const std::string body(5'800'000, 'x');  // far beyond the socket buffers
  auto s = session();
  Answer answer;
  ASSERT_NO_THROW(answer = send(*s, "POST", "/", body));
  EXPECT_EQ(answer.status, 413);
  EXPECT_THAT(answer.body, HasSubstr("of 5800000 bytes exceeds the limit of 4096 bytes"));
  EXPECT_FALSE(answer.response.getKeepAlive());
  EXPECT_EQ(listener_.stats().rejected_too_large, 1u);
  EXPECT_EQ(listener_.stats().rejected_too_large_bytes, body.size());
}

TEST_F(ListenerTest, AClientSendingAWholeOverLimitChunkedBodyReads413) {
  ::signal(SIGPIPE, SIG_IGN);
  EXPECT_CALL(consumer_, consume(_)).Times(0);
  const std::string body(5'800'000, 'x');
  auto s = session();
  Answer answer;
  ASSERT_NO_THROW(answer = send(*s, "POST", "/", body, /*chunked=*/true));
  EXPECT_EQ(answer.status, 413);
  EXPECT_THAT(answer.body, HasSubstr("over 4096 bytes (no Content-Length)"));
  // Without a length, the bytes counted are those that arrived; the listener finishes counting
  // after the client has its answer.
  EXPECT_TRUE(testing::eventually([&] {
    return listener_.stats().rejected_too_large_bytes == body.size();
  })) << listener_.stats().rejected_too_large_bytes;
  EXPECT_EQ(listener_.stats().rejected_too_large, 1u);
}

TEST_F(ListenerTest, AClientSendingAWholeBodyWithTheWrongMethodReads405) {
  ::signal(SIGPIPE, SIG_IGN);
  EXPECT_CALL(consumer_, consume(_)).Times(0);
  const std::string body(3'000'000, 'x');
  auto s = session();
  Answer answer;
  ASSERT_NO_THROW(answer = send(*s, "PUT", "/", body));
  EXPECT_EQ(answer.status, 405);
  EXPECT_EQ(listener_.stats().rejected_method, 1u);
  EXPECT_EQ(listener_.stats().rejected_method_bytes, body.size());
}

// Every request is counted once, under its answer, with its body's bytes.
TEST_F(ListenerTest, RequestsAreCountedByAnswerWithTheirBytes) {
  EXPECT_CALL(consumer_, consume(_)).WillOnce([](TelemetryPost&&) {}).WillOnce([](TelemetryPost&&) {
    throw std::runtime_error("pipeline broke");
  });
  auto s = session();
  ASSERT_EQ(send(*s, "POST", "/", "[]").status, 200);
  ASSERT_EQ(send(*s, "POST", "/", "[ ]").status, 500);
  ASSERT_EQ(send(*s, "POST", "/", "{1}").status, 400);
  ASSERT_EQ(send(*s, "POST", "/", "{\"a\":1}").status, 400);
  ASSERT_EQ(send(*s, "GET", "/", "").status, 405);
  EXPECT_THAT(raw_exchange(listener_.port(),
                           "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"),
              StartsWith("HTTP/1.1 413"));

  const ListenerCounters c = listener_.stats().snapshot();
  EXPECT_EQ(c.accepted.requests, 1u);
  EXPECT_EQ(c.accepted.bytes, 2u);
  EXPECT_EQ(c.internal_error.requests, 1u);
  EXPECT_EQ(c.internal_error.bytes, 3u);
  EXPECT_EQ(c.bad_request.requests, 2u);
  EXPECT_EQ(c.bad_request.bytes, 3u + 7u);
  EXPECT_EQ(c.method_not_allowed.requests, 1u);
  EXPECT_EQ(c.method_not_allowed.bytes, 0u);
  EXPECT_EQ(c.too_large.requests, 1u);
  EXPECT_EQ(c.too_large.bytes, 100000u);  // as announced: what the client meant to send
  EXPECT_EQ(c.rejected().requests, 5u);
  EXPECT_EQ(c.rejected().bytes, 3u + 10u + 100000u);
}

TEST_F(ListenerTest, ChunkedBodyUnderTheCapIsDelivered) {
  EXPECT_CALL(consumer_, consume(_)).Times(1);
  auto s = session();
  EXPECT_EQ(send(*s, "POST", "/", read_fixture("logs_dropped.json"), /*chunked=*/true).status, 200);
  std::vector<TelemetryPost> batches = collected_.take();
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].events.size(), 3u);
  EXPECT_EQ(batches[0].events[0].type, "platform.logsDropped");
}

TEST_F(ListenerTest, BodyShorterThanItsContentLengthIs400) {
  EXPECT_CALL(consumer_, consume(_)).Times(0);
  std::string received = raw_exchange(
      listener_.port(), "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[{\"a\":1}]",
      /*close_write=*/true);
  EXPECT_THAT(received, StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(received, HasSubstr("body ended after 9 of 100 bytes"));
}

// Lambda re-sends a batch it gets a 4xx/5xx for, so a batch with invalid events is answered 200:
// the valid ones are delivered, the others dropped and counted. Whatever was forwarded before,
// one invalid event no longer spoils the delivery (and the receiver's 400 the good events).
TEST_F(ListenerTest, InvalidEventsAreDroppedAndCountedAndTheBatchAnswered200) {
  EXPECT_CALL(consumer_, consume(_)).Times(2);
  auto s = session();
  const std::string body =
      R"([{"type":"function","record":"a"},{"type":"function","record":{"n":007}},)"
      R"({"type":"function","record":[1}, {"type":"function","record":NaN},)"
      R"({"type":"function","record":"b"}])";
  Answer answer = send(*s, "POST", "/", body);
  EXPECT_EQ(answer.status, 200);
  EXPECT_EQ(send(*s, "POST", "/", "[1]").status, 200);
  std::vector<TelemetryPost> batches = collected_.take();
  ASSERT_EQ(batches.size(), 2u);
  ASSERT_EQ(batches[0].events.size(), 2u);
  EXPECT_EQ(batches[0].events[0].record, "\"a\"");
  EXPECT_EQ(batches[0].events[1].record, "\"b\"");
  EXPECT_TRUE(batches[1].events.empty());
  const ListenerCounters counters = listener_.stats().snapshot();
  EXPECT_EQ(counters.invalid_events, 4u);
  EXPECT_EQ(counters.accepted.requests, 2u);
  EXPECT_EQ(counters.accepted_events, 2u);
  EXPECT_EQ(counters.bad_request.requests, 0u);
}

// POCO reads Content-Length while taking the request apart; a value that is not a number, or
// beyond 64 bits, used to close the connection without an answer.
TEST_F(ListenerTest, AContentLengthThatIsNotANumberIs400) {
  EXPECT_CALL(consumer_, consume(_)).Times(0);
  for (const char* length : {"abc", "18446744073709551617", "-1"}) {
    const std::string received = raw_exchange(
        listener_.port(),
        std::string("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ") + length + "\r\n\r\n[]");
    EXPECT_THAT(received, StartsWith("HTTP/1.1 400")) << length;
  }
  EXPECT_EQ(listener_.stats().rejected_malformed, 3u);
  // The listener goes on serving.
  EXPECT_CALL(consumer_, consume(_)).Times(1);
  EXPECT_EQ(send(*session(), "POST", "/", "[]").status, 200);
}

// POCO keeps whatever version a request line names; the answer must still be HTTP (fuzz find).
TEST_F(ListenerTest, AnswersNameARealHttpVersion) {
  EXPECT_CALL(consumer_, consume(_)).Times(1);
  EXPECT_THAT(
      raw_exchange(listener_.port(), "POST / H^TP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n[]",
                   /*close_write=*/true),
      StartsWith("HTTP/1.1 200"));
}

// Bodies far larger than POCO's 4 KiB session buffer, arriving in pieces, with the next request
// right behind the first body: the listener reads exactly Content-Length bytes, never into the
// request that follows.
TEST(ListenerLargeBodyTest, LargeBodiesInPiecesAndAPipelinedRequestAreReadExactly) {
  ::testing::StrictMock<MockConsumer> consumer;
  Collected collected;
  ON_CALL(consumer, consume(_)).WillByDefault([&](TelemetryPost&& batch) {
    collected.add(std::move(batch));
  });
  EXPECT_CALL(consumer, consume(_)).Times(2);
  TelemetryListener listener{consumer, ListenerOptions{.max_body_bytes = 4u << 20}};
  listener.start();

  std::string big = "[";
  for (int i = 0; i < 3000; ++i) {
    if (i > 0) big += ',';
    big += R"({"time":"2024-01-01T00:00:00.000Z","type":"function","record":"line )" +
           std::to_string(i) + std::string(100, 'x') + "\"}";
  }
  big += ']';
  const std::string small = R"([{"time":"t","type":"platform.start","record":{}}])";
  const std::string wire =
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(big.size()) + "\r\n\r\n" +
      big + "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: " +
      std::to_string(small.size()) + "\r\n\r\n" + small;

  Poco::Net::StreamSocket socket(Poco::Net::SocketAddress("127.0.0.1", listener.port()));
  socket.setReceiveTimeout(Poco::Timespan(30, 0));
  // Uneven pieces with pauses, so the body arrives across many reads.
  for (size_t at = 0, piece = 1000; at < wire.size(); at += piece, piece = piece * 3 % 70001 + 1) {
    const size_t n = std::min(piece, wire.size() - at);
    ASSERT_EQ(socket.sendBytes(wire.data() + at, int(n)), int(n));
    if (at % 7 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::string received;
  char buffer[4096];
  for (int n; (n = socket.receiveBytes(buffer, sizeof buffer)) > 0;)
    received.append(buffer, size_t(n));

  EXPECT_THAT(received, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(received.substr(12), HasSubstr("HTTP/1.1 200"));
  std::vector<TelemetryPost> batches = collected.take();
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(*batches[0].body, big);
  EXPECT_EQ(batches[0].events.size(), 3000u);
  EXPECT_EQ(*batches[1].body, small);
}

TEST_F(ListenerTest, OneKeepAliveConnectionCarriesSeveralPosts) {
  EXPECT_CALL(consumer_, consume(_)).Times(5);
  auto s = session();
  const std::string body = read_fixture("extension_records.json");
  ASSERT_EQ(send(*s, "POST", "/", body).status, 200);
  const uint16_t local_port = s->socket().address().port();
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(send(*s, "POST", "/", body).status, 200);
    EXPECT_EQ(send(*s, "POST", "/", "{1}").status, 400);  // a fully read body keeps the connection
    EXPECT_EQ(s->socket().address().port(), local_port) << "reconnected at request " << i;
  }
  EXPECT_EQ(collected_.take().size(), 5u);
}

TEST_F(ListenerTest, ConcurrentPostsAreAllDelivered) {
  constexpr int kClients = 8;
  constexpr int kPostsEach = 25;
  EXPECT_CALL(consumer_, consume(_)).Times(kClients * kPostsEach);
  std::vector<std::thread> clients;
  std::vector<int> failures(kClients, 0);
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto s = session();
      for (int i = 0; i < kPostsEach; ++i) {
        const std::string body = R"([{"time":"t","type":"function","record":"client )" +
                                 std::to_string(c) + " post " + std::to_string(i) + R"("}])";
        try {
          if (send(*s, "POST", "/", body).status != 200) ++failures[size_t(c)];
        } catch (const Poco::Exception&) {
          ++failures[size_t(c)];
        }
      }
    });
  }
  for (auto& client : clients) client.join();
  EXPECT_THAT(failures, ::testing::Each(0));

  std::set<std::string> records;
  for (const TelemetryPost& batch : collected_.take()) {
    ASSERT_EQ(batch.events.size(), 1u);
    records.insert(std::string(batch.events[0].record));
  }
  EXPECT_EQ(records.size(), size_t(kClients * kPostsEach));
  EXPECT_TRUE(records.count("\"client 7 post 24\""));
  EXPECT_EQ(listener_.stats().posts, uint64_t(kClients * kPostsEach));
}

TEST_F(ListenerTest, AnyPathIsAccepted) {
  EXPECT_CALL(consumer_, consume(_)).Times(4);
  auto s = session();
  for (const char* path : {"/", "/telemetry", "/a/deep/path/", "/x?query=1"}) {
    EXPECT_EQ(send(*s, "POST", path, "[]").status, 200) << path;
  }
}

TEST_F(ListenerTest, ConsumerExceptionIs500AndTheListenerKeepsServing) {
  EXPECT_CALL(consumer_, consume(_))
      .WillOnce([](TelemetryPost&&) { throw std::runtime_error("pipeline broke"); })
      .WillOnce([](TelemetryPost&&) {});
  auto s = session();
  EXPECT_EQ(send(*s, "POST", "/", "[]").status, 500);
  EXPECT_EQ(send(*s, "POST", "/", "[]").status, 200);
}

TEST(TelemetryListener, DestructionIsPromptWithAnIdleKeepAliveConnectionOpen) {
  MockConsumer consumer;
  EXPECT_CALL(consumer, consume(_)).Times(1);
  auto listener = std::make_unique<TelemetryListener>(consumer, ListenerOptions{});
  listener->start();
  Poco::Net::HTTPClientSession s("127.0.0.1", listener->port());
  ASSERT_EQ(send(s, "POST", "/", "[]").status, 200);
  // The server thread now waits for this connection's next request; the destructor must not
  // wait for it.
  const auto started = std::chrono::steady_clock::now();
  listener.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
}

TEST(TelemetryListener, ReportsTheEphemeralPortItBound) {
  MockConsumer consumer;
  auto a = std::make_unique<TelemetryListener>(consumer, ListenerOptions{});
  EXPECT_EQ(a->port(), 0);
  a->start();
  const uint16_t port = a->port();
  EXPECT_NE(port, 0);

  // Binding the same port again fails loudly instead of serving nothing.
  TelemetryListener b(consumer, ListenerOptions{.port = port});
  EXPECT_THROW(b.start(), Poco::Exception);

  // The port is really served.
  EXPECT_THAT(raw_exchange(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
              StartsWith("HTTP/1.1 405"));
  a.reset();
  EXPECT_THROW(raw_exchange(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Poco::Exception);
}

// Discarding is bounded in bytes: a client announcing 100 MB is cut off after the bound (here
// 1 MiB), so its send fails long before it could send everything.
TEST(ListenerDiscardTest, DiscardingStopsAtTheByteBound) {
  ::signal(SIGPIPE, SIG_IGN);
  ::testing::StrictMock<MockConsumer> consumer;
  TelemetryListener listener{
      consumer, ListenerOptions{.max_body_bytes = 4096,
                                .discard_max_bytes = 1u << 20,
                                .discard_max_ms = 600'000}};  // only the byte bound can end it
  listener.start();
  Poco::Net::StreamSocket socket(Poco::Net::SocketAddress("127.0.0.1", listener.port()));
  socket.setSendTimeout(Poco::Timespan(60, 0));
  const std::string head = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n";
  socket.sendBytes(head.data(), int(head.size()));
  const std::string block(64 * 1024, 'x');
  uint64_t sent = 0;
  bool failed = false;
  while (sent < 100'000'000 && !failed) {
    try {
      const int n = socket.sendBytes(block.data(), int(block.size()));
      if (n <= 0) break;
      sent += uint64_t(n);
    } catch (const Poco::Exception&) {
      failed = true;  // reset or broken pipe: the listener closed after the bound
    }
  }
  EXPECT_TRUE(failed) << "sent " << sent << " bytes without the listener closing";
  EXPECT_LT(sent, 100'000'000u);
  // Counted once the handler has read (and discarded) what it was sent.
  ASSERT_TRUE(testing::eventually(
      [&] { return listener.stats().rejected_too_large_bytes == 100'000'000u; }));
  EXPECT_EQ(listener.stats().rejected_too_large, 1u);
  EXPECT_EQ(listener.stats().rejected_too_large_bytes, 100'000'000u);
}

// Discarding is bounded in time: a client that announces a body, never sends it and never closes
// holds the listener's only connection for discard_max_ms (300 ms), not for POCO's 60 s receive
// timeout; the next client, queued meanwhile, is then served.
TEST(ListenerDiscardTest, DiscardingStopsAtTheTimeBound) {
  ::testing::StrictMock<MockConsumer> consumer;
  EXPECT_CALL(consumer, consume(_)).Times(1);
  TelemetryListener listener{consumer, ListenerOptions{.max_body_bytes = 4096,
                                                       .max_connections = 1,
                                                       .discard_max_bytes = 16u << 20,
                                                       .discard_max_ms = 300}};
  listener.start();
  Poco::Net::StreamSocket silent(Poco::Net::SocketAddress("127.0.0.1", listener.port()));
  const std::string head = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n";
  silent.sendBytes(head.data(), int(head.size()));
  silent.setReceiveTimeout(Poco::Timespan(30, 0));
  char buffer[512];
  const int n = silent.receiveBytes(buffer, sizeof buffer);  // the 413 arrives; we never close
  ASSERT_GT(n, 0);
  EXPECT_THAT(std::string(buffer, size_t(n)), StartsWith("HTTP/1.1 413"));

  Poco::Net::HTTPClientSession next("127.0.0.1", listener.port());
  next.setTimeout(Poco::Timespan(10, 0));  // far below the 60 s an unbounded discard takes
  Answer answer;
  ASSERT_NO_THROW(answer = send(next, "POST", "/", "[]"));
  EXPECT_EQ(answer.status, 200);
}

// A connection that sends nothing, or trickles its request.
std::unique_ptr<Poco::Net::StreamSocket> connect_to(uint16_t port) {
  return std::make_unique<Poco::Net::StreamSocket>(Poco::Net::SocketAddress("127.0.0.1", port));
}

// Posts a batch on `s` and checks it is answered 200 well within a bound normal answers (about a
// millisecond) are orders of magnitude below; before, such attacks held every thread for 60 s.
void expect_answered_promptly(Poco::Net::HTTPClientSession& s) {
  const auto started = std::chrono::steady_clock::now();
  Answer answer;
  ASSERT_NO_THROW(answer = send(s, "POST", "/", R"([{"type":"function","record":"x"}])"));
  EXPECT_EQ(answer.status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(1));
}

class ListenerAttackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ON_CALL(consumer_, consume(_)).WillByDefault([](TelemetryPost&&) {});
    EXPECT_CALL(consumer_, consume(_)).Times(::testing::AnyNumber());
    listener_.start();
  }

  std::unique_ptr<Poco::Net::HTTPClientSession> sender() {
    auto s = std::make_unique<Poco::Net::HTTPClientSession>("127.0.0.1", listener_.port());
    s->setTimeout(Poco::Timespan(5, 0));  // fails fast instead of waiting out a held listener
    s->setKeepAlive(true);
    return s;
  }

  ::testing::NiceMock<MockConsumer> consumer_;
  // The attacks last as long as the test needs: no timeout ends them (connecting 500 sockets
  // takes seconds on some machines), only the listener's admission and threads are tested.
  TelemetryListener listener_{consumer_, ListenerOptions{.idle_timeout_ms = 120'000}};
};

TEST_F(ListenerAttackTest, IdleConnectionsDoNotHoldTheListener) {
  std::vector<std::unique_ptr<Poco::Net::StreamSocket>> idle;
  for (int i = 0; i < 100; ++i) idle.push_back(connect_to(listener_.port()));
  auto s = sender();
  for (int i = 0; i < 5; ++i) expect_answered_promptly(*s);
  auto fresh = sender();  // a new connection too, while all those stay open
  expect_answered_promptly(*fresh);
}

// 500 idle connections, far past max_connections: each new one evicts one that never sent a
// request, so the sender's own keep-alive connection is never reset, and it is answered at once.
TEST_F(ListenerAttackTest, FiveHundredIdleConnectionsEvictEachOtherNotTheSender) {
  auto s = sender();
  expect_answered_promptly(*s);
  std::vector<std::unique_ptr<Poco::Net::StreamSocket>> idle;
  for (int i = 0; i < 500; ++i) idle.push_back(connect_to(listener_.port()));
  for (int i = 0; i < 5; ++i) expect_answered_promptly(*s);
}

// Slowloris: connections sending their header a byte at a time never hold the listener, and
// while they trickle, the sender's batches are answered as usual.
TEST_F(ListenerAttackTest, SlowHeadersDoNotHoldTheListener) {
  std::vector<std::unique_ptr<Poco::Net::StreamSocket>> slow;
  for (int i = 0; i < 80; ++i) slow.push_back(connect_to(listener_.port()));
  std::atomic<bool> done{false};
  std::thread trickle([&] {
    const std::string head = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n[]";
    for (size_t at = 0; at < head.size() && !done; ++at) {
      for (auto& socket : slow) {
        try {
          socket->sendBytes(&head[at], 1);
        } catch (const Poco::Exception&) {
          // evicted: fine
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  auto s = sender();
  for (int i = 0; i < 20; ++i) {
    expect_answered_promptly(*s);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  done = true;
  trickle.join();
}

// A header trickled a byte at a time defeats per-read timeouts; the whole header has a deadline.
TEST(ListenerTimeoutTest, AHeaderTrickledByteByByteIsCutOffAtTheIdleTimeout) {
  ::signal(SIGPIPE, SIG_IGN);
  ::testing::NiceMock<MockConsumer> consumer;
  TelemetryListener listener{consumer, ListenerOptions{.idle_timeout_ms = 500}};
  listener.start();
  auto socket = connect_to(listener.port());
  const std::string head = "POST / HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(600, 'x');
  const auto started = std::chrono::steady_clock::now();
  bool closed = false;
  // 100 ms per byte: the header would take a minute; the deadline closes it long before.
  for (size_t at = 0; at < head.size() && !closed; ++at) {
    try {
      socket->sendBytes(&head[at], 1);
    } catch (const Poco::Exception&) {
      closed = true;
    }
    if (socket->poll(Poco::Timespan(0, 100000), Poco::Net::Socket::SELECT_READ)) {
      char byte;
      try {
        closed = socket->receiveBytes(&byte, 1) <= 0;
      } catch (const Poco::Exception&) {
        closed = true;
      }
    }
  }
  EXPECT_TRUE(closed);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(20));
}

}  // namespace
}  // namespace relay
