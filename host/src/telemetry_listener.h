// The local HTTP endpoint the Telemetry API POSTs batches to.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "batch_consumer.h"

namespace Poco {
class ThreadPool;
namespace Net {
class HTTPServer;
}
}  // namespace Poco

namespace relay {

struct ListenerOptions {
  uint16_t port = 0;                   // 0: ephemeral
  size_t max_body_bytes = 4 * 262144;  // larger bodies answer 413
  int max_threads = 4;
};

struct ListenerStats {
  std::atomic<uint64_t> batches{0};
  std::atomic<uint64_t> events{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> rejected_malformed{0};  // answered 400
  std::atomic<uint64_t> rejected_too_large{0};  // answered 413
  std::atomic<uint64_t> rejected_method{0};     // answered 405
};

class TelemetryListener {
 public:
  TelemetryListener(BatchConsumer& consumer, ListenerOptions options);
  ~TelemetryListener();
  // Binds 0.0.0.0:<port> and starts serving. Throws Poco::Exception when the bind fails.
  void start();
  // Stops accepting, aborts open connections and waits for running handlers. Idempotent.
  void stop();
  uint16_t port() const;  // the bound port (after start)
  const ListenerStats& stats() const { return stats_; }

 private:
  BatchConsumer& consumer_;
  ListenerOptions options_;
  ListenerStats stats_;
  std::unique_ptr<Poco::ThreadPool> pool_;  // outlives server_: its threads run the handlers
  std::unique_ptr<Poco::Net::HTTPServer> server_;
};

}  // namespace relay
