// libFuzzer target: whole HTTP requests (one or several, pipelined) sent to a running
// TelemetryListener over a real socket, the way Lambda's sender or a buggy local client would.
// Each connection must get well-formed answers and end; every event the listener hands on must
// be valid JSON (held to nlohmann::json, test-only); the listener must keep serving.
#include <Poco/Exception.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "post_consumer.h"
#include "telemetry_listener.h"

namespace {

class CheckingConsumer : public relay::PostConsumer {
 public:
  void consume(relay::TelemetryPost&& batch) override {
    for (const relay::TelemetryEvent& event : batch.events) {
      if (!nlohmann::json::accept(event.json)) __builtin_trap();
    }
  }
};

relay::TelemetryListener& listener() {
  // Kept for the whole run: starting a listener per input would test thread start-up, not HTTP.
  static CheckingConsumer consumer;
  static relay::TelemetryListener* running = [] {
    ::signal(SIGPIPE, SIG_IGN);
    auto* l =
        new relay::TelemetryListener(consumer, relay::ListenerOptions{.max_body_bytes = 1u << 20,
                                                                      .idle_timeout_ms = 2000,
                                                                      .body_timeout_ms = 2000,
                                                                      .discard_max_bytes = 1u << 20,
                                                                      .discard_max_ms = 200});
    l->start();
    return l;
  }();
  return *running;
}

// Sends the input, closes the sending side (so no request can wait for more), and reads every
// answer until the listener closes. Returns them, or nothing when the connection was reset.
std::string exchange(uint16_t port, std::string_view bytes) {
  Poco::Net::StreamSocket socket(Poco::Net::SocketAddress("127.0.0.1", port));
  socket.setReceiveTimeout(Poco::Timespan(8, 0));  // far beyond every listener bound
  std::string received;
  try {
    for (size_t sent = 0; sent < bytes.size();) {
      const int n = socket.sendBytes(bytes.data() + sent, int(bytes.size() - sent));
      if (n <= 0) break;
      sent += size_t(n);
    }
    socket.shutdownSend();
    char buffer[16 * 1024];
    for (;;) {
      const int n = socket.receiveBytes(buffer, sizeof buffer);
      if (n <= 0) break;
      received.append(buffer, size_t(n));
    }
  } catch (const Poco::TimeoutException&) {
    __builtin_trap();  // a connection the listener neither answered nor closed
  } catch (const Poco::Exception&) {
    // Reset: the listener closed with input left unread (e.g. after a refused body).
  }
  return received;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint16_t port = listener().port();
  const std::string answers = exchange(port, {reinterpret_cast<const char*>(data), size});
  // Whatever came back is a sequence of HTTP/1.x answers with a three-digit status.
  if (!answers.empty() &&
      (answers.compare(0, 7, "HTTP/1.") != 0 || answers.size() < 12 || answers[8] != ' ')) {
    __builtin_trap();
  }
  // And the listener still serves a well-formed batch.
  const std::string ok = exchange(
      port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]");
  if (ok.compare(0, 12, "HTTP/1.1 200") != 0) __builtin_trap();
  return 0;
}
