// libFuzzer target: the bytes a receiver answers a network sink with. POCO's client session reads
// them from a socket pair and relay::sdk::net::receive_answer (the toolkit's code) judges them, up
// to three requests on one kept-alive connection, as the sink does.
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Net/StreamSocketImpl.h>
#include <Poco/Timespan.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string_view>
#include <telemetry_relay/net/response.hpp>

namespace {

// Every error text ends up in a log line: printable ASCII and bounded.
void check_error(const std::string& error) {
  if (error.size() > 1024) __builtin_trap();
  for (const char c : error) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) __builtin_trap();
  // The whole answer is queued before the client reads, then end of stream: nothing blocks.
  const int buffer = 1 << 20;
  ::setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &buffer, sizeof(buffer));
  for (size_t at = 0; at < size;) {
    const ssize_t n = ::send(fds[1], data + at, size - at, MSG_NOSIGNAL);
    if (n <= 0) __builtin_trap();
    at += static_cast<size_t>(n);
  }
  ::shutdown(fds[1], SHUT_WR);

  Poco::Net::HTTPClientSession http(
      Poco::Net::StreamSocket(new Poco::Net::StreamSocketImpl(fds[0])));
  http.setKeepAlive(true);
  http.setTimeout(Poco::Timespan(1, 0));
  const Poco::Timestamp now;
  for (int request = 0; request < 3; ++request) {
    relay::sdk::net::Answer answer;
    try {
      Poco::Net::HTTPRequest post(Poco::Net::HTTPRequest::HTTP_POST, "/",
                                  Poco::Net::HTTPMessage::HTTP_1_1);
      post.setContentLength(2);
      post.setKeepAlive(true);
      http.sendRequest(post) << "[]";
      bool responded = false;
      answer = relay::sdk::net::receive_answer(http, now, responded);
      if (!responded) __builtin_trap();
    } catch (const Poco::Exception&) {
      break;  // the sink's transport error: retried on a new connection
    }
    const relay::sdk::net::Attempt& attempt = answer.attempt;
    const int status = attempt.http_status;
    using relay::sdk::Status;
    if (attempt.status == Status::kOk) {
      if (status < 200 || status > 299 || !attempt.error.empty()) __builtin_trap();
    } else {
      if (attempt.status == Status::kFatal || attempt.error.empty()) __builtin_trap();
      check_error(attempt.error);
    }
    // An interim answer is never final; 101 and malformed statuses never keep the connection.
    if (status >= 100 && status < 200 && (status != 101 || attempt.status != Status::kRetry)) {
      __builtin_trap();
    }
    if (answer.reusable && (status < 200 || status > 599)) __builtin_trap();
    if (attempt.too_large != (status == 413)) __builtin_trap();
    if (attempt.retry_after_ms > 0 && status != 429 && status != 503) __builtin_trap();
    if (status >= 300 && status < 400 && attempt.status != Status::kDrop) __builtin_trap();
    if (!answer.reusable) break;
  }
  ::close(fds[1]);
  return 0;
}
