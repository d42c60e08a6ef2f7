#include "outlet.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "batch_parser.h"
#include "logging.h"
#include "spool.h"

namespace relay {

uint64_t now_unix_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

std::string make_batch_id(std::mt19937_64& random) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (size_t half = 0; half < 2; ++half) {
    uint64_t bits = random();
    for (size_t i = 0; i < 16; ++i, bits >>= 4) id[half * 16 + i] = kHex[bits & 0xf];
  }
  return id;
}

namespace {

// A server asking for longer than this is treated as asking for this: the data is safe in the
// spool meanwhile, and a wrong header must not park a sink for hours.
constexpr uint64_t kMaxRetryAfterMs = 60000;

std::chrono::system_clock::time_point to_time_point(uint64_t unix_ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(unix_ms));
}

// Re-points a view that lived inside `from` to the same bytes inside `to`.
std::string_view rebase(std::string_view part, std::string_view from, const char* to) {
  if (part.empty()) return {};
  return {to + (part.data() - from.data()), part.size()};
}

// A spooled delivery holds only its JSON; the sink interface also hands the events, so they
// are found again (on replay only, never on the hot path). Same bytes, same id.
std::optional<Delivery> delivery_from_spool(SpooledDelivery&& entry, std::string* error) {
  ParseResult parsed = parse_batch(entry.json);
  if (!parsed.batch) {
    *error = parsed.error.message;
    return std::nullopt;
  }
  Delivery delivery;
  delivery.batch_id = std::move(entry.batch_id);
  delivery.json = std::move(entry.json);
  const char* body = parsed.batch->body->data();
  delivery.events.reserve(parsed.batch->events.size());
  for (const TelemetryEvent& event : parsed.batch->events) {
    const char* base = delivery.json.data() + (event.json.data() - body);
    delivery.events.push_back(TelemetryEvent{{base, event.json.size()},
                                             rebase(event.type, event.json, base),
                                             rebase(event.time, event.json, base),
                                             rebase(event.record, event.json, base)});
  }
  return delivery;
}

}  // namespace

Outlet::Outlet(SinkPtr sink, OutletOptions options)
    : sink_(std::move(sink)), options_(std::move(options)), log_(logger("outlet")) {
  if (options_.spool.enabled && options_.spool.dir.empty()) {
    log_.warning("sink %s: no spool folder configured: spool off", name());
  } else if (options_.spool.enabled) {
    try {
      spool_ = std::make_unique<Spool>(
          SpoolLimits{options_.spool.dir, options_.spool.max_bytes, options_.spool.max_files});
      // Files found bad while indexing count as inherited and lost (dropped_corrupt) alike.
      counters_.inherited = spool_->events() + spool_->quarantined_events();
      if (spool_->files() > 0) {
        log_.information(
            "sink %s: %Lu deliveries (%Lu events) spooled by an earlier process in %s will be "
            "replayed",
            name(), spool_->files(), spool_->events(), options_.spool.dir);
      }
    } catch (const std::exception& e) {
      log_.error("sink %s: spool off, telemetry beyond memory will be dropped: %s", name(),
                 std::string(e.what()));
    }
  }
  if (options_.flush.mode == FlushMode::kPeriodic) {
    options_.flush.period_ms = std::max<uint32_t>(options_.flush.period_ms, 1);
    next_tick_ms_ = now_unix_ms() + options_.flush.period_ms;
  }
  thread_ = std::thread([this] { run(); });
}

Outlet::~Outlet() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint64_t Outlet::queued_events_locked() const {
  uint64_t events = 0;
  for (const Held& held : queue_) events += held.batch.events.size() - held.next_event;
  return events;
}

uint64_t Outlet::memory_pending_locked() const {
  const bool in_memory = current_ && !current_->spool_seq;
  return queued_events_locked() + (in_memory ? current_->events : 0);
}

size_t Outlet::memory_bytes_locked() const {
  const bool in_memory = current_ && !current_->spool_seq;
  return queue_bytes_ + (in_memory ? current_->delivery.json.size() : 0);
}

