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
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include "deadline.h"
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
  std::function<void()> before_fsync_for_test{};  // see SpoolLimits
};

struct OutletOptions {
  // next-invoke policy (the seed's DISPATCH_MIN_BATCH_SIZE): on INVOKE, release the collected
  // events only when there are more than this many. SHUTDOWN and flush_until release everything.
  int64_t min_batch_size = 0;
  FlushPolicy flush{};
  // Flush on pressure (RELAY_BUFFER_FLUSH_BYTES): in every mode, once this much telemetry is
  // held, all of it is released at once. The flush mode and min_batch_size decide when small
  // amounts go; they never make telemetry wait until the memory cap drops it.
  size_t flush_high_water_bytes = 1u << 20;
  // Telemetry held in memory (RELAY_BUFFER_MAX_BYTES), counted as what it really costs (bytes,
  // per-event views, per-batch overhead). Beyond it the oldest data is spooled, or dropped and
  // counted when the spool is off or full: reached only when the sink is slower than the
  // telemetry, or down. 4 MiB: flush on pressure keeps a healthy sink's share near the
  // high-water mark, and a 128 MB function keeps its memory.
  size_t buffer_max_bytes = 4u << 20;
  size_t delivery_max_bytes = 1u << 20;  // one delivery holds at most this much (at least 1 event)
  uint32_t retry_base_ms = 100;
  uint32_t retry_max_ms = 5000;
  uint32_t attempt_timeout_ms = 30000;  // deadline handed to the sink outside shutdown
  // Retry life of a poison (RELAY_RETRY_MAX_ATTEMPTS, RELAY_RETRY_MAX_AGE_S): a spooled delivery
  // of one event that failed at least this many times while other deliveries to the sink
  // succeeded in between, and first failed at least this long ago, moves to the dead-letter
  // folder. A sink-wide outage never counts towards it.
  uint32_t retry_max_attempts = 10;
  uint64_t retry_max_age_ms = 3600000;
  SpoolOptions spool{};
};

// Counters in events, for the loss summary. They reconcile at any quiet moment (see reconciles()):
//   received + inherited = delivered + discarded + dropped_* + dead_lettered + still_spooled
//                          + queued
// The flow counters (calls_ok, calls_retry, events_retried, deferred, spooled, replayed, splits)
// are not.
struct OutletCounters {
  uint64_t received = 0;
  uint64_t inherited = 0;       // found in the spool at start, left by an earlier process
  uint64_t delivered = 0;       // events the sink took (answered OK and not discarded)
  uint64_t calls_ok = 0;        // deliver() calls answered OK (not discarded)
  uint64_t calls_retry = 0;     // deliver() calls answered RETRY
  uint64_t events_retried = 0;  // events in deliver() calls answered RETRY (once per attempt)
  uint64_t deferred = 0;        // left pending when flush_until's deadline passed (once each)
  uint64_t spooled = 0;    // written to the spool (failed attempt, outage, memory cap, shutdown)
  uint64_t replayed = 0;   // delivered from the spool
  uint64_t discarded = 0;  // the sink discarded them by configuration (e.g. no endpoint)
  uint64_t dropped_by_cap = 0;       // over buffer_max_bytes with the spool off or full
  uint64_t dropped_by_sink = 0;      // the sink answered DROP (e.g. HTTP 4xx)
  uint64_t dropped_at_shutdown = 0;  // not delivered by the deadline and not spooled
  uint64_t dropped_disabled = 0;     // the sink answered FATAL and the spool could not take them
  uint64_t dropped_corrupt = 0;      // in spool files that failed validation (moved aside)
  uint64_t dead_lettered = 0;        // poisons moved to the dead-letter folder (never replayed)
  uint64_t splits = 0;  // deliveries split in two (too large, or failing while others succeed)
  uint64_t still_spooled = 0;  // in the spool now
  uint64_t queued = 0;  // in memory now (held, a delivery in flight, or on its way to the spool)
  uint64_t queued_bytes = 0;
  uint64_t spool_quarantined_files = 0;
  bool disabled = false;
  bool flush_failed = false;  // the sink's flush at shutdown answered anything but OK

