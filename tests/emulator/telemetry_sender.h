#pragma once

// The platform side of one Telemetry API subscription: buffers events per the subscription's
// buffering settings and POSTs them to the extension's listener, one request at a time.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "events.h"

namespace Poco::Net {
class HTTPClientSession;
}

namespace relay::emu {

struct Buffering {
  size_t max_items = 10000;  // RIE's and the Telemetry API guide's default
  size_t max_bytes = 262144;
  int timeout_ms = 1000;
};

struct SenderOptions {
  uint16_t port = 0;  // the listener, always reached on 127.0.0.1
  std::string path = "/";
  Buffering buffering;
  int retries = 3;      // extra attempts after a failed POST, then the batch is dropped
  int backoff_ms = 50;  // doubled per retry
  int post_timeout_ms = 5000;
  size_t max_queued_batches = 64;  // sealed batches waiting; beyond it new ones are dropped
};

struct SenderStats {
  uint64_t posts_ok = 0;      // answered 2xx
  uint64_t posts_failed = 0;  // transport error or status >= 400, retries included
  uint64_t retries = 0;
  uint64_t batches_dropped = 0;
  uint64_t events_dropped = 0;
  uint64_t events_delivered = 0;
  uint64_t bytes_delivered = 0;
  std::map<std::string, uint64_t> delivered_by_type;
  std::vector<double> post_latency_ms;  // every answered POST, success or not
  std::vector<size_t> batch_events;     // events per delivered batch, in order
};

class TelemetrySender {
 public:
  // Builds the platform.logsDropped event for a dropped batch, or nullopt when the subscriber
  // does not take platform events. Called on the sender thread without the sender's lock held.
  using DropEventFn =
      std::function<std::optional<Event>(uint64_t records, uint64_t bytes, const std::string&)>;

  TelemetrySender(SenderOptions options, DropEventFn make_drop_event);
  ~TelemetrySender();
  TelemetrySender(const TelemetrySender&) = delete;
  TelemetrySender& operator=(const TelemetrySender&) = delete;

  void enqueue(Event event);

  // A paused sender starts no POST, as the platform's sender freezes with the sandbox.
  void pause();
  void resume();
  // Waits until no POST is in flight; false on timeout.
  bool wait_idle(std::chrono::milliseconds timeout);
  // Seals the open batch at once (ignoring timeoutMs) and waits until every batch sealed so far
  // was answered or dropped; false on timeout. Resumes a paused sender.
  bool flush(std::chrono::milliseconds timeout);
  // Stops the thread; events still buffered stay undelivered.
  void stop();

  SenderStats stats() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Batch {
    std::vector<Event> events;
    size_t bytes = 0;
  };
  struct Drop {
    uint64_t records;
    uint64_t bytes;
    std::string reason;
  };

  void run();
  void seal_locked();
  // Sends with retries; returns the empty string on success, else the last error.
  std::string deliver(const Batch& batch, std::vector<double>& latencies, uint64_t& retries,
                      uint64_t& failures);
  int post(const std::string& body, std::string& error);

  const SenderOptions options_;
  const DropEventFn make_drop_event_;
  std::unique_ptr<Poco::Net::HTTPClientSession> session_;  // sender thread only

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Batch current_;
  Clock::time_point current_deadline_;
  std::deque<Batch> ready_;
  std::vector<Drop> pending_drops_;
  bool paused_ = false;
  bool in_flight_ = false;
  bool stop_ = false;
  uint64_t sealed_ = 0;    // batches queued in ready_, ever
  uint64_t finished_ = 0;  // of those, answered 2xx or dropped after the retries
  SenderStats stats_;
  std::thread thread_;
};

}  // namespace relay::emu