std::optional<Delivery> Outlet::form_delivery_locked(uint64_t max_events) {
  // Gather events from the front, up to delivery_max_bytes (always at least one).
  size_t bytes = 2;
  uint64_t count = 0;
  for (const Held& held : queue_) {
    bool full = false;
    for (size_t i = held.next_event; i < held.batch.events.size(); ++i) {
      if (count == max_events || (count > 0 && bytes + held.batch.events[i].json.size() + 1 >
                                                   options_.delivery_max_bytes)) {
        full = true;
        break;
      }
      bytes += held.batch.events[i].json.size() + 1;
      ++count;
    }
    if (full) break;
  }
  if (count == 0) return std::nullopt;

  Delivery delivery;
  delivery.batch_id = make_batch_id(random_);
  delivery.json.reserve(bytes);
  delivery.events.reserve(count);
  delivery.json.push_back('[');
  uint64_t taken = 0;
  // Copy the bytes, then point the views at the copy (reserved: the string does not move).
  std::vector<std::pair<const TelemetryEvent*, size_t>> placed;
  placed.reserve(count);
  for (Held& held : queue_) {
    while (held.next_event < held.batch.events.size() && taken < count) {
      const TelemetryEvent& event = held.batch.events[held.next_event++];
      if (taken > 0) delivery.json.push_back(',');
      placed.emplace_back(&event, delivery.json.size());
      delivery.json.append(event.json);
      ++taken;
    }
    if (taken == count) break;
  }
  delivery.json.push_back(']');
  for (const auto& [event, offset] : placed) {
    const char* base = delivery.json.data() + offset;
    delivery.events.push_back(TelemetryEvent{{base, event->json.size()},
                                             rebase(event->type, event->json, base),
                                             rebase(event->time, event->json, base),
                                             rebase(event->record, event->json, base)});
  }
  // Released events are the oldest, so the first ones taken were released ones.
  released_events_ -= std::min(released_events_, count);
  // Fully consumed batches go: their bytes now live in the delivery.
  while (!queue_.empty() && queue_.front().next_event == queue_.front().batch.events.size()) {
    queue_bytes_ -= queue_.front().batch.byte_size();
    queue_.pop_front();
  }
  return delivery;
}

bool Outlet::spool_put_locked(const Delivery& delivery, const char* why) {
  if (!spool_) return false;
  std::string error;
  if (spool_->put(delivery.batch_id, delivery.json, delivery.events.size(), &error)) {
    counters_.spooled += delivery.events.size();
    spool_error_logged_ = false;
    return true;
  }
  if (!spool_error_logged_) {
    spool_error_logged_ = true;
    log_.warning("sink %s: could not spool %z events (%s): %s", name(), delivery.events.size(),
                 std::string(why), error);
  }
  return false;
}

void Outlet::spill_locked(size_t target_bytes, uint64_t OutletCounters::*drop_counter,
                          const char* why) {
  uint64_t spooled = 0;
  uint64_t dropped = 0;
  while (!queue_.empty() && queue_bytes_ > target_bytes) {
    if (!spool_) {  // nothing to write: let whole batches go without copying them
      const Held& oldest = queue_.front();
      const uint64_t events = oldest.batch.events.size() - oldest.next_event;
      dropped += events;
      released_events_ -= std::min(released_events_, events);
      queue_bytes_ -= oldest.batch.byte_size();
      queue_.pop_front();
      continue;
    }
    // One held batch at a time: spill no more than needed.
    const Held& oldest = queue_.front();
    std::optional<Delivery> delivery =
        form_delivery_locked(oldest.batch.events.size() - oldest.next_event);
    if (!delivery) break;
    if (spool_put_locked(*delivery, why)) {
      spooled += delivery->events.size();
    } else {
      dropped += delivery->events.size();
    }
  }
  counters_.*drop_counter += dropped;
  if ((spooled > 0 || dropped > 0) && !overflow_logged_) {
    overflow_logged_ = true;  // until the next successful delivery
    log_.warning("sink %s: %s: %Lu events spooled, %Lu dropped", name(), std::string(why), spooled,
                 dropped);
  }
}

void Outlet::enqueue(TelemetryBatch batch) {
  if (batch.events.empty()) return;
  std::lock_guard lock(mutex_);
  const uint64_t events = batch.events.size();
  const size_t bytes = batch.byte_size();
  counters_.received += events;
  if (stop_ || disabled_) {
    // Nobody will deliver it in this process: straight to the spool, or counted.
    queue_.push_back(Held{std::move(batch), 0});
    queue_bytes_ += bytes;
    if (stop_) {
      spill_locked(0, &OutletCounters::dropped_at_shutdown, "arrived after the shutdown deadline");
    } else {
      spill_locked(0, &OutletCounters::dropped_disabled, "the sink is disabled");
    }
    return;
  }
  if (memory_bytes_locked() + bytes > options_.buffer_max_bytes) {
    const size_t in_flight = memory_bytes_locked() - queue_bytes_;
    const size_t room = options_.buffer_max_bytes - std::min(options_.buffer_max_bytes, bytes);
    spill_locked(room - std::min(room, in_flight), &OutletCounters::dropped_by_cap,
                 "over RELAY_BUFFER_MAX_BYTES (the sink is slower than the telemetry, or down)");
  }
  queue_.push_back(Held{std::move(batch), 0});
  queue_bytes_ += bytes;
  if (shutting_down_ || options_.flush.mode == FlushMode::kContinuous) {
    released_events_ += events;
    wake_.notify_all();
  }
}

