// The host-side machinery around one sink: a memory-bounded FIFO of telemetry, the flush policy
// that decides when events are released to the sink, deliveries with stable ids, retries with
// backoff and Retry-After, and the spool that keeps what failed or did not fit. One thread per
// outlet calls the sink, so a slow sink never blocks the listener, the lifecycle loop or another
// sink. The spool is touched only on failure or overflow, never on the hot path.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
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

enum class FlushMode {
  kNextInvoke,  // on INVOKE, release what was collected when there is more than min_batch_size
  kEnd,         // the lifecycle calls flush_until() after the invocation's platform.runtimeDone
  kPeriodic,    // the outlet's own timer releases everything every period_ms
  kContinuous,  // every batch is released as soon as it arrives
};

struct FlushPolicy {
  FlushMode mode = FlushMode::kNextInvoke;
  uint32_t period_ms = 0;  // kPeriodic only
};

struct SpoolOptions {
  bool enabled = true;
  std::string dir{};  // per-outlet folder: <RELAY_SPOOL_DIR>/<sink name>
  uint64_t max_bytes = 16u << 20;
  uint32_t max_files = 256;
};

struct OutletOptions {
  // next-invoke policy (the seed's DISPATCH_MIN_BATCH_SIZE): on INVOKE, release the collected
  // events only when there are more than this many. SHUTDOWN and flush_until release everything.
  int64_t min_batch_size = 0;
  FlushPolicy flush{};
  // Telemetry held in memory (RELAY_BUFFER_MAX_BYTES). Beyond it the oldest data is spooled, or
  // dropped and counted when the spool is off or full. 8 MiB: a 128 MB function stays healthy,
  // and a busy invocation's telemetry (10,000 log lines, ~4 MB) waits for the next INVOKE in
  // memory instead of costing spool writes.
  size_t buffer_max_bytes = 8u << 20;
  size_t delivery_max_bytes = 1u << 20;  // one delivery holds at most this much (at least 1 event)
  uint32_t retry_base_ms = 100;
  uint32_t retry_max_ms = 5000;
  uint32_t attempt_timeout_ms = 30000;  // deadline handed to the sink outside shutdown
  SpoolOptions spool{};
};

// Counters in events, for the loss summary. They reconcile at any quiet moment (see reconciles()):
//   received + inherited = delivered + discarded + dropped_* + still_spooled + queued
// The flow counters (deliveries, retries, retried, deferred, spooled, replayed) are not.
struct OutletCounters {
  uint64_t received = 0;
  uint64_t inherited = 0;  // found in the spool at start, left by an earlier process
  uint64_t delivered = 0;
  uint64_t deliveries = 0;      // successful sink calls
  uint64_t retries = 0;         // sink calls answered RETRY
  uint64_t retried = 0;         // events in sink calls answered RETRY (one per attempt)
  uint64_t deferred = 0;        // left pending when flush_until's deadline passed (once each)
  uint64_t spooled = 0;         // written to the spool (first failed attempt, memory cap, shutdown)
  uint64_t replayed = 0;        // delivered from the spool
  uint64_t discarded = 0;       // the sink discarded them by configuration (e.g. no endpoint)
  uint64_t dropped_by_cap = 0;  // over buffer_max_bytes with the spool off or full
  uint64_t dropped_by_sink = 0;      // the sink answered DROP (e.g. HTTP 4xx)
  uint64_t dropped_at_shutdown = 0;  // not delivered by the deadline and not spooled
  uint64_t dropped_disabled = 0;     // the sink answered FATAL and the spool could not take them
  uint64_t dropped_corrupt = 0;      // in spool files that failed validation (moved aside)
  uint64_t still_spooled = 0;        // in the spool now
  uint64_t queued = 0;               // in memory now (held, or a delivery in flight)
  uint64_t queued_bytes = 0;
  uint64_t spool_quarantined_files = 0;
  bool disabled = false;

  uint64_t dropped() const {
    return dropped_by_cap + dropped_by_sink + dropped_at_shutdown + dropped_disabled +
           dropped_corrupt;
  }
  bool reconciles() const {
    return received + inherited == delivered + discarded + dropped() + still_spooled + queued;
  }
};

class Spool;

class Outlet {
 public:
  // Opens the spool (when enabled) and starts replaying what an earlier process left in it.
  Outlet(SinkPtr sink, OutletOptions options);
  ~Outlet();
  Outlet(const Outlet&) = delete;
  Outlet& operator=(const Outlet&) = delete;

