#include "outlet.h"

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <limits>

#include "crash_guard.h"
#include "logging.h"
#include "spool.h"

namespace relay {

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

constexpr int kDeliveryNice = 10;

// What memory really holds for telemetry, for the cap: the bytes, the per-event views
// (TelemetryEvent, 64 bytes: more than a short log line's share) and a per-batch constant
// (control block, string and vector headers, queue entry).
constexpr size_t kPerBatchBytes = 192;

size_t held_cost(const TelemetryPost& batch) {
  return batch.byte_size() + batch.events.capacity() * sizeof(TelemetryEvent) + kPerBatchBytes;
}

size_t delivery_cost(size_t json_bytes, uint64_t events) {
  return json_bytes + events * sizeof(TelemetryEvent) + kPerBatchBytes;
}

// Re-points a view that lived inside `from` to the same bytes inside `to`.
std::string_view rebase(std::string_view part, std::string_view from, const char* to) {
  if (part.empty()) return {};
  return {to + (part.data() - from.data()), part.size()};
}

// A delivery's event views point into its json, so those bytes must never sit in the string
// object itself (the small-string buffer of a tiny body such as "[{}]"): moving the delivery
// would leave the views behind. Past that buffer the bytes are on the heap and stay put.
void keep_on_heap(std::string& json) {
  if (json.capacity() < sizeof(std::string)) json.reserve(sizeof(std::string));
}

// One JSON array of the events for_each_event visits, in order, with views into the copy.
template <class ForEachEvent>
Delivery assemble(std::string batch_id, size_t json_bytes, uint64_t events,
                  ForEachEvent for_each_event) {
  Delivery delivery;
  delivery.batch_id = std::move(batch_id);
  delivery.json.reserve(json_bytes);
  keep_on_heap(delivery.json);
  delivery.events.reserve(events);
  delivery.json.push_back('[');
  // Copy the bytes, then point the views at the copy (reserved: the string does not move).
  for_each_event([&](const TelemetryEvent& event) {
    if (delivery.json.size() > 1) delivery.json.push_back(',');
    delivery.json.append(event.json);
  });
  delivery.json.push_back(']');
  size_t offset = 1;
  for_each_event([&](const TelemetryEvent& event) {
    const char* base = delivery.json.data() + offset;
    delivery.events.push_back(TelemetryEvent{{base, event.json.size()},
                                             rebase(event.type, event.json, base),
                                             rebase(event.time, event.json, base),
                                             rebase(event.record, event.json, base)});
    offset += event.json.size() + 1;
  });
  return delivery;
}

// Suspect deliveries wait longer between their own attempts, up to this.
constexpr uint64_t kMaxSuspectBackoffMs = 60000;

// A spooled delivery holds its JSON and where each event lies in it (validated by the spool), so
// the sink's event views are rebuilt without parsing. Same bytes, same id. Never fails (the
// optional and *error are kept for the caller).
std::optional<Delivery> delivery_from_spool(SpooledDelivery&& entry, std::string* /*error*/) {
  Delivery delivery;
  delivery.batch_id = std::move(entry.batch_id);
  delivery.json = std::move(entry.json);
  keep_on_heap(delivery.json);
  delivery.events.reserve(entry.offsets.size());
  for (const SpooledEvent& event : entry.offsets)
    delivery.events.push_back(event.in(delivery.json));
  return delivery;
}

}  // namespace