void Outlet::retry_now_locked() {
  // The sink's Retry-After still holds; only our own backoff is cut short.
  next_attempt_ms_ = retry_after_until_ms_;
}

void Outlet::on_invoke() {
  std::lock_guard lock(mutex_);
  if (options_.flush.mode == FlushMode::kNextInvoke) {
    const uint64_t queued = queued_events_locked();
    // The seed's rule, exactly: dispatch only when MORE events than the minimum were collected.
    if (static_cast<int64_t>(queued) > options_.min_batch_size) released_events_ = queued;
  }
  retry_now_locked();
  wake_.notify_all();
}

bool Outlet::flush_until(uint64_t deadline_unix_ms) {
  std::unique_lock lock(mutex_);
  released_events_ = queued_events_locked();
  retry_now_locked();
  wake_.notify_all();
  idle_.wait_until(lock, to_time_point(deadline_unix_ms),
                   [this] { return disabled_ || stop_ || memory_pending_locked() == 0; });
  const uint64_t left = memory_pending_locked();
  // Count each event once, however many budgets it outlives. Events leave memory oldest first,
  // so those deferred last time and still here are the oldest of `left`.
  const uint64_t gone = counters_.received - left;
  const uint64_t gone_since = gone - deferred_mark_.gone;
  const uint64_t still_deferred =
      deferred_mark_.left > gone_since ? deferred_mark_.left - gone_since : 0;
  const uint64_t newly_deferred = left > still_deferred ? left - still_deferred : 0;
  counters_.deferred += newly_deferred;
  deferred_mark_ = {left, gone};
  if (left > 0 && log_.debug()) {
    log_.debug("sink %s: %Lu events deferred past the flush deadline (%Lu newly)", name(), left,
               newly_deferred);
  }
  return left == 0;
}

void Outlet::begin_shutdown(uint64_t deadline_unix_ms) {
  std::lock_guard lock(mutex_);
  shutting_down_ = true;
  shutdown_deadline_ms_ = deadline_unix_ms;
  released_events_ = queued_events_locked();
  retry_now_locked();
  wake_.notify_all();
}

bool Outlet::settled_for_shutdown_locked() const {
  if (delivering_) return false;
  if (disabled_) return true;
  const bool spool_empty = !spool_ || spool_->files() == 0;
  if (memory_pending_locked() == 0 && spool_empty) return true;
  // The next attempt would come after the deadline (backoff or the sink's Retry-After).
  return next_attempt_ms_ >= shutdown_deadline_ms_;
}

bool Outlet::finish_shutdown(uint64_t deadline_unix_ms) {
  std::unique_lock lock(mutex_);
  idle_.wait_until(lock, to_time_point(deadline_unix_ms),
                   [this] { return settled_for_shutdown_locked(); });
  stop_ = true;
  const bool sink_busy = delivering_;
  // What is still in memory: the delivery being attempted (a stuck sink may keep reading it,
  // it holds its own reference) and everything held. Spooled for the next start, or counted.
  const uint64_t spooled_before = counters_.spooled;
  const uint64_t dropped_before = counters_.dropped_at_shutdown;
  if (current_ && !current_->spool_seq) {
    if (!spool_put_locked(current_->delivery, "at the shutdown deadline")) {
      counters_.dropped_at_shutdown += current_->events;
    }
  }
  current_.reset();
  spill_locked(0, &OutletCounters::dropped_at_shutdown, "at the shutdown deadline");
  released_events_ = 0;
  const uint64_t spooled_now = counters_.spooled - spooled_before;
  const uint64_t dropped_now = counters_.dropped_at_shutdown - dropped_before;
  const uint64_t still_spooled = spool_ ? spool_->events() : 0;
  const bool disabled = disabled_;
  wake_.notify_all();
  lock.unlock();

  if (sink_busy) {
    // The sink is stuck past the deadline. The process exits right after without destructors;
    // elsewhere (tests) the destructor joins the thread once the sink returns.
    log_.error("sink %s: still delivering at the shutdown deadline", name());
  } else {
    thread_.join();
    if (!disabled && now_unix_ms() < deadline_unix_ms) {
      const DeliveryResult flushed = sink_->flush(deadline_unix_ms);
      if (flushed.status != DeliveryStatus::kOk) {
        log_.warning("sink %s: flush at shutdown answered %s: %s", name(),
                     std::string(to_string(flushed.status)), flushed.error);
      }
    }
  }
  if (spooled_now > 0 || dropped_now > 0 || still_spooled > 0) {
    std::lock_guard relock(mutex_);
    log_.error(
        "sink %s: not delivered by the shutdown deadline: %Lu events spooled now, %Lu dropped, "
        "%Lu in the spool in all%s",
        name(), spooled_now, dropped_now, still_spooled,
        last_error_.empty() ? std::string() : " (last error: " + last_error_ + ")");
  }
  return spooled_now == 0 && dropped_now == 0 && still_spooled == 0;
}

