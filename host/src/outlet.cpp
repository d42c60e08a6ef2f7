#include "outlet.h"

#include <algorithm>
#include <chrono>

#include "logging.h"

namespace relay {

uint64_t now_unix_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

namespace {

std::chrono::system_clock::time_point to_time_point(uint64_t unix_ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(unix_ms));
}

// Re-points a view that lived inside `from` to the same bytes inside `to`.
std::string_view rebase(std::string_view part, std::string_view from, const char* to) {
  if (part.empty()) return {};
  return {to + (part.data() - from.data()), part.size()};
}

}  // namespace

Outlet::Outlet(SinkPtr sink, OutletOptions options)
    : sink_(std::move(sink)),
      options_(options),
      log_(logger("outlet")),
      thread_([this] { run(); }) {}

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

void Outlet::drop_oldest_locked(size_t incoming_bytes) {
  uint64_t dropped = 0;
  while (!queue_.empty() && queue_bytes_ + incoming_bytes > options_.queue_max_bytes) {
    const Held& oldest = queue_.front();
    const uint64_t events = oldest.batch.events.size() - oldest.next_event;
    dropped += events;
    released_events_ -= std::min(released_events_, events);
    queue_bytes_ -= oldest.batch.byte_size();
    queue_.pop_front();
  }
  if (dropped > 0) {
    counters_.dropped_by_cap += dropped;
    log_.warning(
        "sink %s: in-memory queue over RELAY_QUEUE_MAX_BYTES=%z: dropped "
        "the %Lu oldest events (sink slower than the telemetry, or down)",
        name(), options_.queue_max_bytes, dropped);
  }
}

void Outlet::enqueue(TelemetryBatch batch) {
  if (batch.events.empty()) return;
  std::lock_guard lock(mutex_);
  counters_.received += batch.events.size();
  if (stop_) {  // arrived after the shutdown deadline settled everything: nobody will send it
    counters_.dropped_at_shutdown += batch.events.size();
    return;
  }
  if (disabled_) {
    counters_.dropped_disabled += batch.events.size();
    return;
  }
  const size_t bytes = batch.byte_size();
  const size_t events = batch.events.size();
  drop_oldest_locked(bytes);
  queue_.push_back(Held{std::move(batch), 0});
  queue_bytes_ += bytes;
  if (shutting_down_) {
    released_events_ += events;
    wake_.notify_all();
  }
}

void Outlet::on_invoke() {
  std::lock_guard lock(mutex_);
  const uint64_t queued = queued_events_locked();
  // The seed's rule, exactly: dispatch only when MORE events than the minimum were collected.
  if (static_cast<int64_t>(queued) > options_.min_batch_size) {
    released_events_ = queued;
    wake_.notify_all();
  }
}

void Outlet::begin_shutdown(uint64_t deadline_unix_ms) {
  std::lock_guard lock(mutex_);
  shutting_down_ = true;
  shutdown_deadline_ms_ = deadline_unix_ms;
  released_events_ = queued_events_locked();
  consecutive_retries_ = 0;  // a retry waiting out its backoff goes again now
  wake_.notify_all();
}

bool Outlet::finish_shutdown(uint64_t deadline_unix_ms) {
  std::unique_lock lock(mutex_);
  idle_.wait_until(lock, to_time_point(deadline_unix_ms), [this] {
    return disabled_ || (queue_.empty() && !delivering_ && in_flight_events_ == 0);
  });
  const uint64_t left = queued_events_locked() + in_flight_events_;
  counters_.dropped_at_shutdown += left;
  queue_.clear();
  queue_bytes_ = 0;
  released_events_ = 0;
  in_flight_events_ = 0;
  stop_ = true;
  const bool sink_busy = delivering_;
  wake_.notify_all();
  lock.unlock();

  if (sink_busy) {
    // The sink is stuck past the deadline; the process exits right after, so let it be.
    log_.error("sink %s: still delivering at the shutdown deadline", name());
    thread_.detach();
    return false;
  }
  thread_.join();
  if (!disabled_ && now_unix_ms() < deadline_unix_ms) {
    const DeliveryResult flushed = sink_->flush(deadline_unix_ms);
    if (flushed.status != DeliveryStatus::kOk) {
      log_.warning("sink %s: flush at shutdown answered %s: %s", name(),
                   std::string(to_string(flushed.status)), flushed.error);
    }
  }
  if (left > 0) {
    std::lock_guard relock(mutex_);
    log_.error("sink %s: %Lu events not delivered by the shutdown deadline%s", name(), left,
               last_error_.empty() ? std::string() : " (last error: " + last_error_ + ")");
  }
  return left == 0;
}