Outlet::Outlet(SinkPtr sink, OutletOptions options)
    : sink_(std::move(sink)),
      name_(sink_->name()),
      options_(std::move(options)),
      log_(logger("outlet")) {
  if (options_.spool.enabled && options_.spool.dir.empty()) {
    log_.warning("sink %s: no spool folder configured: spool off", name());
  } else if (options_.spool.enabled) {
    try {
      spool_ = std::make_unique<Spool>(SpoolLimits{options_.spool.dir, options_.spool.max_bytes,
                                                   options_.spool.max_files,
                                                   options_.spool.before_fsync_for_test});
      // Files found bad while indexing count as inherited and lost (dropped_corrupt) alike.
      const SpoolStats found = spool_->stats();
      spool_events_ = found.events;
      spool_files_ = found.files;
      spool_quarantined_at_start_ = found.quarantined_events;
      counters_.inherited = spool_events_ + spool_quarantined_at_start_;
      set_aside_crashed_batch();
      record_crashes_in(name(), options_.spool.dir);
      if (spool_files_ > 0) {
        log_.information(
            "sink %s: %Lu deliveries (%Lu events) spooled by an earlier process in %s will be "
            "replayed",
            name(), spool_files_, spool_events_, options_.spool.dir);
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
  options_.flush_high_water_bytes = std::max<size_t>(options_.flush_high_water_bytes, 1);
  thread_ = std::thread([this] { run(); });
}

void Outlet::set_aside_crashed_batch() {
  // [constructor] A batch that crashed its sink crashes it again on every replay: one crash is
  // enough to move it to the dead-letter folder (kept, so being wrong costs little).
  const std::optional<CrashRecord> crash = read_and_clear_crash_marker(options_.spool.dir);
  if (!crash) return;
  std::string outcome;
  const std::vector<uint64_t> seqs =
      crash->batch_id.empty() ? std::vector<uint64_t>{} : spool_->seqs();
  std::unique_lock lock(mutex_);  // the outlet thread has not started: uncontended
  for (const uint64_t seq : seqs) {
    const std::optional<SpooledDelivery> spooled = spool_->read(seq);
    if (!spooled || spooled->batch_id != crash->batch_id) continue;
    outcome = "; it will not be replayed: " + move_to_dead_letter(lock, seq, spooled->events);
    break;
  }
  spool_files_ = spool_->stats().files;  // a read may have quarantined a file
  log_.error("%s in the previous process%s", crash->describe(), outcome);
}

Outlet::~Outlet() {
  {
    std::unique_lock lock(mutex_);
    stop_ = true;
    // Never in the extension (it exits without destructors); in tests, a flush that outlived
    // its deadline still uses this outlet.
    idle_.wait(lock, [this] { return sink_state_ != SinkState::kFlushing; });
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint64_t Outlet::memory_pending_locked() const {
  const bool in_memory = current_ && !current_->spool_seq;
  uint64_t events = queued_events_ + aside_events_ + (in_memory ? current_->events : 0);
  for (const auto& half : pending_) events += half->events;
  return events;
}

size_t Outlet::memory_bytes_locked() const {
  const bool in_memory = current_ && !current_->spool_seq;
  size_t bytes = queue_bytes_ + aside_bytes_ +
                 (in_memory ? delivery_cost(current_->delivery.json.size(), current_->events) : 0);
  for (const auto& half : pending_)
    bytes += delivery_cost(half->delivery.json.size(), half->events);
  return bytes;
}

uint64_t Outlet::held_before_locked(uint64_t mark) const {
  // Memory is FIFO: what arrived before the mark and was not taken yet is the front of queue_.
  uint64_t held = mark > dequeued_events_ ? mark - dequeued_events_ : 0;
  held += aside_events_;  // on its way to a delivery or the spool (milliseconds)
  if (current_ && !current_->spool_seq && current_->first_index < mark) held += current_->events;
  for (const auto& half : pending_) {
    if (half->first_index < mark) held += half->events;
  }
  return held;
}

void Outlet::release_all_locked() {
  if (released_events_ == queued_events_) return;
  released_events_ = queued_events_;
  wake_.notify_all();
}

size_t Outlet::add_slice(Taken& taken, const std::shared_ptr<const TelemetryPost>& batch,
                         size_t begin, size_t end_limit, uint64_t max_events) const {
  // Events from begin while the delivery has room (at least one event in all); the end index.
  size_t end = begin;
  while (end < end_limit && taken.events < max_events) {
    const size_t size = batch->events[end].json.size() + (taken.events > 0 ? 1 : 0);
    if (taken.events > 0 && taken.bytes + size > options_.delivery_max_bytes) break;
    taken.bytes += size;
    ++taken.events;
    ++end;
  }
  if (end > begin) taken.slices.push_back(Slice{batch, begin, end});
  return end;
}

Outlet::Taken Outlet::take_locked(uint64_t max_events) {
  // From the front, up to delivery_max_bytes (always at least one event).
  Taken taken;
  while (!queue_.empty() && taken.events < max_events) {
    Held& held = queue_.front();
    const size_t begin = held.next_event;
    const size_t end = add_slice(taken, held.batch, begin, held.end_event, max_events);
    if (end == begin) break;  // the delivery is full
    held.next_event = end;
    if (end < held.end_event) break;  // the delivery is full
    queue_bytes_ -= held_cost(*held.batch);
    queue_.pop_front();
  }
  queued_events_ -= taken.events;
  dequeued_events_ += taken.events;
  released_events_ -= std::min(released_events_, taken.events);
  aside_events_ += taken.events;
  aside_bytes_ += delivery_cost(taken.bytes, taken.events);
  return taken;
}

void Outlet::put_back_locked(Taken&& taken) {
  // Back to the front in their order, each slice its own entry: the queue may have moved on
  // meanwhile. (A batch split this way counts its bytes twice until it leaves: conservative.)
  for (auto it = taken.slices.rbegin(); it != taken.slices.rend(); ++it) {
    queue_.push_front(Held{it->batch, it->begin, it->end});
    queue_bytes_ += held_cost(*it->batch);
  }
  queued_events_ += taken.events;
  dequeued_events_ -= taken.events;
  aside_events_ -= taken.events;
  aside_bytes_ -= delivery_cost(taken.bytes, taken.events);
}

Delivery Outlet::build_delivery(const Taken& taken, std::string batch_id) {
  return assemble(std::move(batch_id), taken.bytes, taken.events, [&](auto&& visit) {
    for (const Slice& slice : taken.slices) {
      for (size_t i = slice.begin; i < slice.end; ++i) visit(slice.batch->events[i]);
    }
  });
}

Delivery Outlet::sub_delivery(const Delivery& whole, size_t begin, size_t end,
                              std::string batch_id) {
  size_t bytes = 2;
  for (size_t i = begin; i < end; ++i) bytes += whole.events[i].json.size() + 1;
  return assemble(std::move(batch_id), bytes, end - begin, [&](auto&& visit) {
    for (size_t i = begin; i < end; ++i) visit(whole.events[i]);
  });
}

void Outlet::note_spool_error_locked(const std::string& error, uint64_t events, const char* why) {
  if (spool_error_logged_) return;
  spool_error_logged_ = true;
  log_.warning("sink %s: could not spool %Lu events (%s): %s", name(), events, std::string(why),
               error);
}

bool Outlet::write_to_spool(const Taken& taken, std::string batch_id, std::string* error) {
  // [no lock] One file of exactly these events, under a new id.
  const Delivery delivery = build_delivery(taken, std::move(batch_id));
  return spool_->put(delivery.batch_id, delivery.json, delivery.events, error);
}

void Outlet::note_spooled_locked(uint64_t events) {
  spool_error_logged_ = false;
  counters_.spooled += events;
  spool_events_ += events;
  ++spool_files_;
  spool_blocked_until_ms_ = 0;  // something new to send
}

bool Outlet::spool_delivery(std::unique_lock<std::mutex>& lock,
                            const std::shared_ptr<Current>& delivery, const char* why,
                            uint64_t* seq) {
  // [outlet thread, lock held on entry and exit] An in-memory delivery goes to the spool under
  // its own id; on success it leaves memory.
  if (!spool_) return false;
  const Phase phase = phase_;
  phase_ = Phase::kSpooling;
  lock.unlock();
  std::string error;
  const bool stored = spool_->put(delivery->delivery.batch_id, delivery->delivery.json,
                                  delivery->delivery.events, &error, seq);
  lock.lock();
  phase_ = phase;
  idle_.notify_all();
  if (!stored) {
    note_spool_error_locked(error, delivery->events, why);
    return false;
  }
  note_spooled_locked(delivery->events);
  if (current_ == delivery) current_.reset();
  std::erase(pending_, delivery);
  return true;
}

bool Outlet::spool_current(std::unique_lock<std::mutex>& lock, const char* why, uint64_t* seq) {
  const std::shared_ptr<Current> current = current_;
  return spool_delivery(lock, current, why, seq);
}

void Outlet::spool_pending(std::unique_lock<std::mutex>& lock,
                           uint64_t OutletCounters::*drop_counter, const char* why) {
  while (!pending_.empty()) {
    const std::shared_ptr<Current> half = pending_.front();
    if (!spool_delivery(lock, half, why)) {
      counters_.*drop_counter += half->events;
      std::erase(pending_, half);
    }
  }
}

void Outlet::remove_spooled(std::unique_lock<std::mutex>& lock, uint64_t seq, uint64_t events) {
  phase_ = Phase::kReading;
  lock.unlock();
  spool_->remove(seq);
  lock.lock();
  phase_ = Phase::kIdle;
  spool_events_ -= std::min(spool_events_, events);
  spool_files_ -= std::min<uint64_t>(spool_files_, 1);
  retry_states_.erase(seq);
  idle_.notify_all();
}

bool Outlet::split_current(std::unique_lock<std::mutex>& lock, const char* why,
                           const std::optional<RetryState>& inherited) {
  // [outlet thread, lock held on entry and exit]
  const std::shared_ptr<Current> whole = current_;
  const size_t count = whole->delivery.events.size();
  const std::string& id = whole->delivery.batch_id;
  if (count < 2 || id.size() + 2 > Spool::kMaxBatchIdBytes) return false;
  // The halves' ids derive from the whole's, so their own retries and replays stay stable.
  const size_t middle = count / 2;
  auto first =
      std::make_shared<Current>(Current{sub_delivery(whole->delivery, 0, middle, id + ".1"),
                                        std::nullopt, middle, whole->first_index});
  auto second =
      std::make_shared<Current>(Current{sub_delivery(whole->delivery, middle, count, id + ".2"),
                                        std::nullopt, count - middle, whole->first_index + middle});
  if (!whole->spool_seq) {
    // Held in memory: the halves go next, still in memory (a failure spools them as usual).
    pending_.push_front(second);
    pending_.push_front(first);
  } else {
    // Spooled: both halves are on disk before the whole leaves it, so a crash loses nothing.
    const uint64_t seq = *whole->spool_seq;
    phase_ = Phase::kSpooling;
    lock.unlock();
    std::string error;
    uint64_t first_seq = 0;
    uint64_t second_seq = 0;
    bool stored = spool_->put(first->delivery.batch_id, first->delivery.json,
                              first->delivery.events, &error, &first_seq);
    if (stored && !spool_->put(second->delivery.batch_id, second->delivery.json,
                               second->delivery.events, &error, &second_seq)) {
      spool_->remove(first_seq);
      stored = false;
    }
    if (stored) spool_->remove(seq);
    lock.lock();
    phase_ = Phase::kIdle;
    idle_.notify_all();
    if (!stored) {
      log_.warning("sink %s: could not split batch %s (%s): %s", name(), id, std::string(why),
                   error);
      return false;
    }
    ++spool_files_;  // two in, one out; the events stay the same
    spool_blocked_until_ms_ = 0;
    retry_states_.erase(seq);
    if (inherited) {
      retry_states_[first_seq] = *inherited;
      retry_states_[second_seq] = *inherited;
    }
  }
  ++counters_.splits;
  if (log_.debug()) {
    log_.debug("sink %s: batch %s (%z events) split in two (%s)", name(), id, count,
               std::string(why));
  }
  if (current_ == whole) current_.reset();
  return true;
}

std::optional<uint64_t> Outlet::pick_spooled_locked(uint64_t now, bool cooling_ok) {
  uint64_t earliest = std::numeric_limits<uint64_t>::max();
  std::optional<uint64_t> least_recent;
  uint64_t least_recent_ms = std::numeric_limits<uint64_t>::max();
  for (const uint64_t seq : spool_->seqs()) {
    const auto found = retry_states_.find(seq);
    if (found == retry_states_.end()) return seq;
    const RetryState& state = found->second;
    if (state.not_before_ms > now) {
      earliest = std::min(earliest, state.not_before_ms);
      continue;
    }
    // One that failed since the sink last succeeded waits behind fresh telemetry: a delivery
    // the receiver always refuses must not starve the rest.
    if (state.successes_at_last_failure != successes_) return seq;
    // Among those, in turn: the one that failed first is tried first, so a refused delivery
    // at the front does not hide the others (and their successes) forever.
    if (state.last_failed_ms < least_recent_ms) {
      least_recent = seq;
      least_recent_ms = state.last_failed_ms;
    }
  }
  if (!cooling_ok) return std::nullopt;
  if (!least_recent) spool_blocked_until_ms_ = earliest;
  return least_recent;
}

void Outlet::note_failure(std::unique_lock<std::mutex>& lock, uint64_t seq, uint64_t now) {
  // [outlet thread, lock held] The evidence was counted by settle_result.
  RetryState& state = retry_states_[seq];
  if (state.failures == 0) state.first_failed_ms = now;
  ++state.failures;
  state.successes_at_last_failure = successes_;
  state.last_failed_ms = now;
  if (state.evidence == 0) return;
  // A suspect: it fails while the sink delivers the rest. Isolate what the receiver refuses by
  // splitting; a single event past its retry life goes to the dead-letter folder.
  const uint32_t shift = std::min<uint32_t>(state.evidence, 16);
  state.not_before_ms =
      now + std::min<uint64_t>(kMaxSuspectBackoffMs, uint64_t{options_.retry_base_ms} << shift);
  const RetryState snapshot = state;
  // The halves count as having failed once (a failure of theirs after a success is evidence),
  // keeping the age of the first failure; their own evidence starts from nothing.
  RetryState halves{1, 0, snapshot.first_failed_ms, 0, successes_, 0};
  if (current_ && current_->events > 1 &&
      split_current(lock, "it keeps failing while other deliveries succeed", halves)) {
    return;
  }
  if (snapshot.evidence >= options_.retry_max_attempts &&
      now - snapshot.first_failed_ms >= options_.retry_max_age_ms) {
    dead_letter(lock, seq, snapshot, now);
  }
}

std::string Outlet::move_to_dead_letter(std::unique_lock<std::mutex>& lock, uint64_t seq,
                                        uint64_t events) {
  const Phase phase = phase_;
  phase_ = Phase::kSpooling;
  lock.unlock();
  std::string error;
  const std::optional<std::string> where = spool_->dead_letter(seq, &error);
  lock.lock();
  phase_ = phase;
  idle_.notify_all();
  retry_states_.erase(seq);
  spool_events_ -= std::min(spool_events_, events);
  spool_files_ -= std::min<uint64_t>(spool_files_, 1);
  counters_.dead_lettered += events;
  return where ? "moved to " + *where : "deleted (" + error + ")";
}

void Outlet::dead_letter(std::unique_lock<std::mutex>& lock, uint64_t seq, const RetryState& state,
                         uint64_t now) {
  const std::shared_ptr<Current> poison = current_;
  const std::string outcome = move_to_dead_letter(lock, seq, poison->events);
  if (current_ == poison) current_.reset();
  // Logged once, with its id: /tmp ends with the environment, the log line stays.
  log_.error(
      "sink %s: batch %s (%Lu events) failed %u times, %u of them while other deliveries "
      "succeeded, over %Lu s (last error: %s): %s; it will not be replayed",
      name(), poison->delivery.batch_id, poison->events, state.failures, state.evidence,
      (now - state.first_failed_ms) / 1000, last_error_, outcome);
}

void Outlet::spill(std::unique_lock<std::mutex>& lock, size_t target_bytes,
                   uint64_t OutletCounters::*drop_counter, const char* why, bool keep_on_failure) {
  // [lock held on entry and exit; released around each spool write]
  uint64_t spooled = 0;
  uint64_t dropped = 0;
  while (!queue_.empty() && queue_bytes_ > target_bytes) {
    if (!spool_) {  // nothing to write: let whole batches go without copying them
      if (keep_on_failure) break;
      const Held& oldest = queue_.front();
      const uint64_t events = oldest.end_event - oldest.next_event;
      dropped += events;
      queued_events_ -= events;
      dequeued_events_ += events;
      released_events_ -= std::min(released_events_, events);
      queue_bytes_ -= held_cost(*oldest.batch);
      queue_.pop_front();
      continue;
    }
    // One held batch at a time: spill no more than needed.
    Taken taken = take_locked(queue_.front().end_event - queue_.front().next_event);
    if (taken.events == 0) break;
    const uint64_t events = taken.events;
    const size_t bytes = delivery_cost(taken.bytes, taken.events);
    std::string batch_id = make_batch_id(random_);
    lock.unlock();
    std::string error;
    const bool stored = write_to_spool(taken, std::move(batch_id), &error);
    lock.lock();
    if (!stored) note_spool_error_locked(error, events, why);
    if (!stored && keep_on_failure) {
      put_back_locked(std::move(taken));
      break;
    }
    aside_events_ -= events;
    aside_bytes_ -= bytes;
    if (stored) {
      note_spooled_locked(events);
      spooled += events;
    } else {
      dropped += events;
    }
  }
  counters_.*drop_counter += dropped;
  if (spooled > 0) wake_.notify_all();  // a healthy sink replays it at once
  if (spooled > 0 || dropped > 0) {
    idle_.notify_all();
    if (!overflow_logged_ && (dropped > 0 || drop_counter == &OutletCounters::dropped_by_cap)) {
      overflow_logged_ = true;  // until the next successful delivery
      log_.warning("sink %s: %s: %Lu events spooled, %Lu dropped", name(), std::string(why),
                   spooled, dropped);
    }
  }
}

bool Outlet::failing_locked(uint64_t now) const {
  return consecutive_failures_ > 0 || now < retry_after_until_ms_;
}

size_t Outlet::spool_arrival(std::unique_lock<std::mutex>& lock,
                             const std::shared_ptr<const TelemetryPost>& batch) {
  // [listener thread] The sink is failing: the batch goes to disk before the listener answers,
  // in delivery-sized files, so a SIGKILL during the outage loses nothing acknowledged.
  // Returns the index of the first event not written (the rest stays in memory).
  const uint64_t events = batch->events.size();
  aside_events_ += events;
  aside_bytes_ += held_cost(*batch);
  size_t begin = 0;
  uint64_t files = 0;
  while (begin < batch->events.size()) {
    Taken part;
    const size_t end =
        add_slice(part, batch, begin, batch->events.size(), std::numeric_limits<uint64_t>::max());
    std::string batch_id = make_batch_id(random_);
    lock.unlock();
    std::string error;
    const bool stored = write_to_spool(part, std::move(batch_id), &error);
    lock.lock();
    if (!stored) {
      note_spool_error_locked(error, part.events, "the sink is failing");
      break;
    }
    note_spooled_locked(part.events);
    ++files;
    begin = end;
  }
  aside_events_ -= events;
  aside_bytes_ -= held_cost(*batch);
  if (files > 0) {
    idle_.notify_all();
    wake_.notify_all();
  }
  return begin;
}

void Outlet::enqueue(TelemetryPost batch) {
  if (batch.events.empty()) return;
  auto shared = std::make_shared<const TelemetryPost>(std::move(batch));
  const size_t events = shared->events.size();
  const size_t bytes = held_cost(*shared);
  std::unique_lock lock(mutex_);
  counters_.received += events;
  size_t first_held = 0;
  if (spool_ && !stop_ && !disabled_ && failing_locked(now_unix_ms())) {
    first_held = spool_arrival(lock, shared);
    if (first_held == events) return;
  }
  queue_.push_back(Held{std::move(shared), first_held, events});
  queue_bytes_ += bytes;
  queued_events_ += events - first_held;
  enqueued_events_ += events - first_held;
  if (stop_ || disabled_) {
    // Nobody will deliver it in this process: straight to the spool, or counted.
    if (stop_) {
      spill(lock, 0, &OutletCounters::dropped_at_shutdown, "arrived after the shutdown deadline");
    } else {
      spill(lock, 0, &OutletCounters::dropped_disabled, "the sink is disabled");
    }
    return;
  }
  if (queue_bytes_ >= options_.flush_high_water_bytes) trim_after_burst_ = true;
  if (shutting_down_ || options_.flush.mode == FlushMode::kContinuous ||
      queue_bytes_ >= options_.flush_high_water_bytes) {
    release_all_locked();  // flush on pressure: a full buffer goes now, whatever the mode says
  }
  if (memory_bytes_locked() > options_.buffer_max_bytes) {
    const size_t in_flight = memory_bytes_locked() - queue_bytes_;
    const size_t room = options_.buffer_max_bytes - std::min(options_.buffer_max_bytes, in_flight);
    spill(lock, room, &OutletCounters::dropped_by_cap,
          "over RELAY_BUFFER_MAX_BYTES (the sink is slower than the telemetry, or down)");
  }
}

void Outlet::retry_now_locked() {
  // The sink's Retry-After still holds; only our own backoff is cut short.
  next_attempt_ms_ = retry_after_until_ms_;
}

void Outlet::on_invoke() {
  std::lock_guard lock(mutex_);
  // The seed's rule, exactly: dispatch only when MORE events than the minimum were collected.
  if (options_.flush.mode == FlushMode::kNextInvoke &&
      static_cast<int64_t>(queued_events_) > options_.min_batch_size) {
    released_events_ = queued_events_;
  }
  retry_now_locked();
  wake_.notify_all();
}

bool Outlet::flush_until(Deadline deadline) {
  std::unique_lock lock(mutex_);
  // This invocation's telemetry is what arrived until now (the lifecycle calls this after its
  // platform.runtimeDone); what arrives during the flush is the next one's and is not waited for.
  const uint64_t mark = enqueued_events_;
  released_events_ = queued_events_;
  retry_now_locked();
  wake_.notify_all();
  idle_.wait_until(lock, deadline.time_point(),
                   [&] { return disabled_ || stop_ || held_before_locked(mark) == 0; });
  const uint64_t left = held_before_locked(mark);
  // Count each event once, however many budgets it outlives. Events leave memory oldest first,
  // so those deferred last time and still here are the oldest of `left`.
  const uint64_t gone = mark - std::min(mark, left);
  const uint64_t gone_since = gone > deferred_mark_.gone ? gone - deferred_mark_.gone : 0;
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

void Outlet::begin_shutdown(Deadline deadline) {
  std::lock_guard lock(mutex_);
  shutting_down_ = true;
  shutdown_deadline_ms_ = deadline.unix_ms();
  released_events_ = queued_events_;
  retry_now_locked();
  wake_.notify_all();
}

bool Outlet::settled_for_shutdown_locked() const {
  if (phase_ != Phase::kIdle) return false;
  if (disabled_) return true;
  // Spooled deliveries that wait on their own backoff past the deadline stay for the next start.
  if (memory_pending_locked() == 0 &&
      (spool_files_ == 0 || spool_blocked_until_ms_ >= shutdown_deadline_ms_)) {
    return true;
  }
  // The next attempt would come after the deadline (backoff or the sink's Retry-After).
  return next_attempt_ms_ >= shutdown_deadline_ms_;
}

bool Outlet::finish_shutdown(Deadline deadline) {
  std::unique_lock lock(mutex_);
  idle_.wait_until(lock, deadline.time_point(), [this] { return settled_for_shutdown_locked(); });
  stop_ = true;
  wake_.notify_all();
  // Local I/O (forming a delivery, a spool write or read) ends in milliseconds; let it, so what
  // it holds is accounted. A sink stuck in deliver() is not waited for.
  idle_.wait_until(lock, Deadline(deadline.unix_ms() + 200).time_point(),
                   [this] { return phase_ == Phase::kIdle || phase_ == Phase::kDelivering; });
  const bool sink_busy = phase_ == Phase::kDelivering;
  // What is still in memory: the delivery being attempted (a stuck sink may keep reading it,
  // it holds its own reference) and everything held. Spooled for the next start, or counted.
  const uint64_t spooled_before = counters_.spooled;
  const uint64_t dropped_before = counters_.dropped_at_shutdown;
  if (phase_ == Phase::kIdle || phase_ == Phase::kDelivering) {
    if (current_ && !current_->spool_seq) {
      const Phase phase = phase_;
      const uint64_t events = current_->events;
      if (!spool_current(lock, "at the shutdown deadline")) {
        counters_.dropped_at_shutdown += events;
      }
      phase_ = phase;  // spool_current marks its own I/O; the sink may still be in deliver()
    }
    current_.reset();
    spool_pending(lock, &OutletCounters::dropped_at_shutdown, "at the shutdown deadline");
  }
  spill(lock, 0, &OutletCounters::dropped_at_shutdown, "at the shutdown deadline");
  released_events_ = 0;
  const uint64_t spooled_now = counters_.spooled - spooled_before;
  const uint64_t dropped_now = counters_.dropped_at_shutdown - dropped_before;
  const uint64_t still_spooled = still_spooled_locked();
  wake_.notify_all();
  lock.unlock();

  if (sink_busy) {
    // The sink is stuck past the deadline: it is neither flushed nor destroyed, and the process
    // exits without waiting for it. (In tests the destructor joins the thread once it returns.)
    log_.error("sink %s: still delivering at the shutdown deadline", name());
  } else {
    thread_.join();  // no sink call can follow: flush_sink and destroy_sink may go ahead
  }
  std::lock_guard relock(mutex_);
  if (sink_state_ == SinkState::kOpen) {
    sink_state_ = sink_busy ? SinkState::kStuck : SinkState::kCallsEnded;
  }
  if (spooled_now > 0 || dropped_now > 0 || still_spooled > 0) {
    log_.error(
        "sink %s: not delivered by the shutdown deadline: %Lu events spooled now, %Lu dropped, "
        "%Lu in the spool in all%s",
        name(), spooled_now, dropped_now, still_spooled,
        last_error_.empty() ? std::string() : " (last error: " + last_error_ + ")");
  }
  return spooled_now == 0 && dropped_now == 0 && still_spooled == 0;
}

bool Outlet::flush_sink(Deadline deadline) {
  {
    std::lock_guard lock(mutex_);
    if (sink_state_ != SinkState::kCallsEnded) return false;  // stuck, or already flushed
    if (disabled_ || deadline.passed()) {
      sink_state_ = SinkState::kFlushed;  // nothing to flush into, or no time: destroy only
      return false;
    }
    sink_state_ = SinkState::kFlushing;
  }
  DeliveryResult flushed;
  try {
    flushed = sink_->flush(deadline.unix_ms());
  } catch (const std::exception& e) {  // the SDK catches; a host-side sink might not
    flushed = DeliveryResult{DeliveryStatus::kDrop, e.what()};
  }
  const bool ok = flushed.status == DeliveryStatus::kOk;
  if (!ok) {
    // What the sink still buffered is lost: the host counted it as delivered when deliver()
    // answered OK. One line, with the sink's own words.
    log_.error("sink %s: flush at shutdown answered %s: %s", name(),
               std::string(to_string(flushed.status)), flushed.error);
  }
  {
    std::lock_guard lock(mutex_);
    counters_.flush_failed = !ok;
    sink_state_ = SinkState::kFlushed;
  }
  idle_.notify_all();
  return ok;
}

void Outlet::destroy_sink() {
  {
    std::lock_guard lock(mutex_);
    // Stuck in deliver or in a flush that outlived its deadline: left alone, never destroyed.
    if (sink_state_ == SinkState::kOpen) {
      log_.warning("sink %s: its outlet was still spooling at the shutdown deadline: not destroyed",
                   name());
      return;
    }
    if (sink_state_ == SinkState::kStuck || sink_state_ == SinkState::kFlushing) {
      log_.warning("sink %s: still in a call at the shutdown deadline: not destroyed", name());
      return;
    }
    if (sink_state_ == SinkState::kDestroyed) return;
    sink_state_ = SinkState::kDestroyed;
  }
  sink_->destroy();
}

uint64_t Outlet::still_spooled_locked(std::optional<uint64_t> quarantined_events) const {
  if (!spool_) return 0;
  // Files the spool quarantined since the start were in spool_events_ and are lost now.
  const uint64_t quarantined =
      quarantined_events ? *quarantined_events : spool_->stats().quarantined_events;
  const uint64_t lost_since_start = quarantined - spool_quarantined_at_start_;
  return spool_events_ - std::min(spool_events_, lost_since_start);
}

OutletCounters Outlet::counters() const {
  std::lock_guard lock(mutex_);
  OutletCounters copy = counters_;
  copy.queued = memory_pending_locked();
  copy.queued_bytes = memory_bytes_locked();
  if (spool_) {
    // One reading of what the spool quarantined serves both sides of the balance.
    const SpoolStats spool = spool_->stats();
    copy.still_spooled = still_spooled_locked(spool.quarantined_events);
    copy.spool_quarantined_files = spool.quarantined;
    copy.dropped_corrupt += spool.quarantined_events;
  }
  copy.disabled = disabled_;
  return copy;
}

std::shared_ptr<Outlet::Current> Outlet::read_spooled(std::unique_lock<std::mutex>& lock,
                                                      uint64_t seq) {
  // [outlet thread] Nullopt when the entry could not be used now (quarantined, removed as not a
  // batch of events, or a passing read error: then it stays).
  phase_ = Phase::kReading;
  lock.unlock();
  // read() moves files that fail validation aside; the spool counts what they held.
  std::optional<SpooledDelivery> entry = spool_->read(seq);
  std::optional<Delivery> delivery;
  std::string error;
  uint64_t header_events = 0;
  if (entry) {
    header_events = entry->events;
    delivery = delivery_from_spool(std::move(*entry), &error);
    // Checksummed yet not a JSON array of events: written by something else. Never crash.
    if (!delivery) spool_->remove(seq);
  }
  const uint64_t files_now = spool_->stats().files;
  lock.lock();
  phase_ = Phase::kIdle;
  idle_.notify_all();
  if (!entry) {
    // Quarantined files are gone from the spool; a passing read error leaves them.
    if (files_now < spool_files_) retry_states_.erase(seq);
    spool_files_ = files_now;
    return nullptr;
  }
  if (!delivery) {
    log_.error("sink %s: spooled delivery %Lu is not a batch of events, removed: %s", name(), seq,
               error);
    counters_.dropped_corrupt += header_events;
    spool_events_ -= std::min(spool_events_, header_events);
    spool_files_ = files_now;
    retry_states_.erase(seq);
    return nullptr;
  }
  // Count what the file holds, not what its header claims: a forged count must not inflate
  // `delivered`. (This process never writes such a file: it came from elsewhere, so the
  // inherited count is what gets corrected.)
  const uint64_t parsed = delivery->events.size();
  if (parsed != header_events) {
    log_.warning("sink %s: spooled delivery %Lu claims %Lu events and holds %Lu: counting %Lu",
                 name(), seq, header_events, parsed, parsed);
    counters_.inherited =
        counters_.inherited + parsed - std::min(counters_.inherited, header_events);
    spool_events_ = spool_events_ + parsed - std::min(spool_events_, header_events);
  }
  return std::make_shared<Current>(Current{std::move(*delivery), seq, parsed});
}

std::shared_ptr<Outlet::Current> Outlet::next_current(std::unique_lock<std::mutex>& lock) {
  // [outlet thread] The halves of a split first, then the spool (older than memory) except what
  // failed since the sink last succeeded, then memory, then those.
  if (!pending_.empty()) {
    std::shared_ptr<Current> half = pending_.front();
    pending_.pop_front();
    return half;
  }
  for (int tries = 0; spool_ && spool_files_ > 0 && tries < 8 && !stop_; ++tries) {
    const uint64_t now = now_unix_ms();
    // Memory released for delivery goes before what failed since the last success.
    const std::optional<uint64_t> seq =
        pick_spooled_locked(now, /*cooling_ok=*/released_events_ == 0);
    if (!seq) break;
    spool_blocked_until_ms_ = 0;
    const uint64_t files_before = spool_files_;
    if (std::shared_ptr<Current> spooled = read_spooled(lock, *seq)) return spooled;
    if (spool_files_ >= files_before) break;  // a passing read error: memory meanwhile
  }
  if (stop_ || released_events_ == 0) return nullptr;
  const uint64_t first_index = dequeued_events_;
  Taken taken = take_locked(released_events_);
  if (taken.events == 0) return nullptr;
  std::string batch_id = make_batch_id(random_);
  phase_ = Phase::kForming;
  lock.unlock();
  auto current = std::make_shared<Current>(
      Current{build_delivery(taken, std::move(batch_id)), std::nullopt, taken.events, first_index});
  lock.lock();
  phase_ = Phase::kIdle;
  aside_events_ -= taken.events;  // now counted as the current delivery
  aside_bytes_ -= delivery_cost(taken.bytes, taken.events);
  idle_.notify_all();
  return current;
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
  return current_ || !pending_.empty() || released_events_ > 0 || spool_files_ > 0;
}

bool Outlet::may_attempt_locked(uint64_t now) const {
  if (disabled_ || now < next_attempt_ms_) return false;
  return !shutting_down_ || now < shutdown_deadline_ms_;
}

void Outlet::settle_result(std::unique_lock<std::mutex>& lock, const DeliveryResult& result) {
  // [outlet thread, lock held; released around spool I/O]
  const std::shared_ptr<Current> current = current_;
  const uint64_t events = current->events;
  switch (result.status) {
    case DeliveryStatus::kOk:
      if (current->spool_seq) {
        remove_spooled(lock, *current->spool_seq, events);
        counters_.replayed += events;
      }
      if (result.discarded) {
        counters_.discarded += events;
      } else {
        const uint64_t rejected = std::min(result.rejected_events, events);
        counters_.delivered += events - rejected;
        counters_.dropped_by_sink += rejected;
        ++counters_.calls_ok;
      }
      ++successes_;
      if (consecutive_failures_ > 0) {
        log_.information("sink %s: delivering again after %u failed attempts", name(),
                         consecutive_failures_);
      }
      consecutive_failures_ = 0;
      outage_spill_pending_ = false;
      next_attempt_ms_ = 0;
      retry_after_until_ms_ = 0;
      overflow_logged_ = false;
      last_error_.clear();
      // Poco's variadic debug() formats before it checks the level: once per delivery.
      if (log_.debug()) {
        log_.debug("sink %s: %s %Lu events (%z bytes, batch %s)", name(),
                   std::string(result.discarded ? "discarded" : "delivered"), events,
                   current->delivery.json.size(), current->delivery.batch_id);
      }
      break;
    case DeliveryStatus::kRetry: {
      counters_.events_retried += events;
      ++counters_.calls_retry;
      last_error_ = result.error;
      const uint64_t now = now_unix_ms();
      // A spooled delivery that failed before and fails again after the sink delivered
      // something else is a suspect: the sink is not down, this delivery is refused. The sink
      // goes on without backoff; the suspect gets its own (note_failure).
      bool suspect = false;
      if (current->spool_seq) {
        RetryState& state = retry_states_[*current->spool_seq];
        if (state.failures > 0 && state.successes_at_last_failure != successes_) ++state.evidence;
        suspect = state.evidence > 0;
      }
      if (suspect) {
        if (log_.debug()) {
          log_.debug("sink %s: batch %s failed again while other deliveries succeed: %s", name(),
                     current->delivery.batch_id, result.error);
        }
        note_failure(lock, *current->spool_seq, now);
        if (current_ == current) current_.reset();
        return;
      }
      // The first failure of a streak says why at warning; the retries after it at debug.
      if (consecutive_failures_ == 0) {
        log_.warning("sink %s: delivery failed, will retry: %s", name(), result.error);
        outage_spill_pending_ = true;
      }
      const uint64_t backoff = next_backoff_ms();
      const uint64_t hint = std::min(result.retry_after_ms, kMaxRetryAfterMs);
      retry_after_until_ms_ = hint > 0 ? now + hint : 0;
      next_attempt_ms_ = now + std::max(backoff, hint);
      if (log_.debug()) {
        log_.debug("sink %s: batch %s retry in %Lu ms (Retry-After %Lu ms): %s", name(),
                   current->delivery.batch_id, std::max(backoff, hint), hint, result.error);
      }
      // After a failed attempt the delivery lives in the spool, so a crash loses nothing; its
      // retries read it back from there. Without a spool it stays in memory.
      uint64_t seq = 0;
      if (current->spool_seq) {
        seq = *current->spool_seq;
      } else if (!spool_current(lock, "after a failed attempt", &seq)) {
        return;
      }
      note_failure(lock, seq, now);
      if (current_ == current) current_.reset();
      return;
    }
    case DeliveryStatus::kDrop:
      if (result.too_large && split_current(lock, "the receiver refused it as too large")) {
        if (!too_large_logged_) {
          too_large_logged_ = true;
          log_.warning(
              "sink %s: batch %s (%Lu events) refused as too large: delivering it in "
              "halves (%s)",
              name(), current->delivery.batch_id, events, result.error);
        }
        return;
      }
      counters_.dropped_by_sink += events;
      if (current->spool_seq) remove_spooled(lock, *current->spool_seq, events);
      log_.warning("sink %s dropped %Lu events (batch %s): %s", name(), events,
                   current->delivery.batch_id, result.error);
      break;
    case DeliveryStatus::kFatal:
      log_.error("sink %s answered FATAL and is disabled; its telemetry goes to the spool%s: %s",
                 name(), std::string(spool_ ? "" : " (off: dropped and counted)"), result.error);
      if (!current->spool_seq && !spool_current(lock, "the sink is disabled")) {
        counters_.dropped_disabled += events;
      }
      disabled_ = true;  // after the delivery is accounted: flush_until stops waiting here
      current_.reset();
      spool_pending(lock, &OutletCounters::dropped_disabled, "the sink is disabled");
      released_events_ = 0;
      spill(lock, 0, &OutletCounters::dropped_disabled, "the sink is disabled");
      return;
  }
  if (current_ == current) current_.reset();
}

void Outlet::run() {
  // Delivery work yields the CPU to the lifecycle thread and the listener: on a busy core an
  // INVOKE must not wait for a time slice behind the copy and the POST of a burst. (Any thread
  // may lower its own priority; it only matters when the CPU is contended.)
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kDeliveryNice);
  std::unique_lock lock(mutex_);
  while (!stop_) {
    const uint64_t now = now_unix_ms();
    if (options_.flush.mode == FlushMode::kPeriodic && now >= next_tick_ms_) {
      released_events_ = queued_events_;
      next_tick_ms_ = now + options_.flush.period_ms;
    }
    if (outage_spill_pending_) {
      // A failing streak began: what is held in memory goes to the spool too, so a SIGKILL
      // during the outage loses nothing; new arrivals go there directly (enqueue).
      outage_spill_pending_ = false;
      if (spool_) {
        phase_ = Phase::kSpooling;
        spill(lock, 0, &OutletCounters::dropped_by_cap, "the sink is failing",
              /*keep_on_failure=*/true);
        phase_ = Phase::kIdle;
        idle_.notify_all();
      }
      continue;
    }
    bool nothing_to_send = false;
    if (may_attempt_locked(now)) {
      if (!current_) {
        current_ = next_current(lock);
        if (stop_) break;
      }
      if (current_) {
        const std::shared_ptr<Current> attempt = current_;  // outlives a shutdown letting go
        const Deadline deadline =
            shutting_down_ ? Deadline(shutdown_deadline_ms_)
                           : Deadline::in(std::chrono::milliseconds(options_.attempt_timeout_ms));
        phase_ = Phase::kDelivering;
        lock.unlock();
        DeliveryResult result;
        try {
          result = sink_->deliver(attempt->delivery, deadline.unix_ms());
        } catch (const std::exception& e) {  // the SDK catches; a host-side sink might not
          result = DeliveryResult{DeliveryStatus::kDrop, e.what()};
        }
        lock.lock();
        phase_ = Phase::kIdle;
        if (stop_) break;  // finish_shutdown settled it
        settle_result(lock, result);
        idle_.notify_all();
        continue;
      }
      nothing_to_send = true;
    }
    idle_.notify_all();
    if (trim_after_burst_ && nothing_to_send && memory_pending_locked() == 0) {
      // A burst is over: give what the allocator kept of it back to the system (idle RSS),
      // here at low priority rather than on the listener or the lifecycle thread.
      trim_after_burst_ = false;
      lock.unlock();
      ::malloc_trim(0);
      lock.lock();
      continue;
    }
    uint64_t wake_at = std::numeric_limits<uint64_t>::max();
    if (options_.flush.mode == FlushMode::kPeriodic) wake_at = next_tick_ms_;
    // Waiting out a backoff or Retry-After. (Disabled, or past the shutdown deadline: only a
    // notification wakes us.)
    if (!nothing_to_send && !disabled_ && has_work_locked() && next_attempt_ms_ > now) {
      wake_at = std::min(wake_at, next_attempt_ms_);
    }
    if (nothing_to_send && spool_blocked_until_ms_ > now) {
      wake_at = std::min(wake_at, spool_blocked_until_ms_);  // a suspect's own backoff
    }
    if (wake_at == std::numeric_limits<uint64_t>::max()) {
      wake_.wait(lock);
    } else {
      wake_.wait_until(lock, Deadline(wake_at).time_point());
    }
  }
  idle_.notify_all();
}

}  // namespace relay
