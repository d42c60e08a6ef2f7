// The local HTTP endpoint the Telemetry API POSTs batches to.
#pragma once

#include <cstdint>
#include <memory>

#include "batch_consumer.h"
#include "listener_stats.h"

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
  // A body the listener refuses without reading it (413, 405) is answered, the sending side of
  // the connection is shut down, and what the client still sends is read and discarded, up to
  // the end of that body or these bounds, before the connection closes: a client that writes its
  // whole body before reading the answer then reads the answer instead of a reset.
  size_t discard_max_bytes = 16u << 20;
  int discard_max_ms = 2000;
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