OutletCounters Outlet::counters() const {
  std::lock_guard lock(mutex_);
  OutletCounters copy = counters_;
  copy.queued = queued_events_locked() + in_flight_events_;
  copy.queued_bytes = queue_bytes_;
  return copy;
}

std::optional<Delivery> Outlet::take_delivery_locked() {
  // Gather released events up to delivery_max_bytes (always at least one).
  size_t bytes = 2;
  size_t count = 0;
  for (const Held& held : queue_) {
    bool full = false;
    for (size_t i = held.next_event; i < held.batch.events.size(); ++i) {
      if (count == released_events_ || (count > 0 && bytes + held.batch.events[i].json.size() + 1 >
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
  delivery.json.reserve(bytes);
  delivery.events.reserve(count);
  delivery.json.push_back('[');
  size_t taken = 0;
  // Copy the bytes, then point the views at the copy (reserved: the string does not move).
  // The source batches stay queued until run() pops them, after this returns.
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
  return delivery;
}

std::chrono::milliseconds Outlet::next_backoff() {
  // Exponential backoff with full jitter: spreads retries and never exceeds retry_max_ms.
  const uint32_t shift = std::min<uint32_t>(consecutive_retries_, 16);
  const uint64_t ceiling =
      std::min<uint64_t>(options_.retry_max_ms, uint64_t{options_.retry_base_ms} << shift);
  ++consecutive_retries_;
  std::uniform_int_distribution<uint64_t> pick(ceiling / 2, ceiling);
  return std::chrono::milliseconds(pick(jitter_));
}

void Outlet::run() {
  std::unique_lock lock(mutex_);
  std::optional<Delivery> current;
  while (true) {
    if (!current) {
      wake_.wait(lock, [this] { return stop_ || (released_events_ > 0 && !disabled_); });
      if (stop_) break;
      current = take_delivery_locked();
      if (!current) continue;
      released_events_ -= current->events.size();
      in_flight_events_ = current->events.size();
      // Drop fully consumed batches: their bytes now live in the delivery.
      while (!queue_.empty() && queue_.front().next_event == queue_.front().batch.events.size()) {
        queue_bytes_ -= queue_.front().batch.byte_size();
        queue_.pop_front();
      }
    }
    const uint64_t deadline =
        shutting_down_ ? shutdown_deadline_ms_ : now_unix_ms() + options_.attempt_timeout_ms;
    delivering_ = true;
    lock.unlock();
    const DeliveryResult result = sink_->deliver(*current, deadline);
    lock.lock();
    delivering_ = false;
    if (stop_) break;

    const uint64_t events = current->events.size();
    switch (result.status) {
      case DeliveryStatus::kOk:
        counters_.delivered += events;
        ++counters_.deliveries;
        if (consecutive_retries_ > 0) {
          log_.information("sink %s: delivering again after %u retries", name(),
                           consecutive_retries_);
        }
        consecutive_retries_ = 0;
        last_error_.clear();
        // Poco's variadic debug() formats before it checks the level: once per delivery.
        if (log_.debug()) {
          log_.debug("sink %s: delivered %Lu events (%z bytes)", name(), events,
                     current->json.size());
        }
        break;
      case DeliveryStatus::kRetry: {
        ++counters_.retries;
        // The first failure of a streak says why at warning; the retries after it at debug.
        if (consecutive_retries_ == 0) {
          log_.warning("sink %s: delivery failed, will retry: %s", name(), result.error);
        }
        last_error_ = result.error;
        const auto backoff = next_backoff();
        if (log_.debug()) {
          log_.debug("sink %s: retry in %Ld ms: %s", name(), static_cast<int64_t>(backoff.count()),
                     result.error);
        }
        const uint32_t retries_before = consecutive_retries_;
        // A shutdown starting while we wait retries at once (begin_shutdown resets the count).
        wake_.wait_for(lock, backoff,
                       [&] { return stop_ || consecutive_retries_ < retries_before; });
        if (stop_) break;
        continue;  // the same delivery again, same bytes
      }
      case DeliveryStatus::kFatal:
        disabled_ = true;
        counters_.dropped_disabled += events + queued_events_locked();
        log_.error("sink %s answered FATAL and is disabled: %s", name(), result.error);
        queue_.clear();
        queue_bytes_ = 0;
        released_events_ = 0;
        break;
      case DeliveryStatus::kDrop:
        counters_.dropped_by_sink += events;
        log_.warning("sink %s dropped %Lu events: %s", name(), events, result.error);
        break;
    }
    current.reset();
    in_flight_events_ = 0;
    idle_.notify_all();
  }
  idle_.notify_all();
}

}  // namespace relay