OutletCounters Outlet::counters() const {
  std::lock_guard lock(mutex_);
  OutletCounters copy = counters_;
  copy.queued = memory_pending_locked();
  copy.queued_bytes = memory_bytes_locked();
  if (spool_) {
    copy.still_spooled = spool_->events();
    copy.spool_quarantined_files = spool_->quarantined();
    copy.dropped_corrupt += spool_->quarantined_events();
  }
  copy.disabled = disabled_;
  return copy;
}

std::shared_ptr<Outlet::Current> Outlet::next_current_locked() {
  // The spool first: what is in it is older than anything in memory.
  while (spool_ && spool_->files() > 0) {
    // oldest() moves files that fail validation aside; the spool counts what they held.
    std::optional<SpooledDelivery> entry = spool_->oldest();
    if (!entry) break;
    const uint64_t entry_events = entry->events;
    const uint64_t seq = entry->seq;
    std::string error;
    std::optional<Delivery> delivery = delivery_from_spool(std::move(*entry), &error);
    if (delivery) {
      return std::make_shared<Current>(Current{std::move(*delivery), seq, entry_events});
    }
    // Checksummed yet not a JSON array of events: written by something else. Never crash on it.
    log_.error("sink %s: spooled delivery %Lu is not a batch of events, removed: %s", name(), seq,
               error);
    spool_->remove(seq);
    counters_.dropped_corrupt += entry_events;
  }
  if (released_events_ > 0) {
    std::optional<Delivery> delivery = form_delivery_locked(released_events_);
    if (delivery) {
      const uint64_t events = delivery->events.size();
      return std::make_shared<Current>(Current{std::move(*delivery), std::nullopt, events});
    }
  }
  return nullptr;
}

uint64_t Outlet::next_backoff_ms() {
  // Exponential backoff with full jitter: spreads retries and never exceeds retry_max_ms.
  const uint32_t shift = std::min<uint32_t>(consecutive_failures_, 16);
  const uint64_t ceiling =
      std::min<uint64_t>(options_.retry_max_ms, uint64_t{options_.retry_base_ms} << shift);
  ++consecutive_failures_;
  std::uniform_int_distribution<uint64_t> pick(0, ceiling);
  return pick(random_);
}

bool Outlet::has_work_locked() const {
  return current_ || released_events_ > 0 || (spool_ && spool_->files() > 0);
}

bool Outlet::may_attempt_locked(uint64_t now) const {
  if (disabled_ || now < next_attempt_ms_) return false;
  return !shutting_down_ || now < shutdown_deadline_ms_;
}

