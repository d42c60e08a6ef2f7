// The local HTTP endpoint the Telemetry API POSTs batches to.
#pragma once

#include <cstdint>
#include <memory>

#include "listener_stats.h"
#include "post_consumer.h"

namespace Poco {
class ThreadPool;
namespace Net {
class TCPServer;
}
}  // namespace Poco

namespace relay {

class ListenerConnections;

struct ListenerOptions {
  uint16_t port = 0;                   // 0: ephemeral
  size_t max_body_bytes = 4 * 262144;  // larger bodies answer 413
  // Open connections, each served by its own thread (started on demand). Past this a new
  // connection evicts an idle one, so idle or slow clients can never hold them all.
  int max_connections = 64;
  // A connection that has not sent a whole request header within this time of opening (or of its
  // previous answer) is closed, however it trickles its bytes; so is one whose body takes longer
  // than body_timeout_ms. Lambda sends a batch in one go, within milliseconds.
  int idle_timeout_ms = 5000;
  int body_timeout_ms = 10000;
  // A body the listener refuses without reading it (413, 405) is answered, the sending side of
  // the connection is shut down, and what the client still sends is read and discarded, up to
  // the end of that body or these bounds, before the connection closes: a client that writes its
  // whole body before reading the answer then reads the answer instead of a reset.
  size_t discard_max_bytes = 16u << 20;
  int discard_max_ms = 2000;
};

class TelemetryListener {
 public:
  TelemetryListener(PostConsumer& consumer, ListenerOptions options);
  // Stops accepting, aborts open connections and waits for running handlers. (The extension
  // never runs it: it exits with the listener serving, see main.cpp.)
  ~TelemetryListener();
  // Binds 0.0.0.0:<port> and starts serving. Throws Poco::Exception when the bind fails.
  void start();
  uint16_t port() const;  // the bound port (after start)
  const ListenerStats& stats() const { return stats_; }

 private:
  PostConsumer& consumer_;
  ListenerOptions options_;
  ListenerStats stats_;
  std::unique_ptr<ListenerConnections> connections_;  // outlives pool_'s threads
  std::unique_ptr<Poco::ThreadPool> pool_;  // outlives server_: its threads run the connections
  std::unique_ptr<Poco::Net::TCPServer> server_;
};

}  // namespace relay