  const std::string& name() const { return sink_->name(); }
  const FlushPolicy& flush_policy() const { return options_.flush; }  // fixed at construction

  // Holds a batch (sharing its body); continuous mode releases it at once. Never blocks on the
  // sink; touches the spool only when over buffer_max_bytes or disabled. [any thread]
  // By value: the pipeline moves the batch into its last outlet instead of copying the events.
  void enqueue(TelemetryBatch batch);
  // An invocation started: next-invoke releases what was collected if there is more than
  // min_batch_size; every mode retries the spool now (unless a Retry-After is still running).
  void on_invoke();
  // Releases everything held and waits until it was delivered, dropped or spooled, or the
  // deadline passed. Leftovers go on in the background and are counted as deferred.
  // Returns true when nothing was left pending. [lifecycle thread] (`end` mode and the budget)
  bool flush_until(uint64_t deadline_unix_ms);
  // Releases everything and lets retries run until deadline_unix_ms. [lifecycle thread]
  void begin_shutdown(uint64_t deadline_unix_ms);
  // Waits until everything was delivered, dropped or spooled, or the deadline passed; then
  // flushes the sink if time remains. What is still in memory is spooled if the spool is on,
  // else counted as dropped at shutdown. Returns true when nothing was dropped here.
  bool finish_shutdown(uint64_t deadline_unix_ms);

  OutletCounters counters() const;

 private:
  struct Held {
    TelemetryBatch batch;
    size_t next_event = 0;  // events before this index were already taken for delivery
  };
  // The delivery being attempted. One from the spool (seq set) is re-read for each attempt.
  // Shared: a shutdown may let go of it while a stuck sink still reads it.
  struct Current {
    Delivery delivery;
    std::optional<uint64_t> spool_seq;
    uint64_t events = 0;  // for accounting: the spool header's count for a spooled one
  };

  void run();
  std::optional<Delivery> form_delivery_locked(uint64_t max_events);
  std::shared_ptr<Current> next_current_locked();
  bool spool_put_locked(const Delivery& delivery, const char* why);
  // Moves the oldest held data to the spool (or drops it, counted in *drop_counter) until at
  // most target_bytes are held.
  void spill_locked(size_t target_bytes, uint64_t OutletCounters::*drop_counter, const char* why);
  void settle_result_locked(const DeliveryResult& result);
  bool may_attempt_locked(uint64_t now) const;
  bool has_work_locked() const;
  bool settled_for_shutdown_locked() const;
  uint64_t next_backoff_ms();
  uint64_t queued_events_locked() const;
  uint64_t memory_pending_locked() const;
  size_t memory_bytes_locked() const;
  void retry_now_locked();

  SinkPtr sink_;
  OutletOptions options_;
  Poco::Logger& log_;             // looked up once: Logger::get locks a global registry
  std::unique_ptr<Spool> spool_;  // null when disabled or its folder is unusable

  mutable std::mutex mutex_;
  std::condition_variable wake_;  // work released, retry time, shutdown, or stop
  std::condition_variable idle_;  // memory drained or a delivery settled
  std::deque<Held> queue_;
  size_t queue_bytes_ = 0;
  uint64_t released_events_ = 0;  // events at the front of queue_ the policy let go
  std::shared_ptr<Current> current_;
  bool delivering_ = false;
  bool disabled_ = false;
  bool shutting_down_ = false;
  bool stop_ = false;
  uint64_t shutdown_deadline_ms_ = 0;
  uint64_t next_attempt_ms_ = 0;       // no sink call before this (backoff / Retry-After)
  uint64_t retry_after_until_ms_ = 0;  // the sink's Retry-After; on_invoke does not cut it
  uint64_t next_tick_ms_ = 0;          // periodic mode
  struct DeferredMark {
    uint64_t left = 0;  // pending when the last flush_until deadline passed
    uint64_t gone = 0;  // events that had left memory by then (received - pending)
  } deferred_mark_;
  uint32_t consecutive_failures_ = 0;
  std::string last_error_;           // of the current failure streak, for the shutdown report
  bool overflow_logged_ = false;     // one warning per overflow streak
  bool spool_error_logged_ = false;  // one warning per spool failure streak
  OutletCounters counters_;
  std::mt19937_64 random_{std::random_device{}()};  // backoff jitter and batch ids
  std::thread thread_;
};

// A random 128-bit id as 32 lowercase hex digits.
std::string make_batch_id(std::mt19937_64& random);

uint64_t now_unix_ms();

}  // namespace relay