void Outlet::settle_result_locked(const DeliveryResult& result) {
  Current& current = *current_;
  const uint64_t events = current.events;
  switch (result.status) {
    case DeliveryStatus::kOk:
      if (current.spool_seq) {
        spool_->remove(*current.spool_seq);
        counters_.replayed += events;
      }
      if (result.discarded) {
        counters_.discarded += events;
      } else {
        counters_.delivered += events;
        ++counters_.deliveries;
      }
      if (consecutive_failures_ > 0) {
        log_.information("sink %s: delivering again after %u failed attempts", name(),
                         consecutive_failures_);
      }
      consecutive_failures_ = 0;
      next_attempt_ms_ = 0;
      retry_after_until_ms_ = 0;
      overflow_logged_ = false;
      last_error_.clear();
      // Poco's variadic debug() formats before it checks the level: once per delivery.
      if (log_.debug()) {
        log_.debug("sink %s: %s %Lu events (%z bytes, batch %s)", name(),
                   std::string(result.discarded ? "discarded" : "delivered"), events,
                   current.delivery.json.size(), current.delivery.batch_id);
      }
      break;
    case DeliveryStatus::kRetry: {
      counters_.retried += events;
      ++counters_.retries;
      // The first failure of a streak says why at warning; the retries after it at debug.
      if (consecutive_failures_ == 0) {
        log_.warning("sink %s: delivery failed, will retry: %s", name(), result.error);
      }
      last_error_ = result.error;
      const uint64_t backoff = next_backoff_ms();
      const uint64_t hint = std::min(result.retry_after_ms, kMaxRetryAfterMs);
      const uint64_t now = now_unix_ms();
      retry_after_until_ms_ = hint > 0 ? now + hint : 0;
      next_attempt_ms_ = now + std::max(backoff, hint);
      if (log_.debug()) {
        log_.debug("sink %s: batch %s retry in %Lu ms (Retry-After %Lu ms): %s", name(),
                   current.delivery.batch_id, std::max(backoff, hint), hint, result.error);
      }
      // After a failed first attempt the delivery lives in the spool, so a crash loses nothing;
      // its retries read it back from there. Without a spool it stays in memory.
      if (current.spool_seq || spool_put_locked(current.delivery, "after a failed attempt")) {
        current_.reset();
      }
      return;
    }
    case DeliveryStatus::kDrop:
      counters_.dropped_by_sink += events;
      if (current.spool_seq) spool_->remove(*current.spool_seq);
      log_.warning("sink %s dropped %Lu events (batch %s): %s", name(), events,
                   current.delivery.batch_id, result.error);
      break;
    case DeliveryStatus::kFatal:
      disabled_ = true;
      log_.error("sink %s answered FATAL and is disabled; its telemetry goes to the spool%s: %s",
                 name(), std::string(spool_ ? "" : " (off: dropped and counted)"), result.error);
      if (!current.spool_seq && !spool_put_locked(current.delivery, "the sink is disabled")) {
        counters_.dropped_disabled += events;
      }
      current_.reset();
      spill_locked(0, &OutletCounters::dropped_disabled, "the sink is disabled");
      released_events_ = 0;
      return;
  }
  current_.reset();
}

void Outlet::run() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    const uint64_t now = now_unix_ms();
    if (options_.flush.mode == FlushMode::kPeriodic && now >= next_tick_ms_) {
      released_events_ = queued_events_locked();
      next_tick_ms_ = now + options_.flush.period_ms;
    }
    bool nothing_to_send = false;
    if (may_attempt_locked(now)) {
      if (!current_) current_ = next_current_locked();
      if (current_) {
        const std::shared_ptr<Current> attempt = current_;  // outlives a shutdown letting go
        const uint64_t deadline =
            shutting_down_ ? shutdown_deadline_ms_ : now + options_.attempt_timeout_ms;
        delivering_ = true;
        lock.unlock();
        DeliveryResult result;
        try {
          result = sink_->deliver(attempt->delivery, deadline);
        } catch (const std::exception& e) {  // the SDK catches; a host-side sink might not
          result = DeliveryResult{DeliveryStatus::kDrop, e.what()};
        }
        lock.lock();
        delivering_ = false;
        if (stop_) break;  // finish_shutdown settled it
        settle_result_locked(result);
        idle_.notify_all();
        continue;
      }
      nothing_to_send = true;
    }
    idle_.notify_all();
    uint64_t wake_at = std::numeric_limits<uint64_t>::max();
    if (options_.flush.mode == FlushMode::kPeriodic) wake_at = next_tick_ms_;
    // Waiting out a backoff or Retry-After. (Disabled, or past the shutdown deadline: only a
    // notification wakes us.)
    if (!nothing_to_send && !disabled_ && has_work_locked() && next_attempt_ms_ > now) {
      wake_at = std::min(wake_at, next_attempt_ms_);
    }
    if (wake_at == std::numeric_limits<uint64_t>::max()) {
      wake_.wait(lock);
    } else {
      wake_.wait_until(lock, to_time_point(wake_at));
    }
  }
  idle_.notify_all();
}

}  // namespace relay