  uint64_t dropped() const {
    return dropped_by_cap + dropped_by_sink + dropped_at_shutdown + dropped_disabled +
           dropped_corrupt;
  }
  bool reconciles() const {
    return received + inherited ==
           delivered + discarded + dropped() + dead_lettered + still_spooled + queued;
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

  const std::string& name() const { return name_; }
  const FlushPolicy& flush_policy() const { return options_.flush; }  // fixed at construction

  // Holds a batch (sharing its body); continuous mode, shutdown and the high-water mark release
  // it at once. Never waits on the sink. Writes the spool itself (before returning, so before
  // the listener answers) only while the sink is failing, over the memory cap, disabled, or
  // after the shutdown deadline. [listener threads]
  // By value: the pipeline moves the batch into its last outlet instead of copying the events.
  void enqueue(TelemetryPost batch);
  // An invocation started: next-invoke releases what was collected if there is more than
  // min_batch_size; every mode retries the spool now (unless a Retry-After is still running).
  // Takes the outlet's lock only for a few counters: never waits on the sink, the spool or
  // the forming of a delivery. [lifecycle thread]
  void on_invoke();
  // Releases everything held and waits until it was delivered, dropped or spooled, or the
  // deadline passed. Leftovers go on in the background and are counted as deferred.
  // Returns true when nothing was left pending. [lifecycle thread] (`end` mode and the budget)
  bool flush_until(Deadline deadline);
  // Releases everything and lets retries run until the deadline. [lifecycle thread]
  void begin_shutdown(Deadline deadline);
  // Waits until everything was delivered, dropped or spooled, or the deadline passed; then ends
  // the outlet thread (unless the sink is stuck in deliver). What is still in memory is spooled
  // if the spool is on, else counted as dropped at shutdown. Returns true when nothing was
  // dropped here or left in the spool. [one shutdown thread]
  bool finish_shutdown(Deadline deadline);
  // After finish_shutdown: calls the sink's flush once, with this deadline, unless the sink was
  // disabled (FATAL), is still in a call, or the deadline has passed. Anything but OK is logged
  // with the sink's message and counted (flush_failed). Returns false when it failed or was not
  // called. [one shutdown thread]
  bool flush_sink(Deadline deadline);
  // After flush_sink: destroys the sink's instance, once, unless one of its calls is still
  // running (stuck past its deadline: then it is never destroyed). [main thread]
  void destroy_sink();

  OutletCounters counters() const;

 private:
  // A received batch (shared with the other outlets), or the part of one still held.
  struct Held {
    std::shared_ptr<const TelemetryPost> batch;
    size_t next_event = 0;  // [next_event, end_event) are still here
    size_t end_event = 0;
  };
  // Events taken out of memory for a delivery or the spool, still in the batches that carried
  // them: the bytes are copied into one JSON array without the lock.
  struct Slice {
    std::shared_ptr<const TelemetryPost> batch;
    size_t begin = 0;
    size_t end = 0;
  };
  struct Taken {
    std::vector<Slice> slices;
    uint64_t events = 0;
    size_t bytes = 2;  // of the JSON array they make ("[]" and commas included)
  };
  // The delivery being attempted. One from the spool (seq set) is re-read for each attempt.
  // Shared: a shutdown may let go of it while a stuck sink still reads it.
  struct Current {
    Delivery delivery;
    std::optional<uint64_t> spool_seq;
    uint64_t events = 0;
    uint64_t first_index = 0;  // in memory: the arrival index of its first event (flush_until)
  };
  // How a spooled delivery has fared. Evidence of a poison: failures that came after another
  // delivery to the sink succeeded (an outage fails everything and adds none).
  struct RetryState {
    uint32_t failures = 0;
    uint32_t evidence = 0;
    uint64_t first_failed_ms = 0;
    uint64_t not_before_ms = 0;  // its own backoff, once it is a suspect
    uint64_t successes_at_last_failure = 0;
    uint64_t last_failed_ms = 0;  // 0 for the halves of a split: not attempted themselves yet
  };
  // What the outlet thread does without the lock; finish_shutdown waits out the local I/O.
  enum class Phase { kIdle, kDelivering, kForming, kSpooling, kReading };

  void run();
  // The previous process's crash note: the spooled batch its sink crashed on is set aside.
  void set_aside_crashed_batch();
  // Moves up to max_events (and one delivery's bytes) from the front of memory aside.
  Taken take_locked(uint64_t max_events);
  static Delivery build_delivery(const Taken& taken, std::string batch_id);
  // The events [begin, end) of `whole` as a delivery of their own.
  static Delivery sub_delivery(const Delivery& whole, size_t begin, size_t end,
                               std::string batch_id);
  // Returns events that were set aside but could not be spooled to the front of memory.
  void put_back_locked(Taken&& taken);
  // Adds the events of `batch` from `begin` (before end_limit, at most max_events in all) that
  // fit in one delivery to `taken`; returns where it stopped.
  size_t add_slice(Taken& taken, const std::shared_ptr<const TelemetryPost>& batch, size_t begin,
                   size_t end_limit, uint64_t max_events) const;
  bool write_to_spool(const Taken& taken, std::string batch_id, std::string* error);
  void note_spooled_locked(uint64_t events);  // a write succeeded: the counters follow
  size_t spool_arrival(std::unique_lock<std::mutex>& lock,
                       const std::shared_ptr<const TelemetryPost>& batch);
  // Moves the oldest held data to the spool until at most target_bytes are held. What the
  // spool cannot take is dropped (counted in *drop_counter), or with keep_on_failure stays.
  // Releases the lock around each spool write.
  void spill(std::unique_lock<std::mutex>& lock, size_t target_bytes,
             uint64_t OutletCounters::*drop_counter, const char* why, bool keep_on_failure = false);
  uint64_t still_spooled_locked(std::optional<uint64_t> quarantined_events = {}) const;
  // Writes an in-memory delivery to the spool; on success it leaves memory (current_ or pending_).
  bool spool_delivery(std::unique_lock<std::mutex>& lock, const std::shared_ptr<Current>& delivery,
                      const char* why, uint64_t* seq = nullptr);
  bool spool_current(std::unique_lock<std::mutex>& lock, const char* why, uint64_t* seq = nullptr);
  // Halves of pending_ and the like when nobody will deliver them here: spooled, or counted.
  void spool_pending(std::unique_lock<std::mutex>& lock, uint64_t OutletCounters::*drop_counter,
                     const char* why);
  // Replaces the current delivery by its two halves (ids <id>.1 and <id>.2): in memory for one
  // held there, in the spool (written before the original leaves) for a spooled one.
  bool split_current(std::unique_lock<std::mutex>& lock, const char* why,
                     const std::optional<RetryState>& inherited = std::nullopt);
  // A spooled delivery failed again: the poison rules (evidence, split, dead-letter).
  void note_failure(std::unique_lock<std::mutex>& lock, uint64_t seq, uint64_t now);
  void dead_letter(std::unique_lock<std::mutex>& lock, uint64_t seq, const RetryState& state,
                   uint64_t now);
  // Moves a spooled delivery of `events` to the dead-letter folder and counts it; says where.
  std::string move_to_dead_letter(std::unique_lock<std::mutex>& lock, uint64_t seq,
                                  uint64_t events);
  // The oldest spooled delivery that may be attempted now. With cooling_ok, when all failed
  // since the sink last succeeded: the one that failed longest ago.
  std::optional<uint64_t> pick_spooled_locked(uint64_t now, bool cooling_ok);
  std::shared_ptr<Current> read_spooled(std::unique_lock<std::mutex>& lock, uint64_t seq);
  // Whether telemetry that arrived before `mark` (an enqueued_events_ value) is still in memory;
  // how many events of it.
  uint64_t held_before_locked(uint64_t mark) const;
  void remove_spooled(std::unique_lock<std::mutex>& lock, uint64_t seq, uint64_t events);
  std::shared_ptr<Current> next_current(std::unique_lock<std::mutex>& lock);
  void settle_result(std::unique_lock<std::mutex>& lock, const DeliveryResult& result);
  void release_all_locked();
  bool failing_locked(uint64_t now) const;
  bool may_attempt_locked(uint64_t now) const;
  bool has_work_locked() const;
  bool settled_for_shutdown_locked() const;
  uint64_t next_backoff_ms();
  uint64_t memory_pending_locked() const;
  size_t memory_bytes_locked() const;
  void retry_now_locked();
  void note_spool_error_locked(const std::string& error, uint64_t events, const char* why);

  SinkPtr sink_;
  const std::string name_;  // the sink's, kept for the summary once the instance is destroyed
  OutletOptions options_;
  Poco::Logger& log_;             // looked up once: Logger::get locks a global registry
  std::unique_ptr<Spool> spool_;  // null when disabled or its folder is unusable
  uint64_t spool_quarantined_at_start_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable wake_;  // work released, retry time, shutdown, or stop
  std::condition_variable idle_;  // memory drained, a delivery settled, or local I/O done
  std::deque<Held> queue_;
  size_t queue_bytes_ = 0;        // of the batches in queue_ (a batch counts until fully taken)
  uint64_t queued_events_ = 0;    // in queue_, not taken yet
  uint64_t released_events_ = 0;  // events at the front of queue_ the policy let go
  uint64_t aside_events_ = 0;     // taken out of queue_ and not yet a delivery or in the spool
  size_t aside_bytes_ = 0;
  uint64_t spool_events_ = 0;  // in the spool as this outlet accounts them (see counters())
  uint64_t spool_files_ = 0;
  std::shared_ptr<Current> current_;
  std::deque<std::shared_ptr<Current>> pending_;  // halves of a split held in memory: next up
  std::map<uint64_t, RetryState> retry_states_;   // by spool seq; those that failed
  uint64_t successes_ = 0;                        // successful sink calls
  uint64_t spool_blocked_until_ms_ = 0;           // every spooled delivery waits on its own backoff
  uint64_t enqueued_events_ = 0;  // ever put in queue_ (arrival index for flush_until)
  uint64_t dequeued_events_ = 0;  // ever taken or dropped from queue_
  Phase phase_ = Phase::kIdle;
  bool disabled_ = false;
  bool shutting_down_ = false;
  bool stop_ = false;
  // The sink's calls at shutdown: finish_shutdown ends the outlet thread (kCallsEnded) unless the
  // sink is stuck in deliver (kStuck); then flush_sink, then destroy_sink.
  enum class SinkState { kOpen, kStuck, kCallsEnded, kFlushing, kFlushed, kDestroyed };
  SinkState sink_state_ = SinkState::kOpen;
  uint64_t shutdown_deadline_ms_ = 0;
  uint64_t next_attempt_ms_ = 0;       // no sink call before this (backoff / Retry-After)
  uint64_t retry_after_until_ms_ = 0;  // the sink's Retry-After; on_invoke does not cut it
  uint64_t next_tick_ms_ = 0;          // periodic mode
  struct DeferredMark {
    uint64_t left = 0;  // pending when the last flush_until deadline passed
    uint64_t gone = 0;  // events that had left memory by then (received - pending)
  } deferred_mark_;
  uint32_t consecutive_failures_ = 0;
  bool outage_spill_pending_ = false;  // a failing streak began: move what is held to the spool
  bool trim_after_burst_ = false;      // memory reached the high-water mark: trim once drained
  std::string last_error_;             // of the current failure streak, for the shutdown report
  bool overflow_logged_ = false;       // one warning per overflow streak
  bool too_large_logged_ = false;      // one warning per process for splits by size
  bool spool_error_logged_ = false;    // one warning per spool failure streak
  OutletCounters counters_;
  std::mt19937_64 random_{std::random_device{}()};  // backoff jitter and batch ids
  std::thread thread_;
};

// A random 128-bit id as 32 lowercase hex digits.
std::string make_batch_id(std::mt19937_64& random);

}  // namespace relay
