// The host-side machinery around one sink: a bounded FIFO of telemetry, the flush policy that
// decides when events are released to the sink, and retries with backoff. One thread per outlet
// calls the sink, so a slow sink never blocks the listener, the lifecycle loop or another sink.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include "sink.h"

namespace Poco {
class Logger;
}

namespace relay {

struct OutletOptions {
  // next-invoke policy (the seed's DISPATCH_MIN_BATCH_SIZE): on INVOKE, release the collected
  // events only when there are more than this many. SHUTDOWN releases everything.
  int64_t min_batch_size = 0;
  size_t queue_max_bytes = 8u << 20;     // beyond this the oldest batches are dropped, counted
  size_t delivery_max_bytes = 1u << 20;  // one delivery holds at most this much (at least 1 event)
  uint32_t retry_base_ms = 100;
  uint32_t retry_max_ms = 5000;
  uint32_t attempt_timeout_ms = 30000;  // deadline handed to the sink outside shutdown
};

// Counters in events. received = delivered + dropped_* + still queued.
struct OutletCounters {
  uint64_t received = 0;
  uint64_t delivered = 0;
  uint64_t deliveries = 0;  // successful sink calls
  uint64_t retries = 0;     // sink calls answered RETRY
  uint64_t dropped_by_cap = 0;
  uint64_t dropped_by_sink = 0;  // the sink answered DROP (e.g. HTTP 4xx)
  uint64_t dropped_at_shutdown = 0;
  uint64_t dropped_disabled = 0;  // the sink answered FATAL and was disabled
  uint64_t queued = 0;
  uint64_t queued_bytes = 0;
};

class Outlet {
 public:
  Outlet(SinkPtr sink, OutletOptions options);
  ~Outlet();
  Outlet(const Outlet&) = delete;
  Outlet& operator=(const Outlet&) = delete;

  const std::string& name() const { return sink_->name(); }

  // Queues a batch (sharing its body). Never blocks on the sink. [any thread]
  // By value: the pipeline moves the batch into its last outlet instead of copying the events.
  void enqueue(TelemetryBatch batch);
  // An invocation started: release what was collected if there is more than min_batch_size.
  void on_invoke();
  // Releases everything and lets retries run until deadline_unix_ms. [lifecycle thread]
  void begin_shutdown(uint64_t deadline_unix_ms);
  // Waits until everything was delivered or dropped, or the deadline passed; then flushes the
  // sink if time remains. Whatever is still queued is counted as dropped at shutdown.
  // Returns true when nothing was left behind.
  bool finish_shutdown(uint64_t deadline_unix_ms);

  OutletCounters counters() const;

 private:
  struct Held {
    TelemetryBatch batch;
    size_t next_event = 0;  // events before this index were already taken for delivery
  };

  void run();
  std::optional<Delivery> take_delivery_locked();
  void drop_oldest_locked(size_t incoming_bytes);
  void handle_result(const Delivery& delivery, const DeliveryResult& result,
                     std::unique_lock<std::mutex>& lock);
  std::chrono::milliseconds next_backoff();
  uint64_t queued_events_locked() const;

  SinkPtr sink_;
  OutletOptions options_;
  Poco::Logger& log_;  // looked up once: Logger::get locks a global registry

  mutable std::mutex mutex_;
  std::condition_variable wake_;  // work released, shutdown, or stop
  std::condition_variable idle_;  // queue drained or delivery finished
  std::deque<Held> queue_;
  size_t queue_bytes_ = 0;
  uint64_t released_events_ = 0;  // events at the front of queue_ the policy let go
  bool delivering_ = false;
  bool disabled_ = false;
  bool shutting_down_ = false;
  bool stop_ = false;
  uint64_t shutdown_deadline_ms_ = 0;
  uint32_t consecutive_retries_ = 0;
  uint64_t in_flight_events_ = 0;
  std::string last_error_;  // of the current failure streak, for the shutdown report  // taken from
                            // the queue, not yet settled
  OutletCounters counters_;
  std::mt19937 jitter_{std::random_device{}()};
  std::thread thread_;
};

uint64_t now_unix_ms();

}  // namespace relay
