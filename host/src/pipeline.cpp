#include "pipeline.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Stringifier.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <future>
#include <optional>
#include <sstream>

#include "batch_parser.h"
#include "logging.h"

namespace relay {
namespace {

constexpr size_t kRememberedReports = 16;

// Our log lines start with this (logging.cpp). In text format the record is the line itself (a
// JSON string); in JSON format Lambda wraps it as {"message": ...}, read here by the parser
// (any spacing or key order) for the few records that mention us at all.
constexpr std::string_view kOwnPrefix = "telemetry-relay ";

bool is_own_log_line(const TelemetryBatch& batch, const TelemetryEvent& event) {
  if (event.type != "extension" || event.record.empty()) return false;
  if (event.record.front() == '"') {
    return event.record.substr(1, kOwnPrefix.size()) == kOwnPrefix;
  }
  if (event.record.front() != '{' || event.record.find(kOwnPrefix) == std::string_view::npos) {
    return false;
  }
  const std::optional<std::string_view> message =
      record_string_field(batch, event.record, "message");
  return message && message->substr(0, kOwnPrefix.size()) == kOwnPrefix;
}

void remember(std::deque<std::string>& ids, std::vector<std::string>& seen) {
  for (auto& id : seen) {
    ids.push_back(std::move(id));
    if (ids.size() > kRememberedReports) ids.pop_front();
  }
}

// Runs work on every outlet at once (the last one on this thread); true when all returned true.
bool in_parallel(const std::vector<Outlet*>& outlets, const std::function<bool(Outlet&)>& work) {
  if (outlets.empty()) return true;
  std::vector<std::future<bool>> others;
  for (size_t i = 0; i + 1 < outlets.size(); ++i) {
    others.push_back(std::async(std::launch::async, work, std::ref(*outlets[i])));
  }
  bool all = work(*outlets.back());
  for (auto& other : others) all = other.get() && all;
  return all;
}

}  // namespace

Pipeline::Pipeline(std::vector<std::unique_ptr<Outlet>> outlets, PipelineOptions options)
    : outlets_(std::move(outlets)), options_(options) {}

void Pipeline::consume(TelemetryBatch&& batch) {
  uint64_t own_lines = 0;
  if (options_.drop_own_log_lines) {
    const auto before = batch.events.size();
    std::erase_if(batch.events,
                  [&batch](const TelemetryEvent& event) { return is_own_log_line(batch, event); });
    own_lines = before - batch.events.size();
  }
  // The parser found these fields (batch.platform), whatever the records' spacing or key order.
  uint64_t logs_dropped = 0;
  std::vector<std::string> reports;
  std::vector<std::string> runtime_dones;
  for (const PlatformFields& fields : batch.platform) {
    switch (fields.type) {
      case PlatformType::kReport:
        reports.emplace_back(fields.request_id);
        break;
      case PlatformType::kRuntimeDone:
        runtime_dones.emplace_back(fields.request_id);
        break;
      case PlatformType::kLogsDropped:
        // Bounded: a hostile count saturates instead of wrapping.
        logs_dropped = fields.dropped_records > UINT64_MAX - logs_dropped
                           ? UINT64_MAX
                           : logs_dropped + fields.dropped_records;
        break;
      case PlatformType::kStart:
        break;
    }
  }
  if (logs_dropped > 0) {
    logger("pipeline")
        .warning("Lambda reported %Lu log records dropped (platform.logsDropped)", logs_dropped);
  }
  // Into the outlets before anyone is told it arrived: once wait_for_report() sees a report, the
  // shutdown that follows must find its batch already queued.
  const size_t events = batch.events.size();
  for (size_t i = 0; i + 1 < outlets_.size(); ++i) outlets_[i]->enqueue(batch);
  if (!outlets_.empty()) outlets_.back()->enqueue(std::move(batch));
  {
    std::lock_guard lock(mutex_);
    ++counters_.batches;
    counters_.events += events;
    counters_.own_log_lines_dropped += own_lines;
    counters_.platform_logs_dropped_records += logs_dropped;
    if (outlets_.empty()) counters_.without_sink += events;
    last_arrival_ms_ = now_unix_ms();
    remember(report_request_ids_, reports);
    remember(runtime_done_request_ids_, runtime_dones);
  }
  arrived_.notify_all();
}

void Pipeline::on_invoke() {
  for (auto& outlet : outlets_) outlet->on_invoke();
}

bool Pipeline::flushes_at_invocation_end() const {
  return std::any_of(outlets_.begin(), outlets_.end(), [](const auto& outlet) {
    return outlet->flush_policy().mode == FlushMode::kEnd;
  });
}

bool Pipeline::wait_for_runtime_done(const std::string& request_id, uint64_t deadline_unix_ms) {
  std::unique_lock lock(mutex_);
  while (true) {
    if (std::find(runtime_done_request_ids_.begin(), runtime_done_request_ids_.end(), request_id) !=
        runtime_done_request_ids_.end()) {
      return true;
    }
    const uint64_t now = now_unix_ms();
    if (now >= deadline_unix_ms) return false;
    arrived_.wait_for(lock, std::chrono::milliseconds(deadline_unix_ms - now));
  }
}

bool Pipeline::flush_until(uint64_t deadline_unix_ms) {
  std::vector<Outlet*> at_end;
  for (auto& outlet : outlets_) {
    if (outlet->flush_policy().mode == FlushMode::kEnd) at_end.push_back(outlet.get());
  }
  return in_parallel(at_end, [&](Outlet& outlet) { return outlet.flush_until(deadline_unix_ms); });
}

bool Pipeline::wait_for_report(const std::string& request_id, uint32_t quiet_ms,
                               uint64_t deadline_unix_ms) {
  std::unique_lock lock(mutex_);
  const uint64_t started = now_unix_ms();
  while (true) {
    if (!request_id.empty() && std::find(report_request_ids_.begin(), report_request_ids_.end(),
                                         request_id) != report_request_ids_.end()) {
      return true;
    }
    const uint64_t now = now_unix_ms();
    const uint64_t quiet_until = std::max(started, last_arrival_ms_) + quiet_ms;
    const uint64_t until = std::min(quiet_until, deadline_unix_ms);
    if (now >= until) return false;
    arrived_.wait_for(lock, std::chrono::milliseconds(until - now));
  }
}

bool Pipeline::shutdown(uint64_t deadline_unix_ms) {
  std::vector<Outlet*> all;
  for (auto& outlet : outlets_) {
    outlet->begin_shutdown(deadline_unix_ms);
    all.push_back(outlet.get());
  }
  // In parallel: each outlet spools its leftovers right at the deadline, not after the others.
  return in_parallel(all, [&](Outlet& outlet) { return outlet.finish_shutdown(deadline_unix_ms); });
}

PipelineCounters Pipeline::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

std::string Pipeline::summary_json() const {
  const PipelineCounters totals = counters();
  Poco::JSON::Object summary(Poco::JSON_PRESERVE_KEY_ORDER);
  summary.set("received_events", totals.events);
  summary.set("received_batches", totals.batches);
  summary.set("platform_logs_dropped", totals.platform_logs_dropped_records);
  summary.set("own_log_lines_dropped", totals.own_log_lines_dropped);
  if (totals.without_sink > 0) summary.set("dropped_no_sink", totals.without_sink);
  if (const ListenerStats* stats = listener_stats_.load()) {
    // Requests Lambda sent = accepted + rejected; bytes likewise (README "Loss summary").
    const ListenerCounters l = stats->snapshot();
    const RequestTally rejected = l.rejected();
    Poco::JSON::Object listener(Poco::JSON_PRESERVE_KEY_ORDER);
    listener.set("accepted_requests", l.accepted.requests);
    listener.set("accepted_bytes", l.accepted.bytes);
    listener.set("rejected_requests", rejected.requests);
    listener.set("rejected_bytes", rejected.bytes);
    auto tally = [](const RequestTally& t) {
      Poco::JSON::Object o(Poco::JSON_PRESERVE_KEY_ORDER);
      o.set("requests", t.requests);
      o.set("bytes", t.bytes);
      return o;
    };
    listener.set("bad_request", tally(l.bad_request));
    listener.set("method_not_allowed", tally(l.method_not_allowed));
    listener.set("too_large", tally(l.too_large));
    listener.set("internal_error", tally(l.internal_error));
    listener.set("invalid_events", l.invalid_events);
    summary.set("listener", listener);
  }
  Poco::JSON::Object sinks(Poco::JSON_PRESERVE_KEY_ORDER);
  for (const auto& outlet : outlets_) {
    const OutletCounters c = outlet->counters();
    // The balance first, then what happened on the way (see README "Loss summary").
    Poco::JSON::Object sink(Poco::JSON_PRESERVE_KEY_ORDER);
    sink.set("received", c.received);
    if (c.inherited > 0) sink.set("inherited", c.inherited);
    sink.set("delivered", c.delivered);
    sink.set("discarded", c.discarded);
    sink.set("dropped_by_cap", c.dropped_by_cap);
    sink.set("dropped_by_sink", c.dropped_by_sink);
    sink.set("dropped_at_shutdown", c.dropped_at_shutdown);
    sink.set("dropped_disabled", c.dropped_disabled);
    sink.set("dropped_corrupt", c.dropped_corrupt);
    sink.set("dead_lettered", c.dead_lettered);
    sink.set("still_spooled", c.still_spooled);
    sink.set("queued", c.queued);
    sink.set("balanced", c.reconciles());
    sink.set("deliveries", c.deliveries);
    sink.set("retries", c.retries);
    sink.set("retried", c.retried);
    sink.set("deferred", c.deferred);
    sink.set("spooled", c.spooled);
    sink.set("replayed", c.replayed);
    if (c.splits > 0) sink.set("splits", c.splits);
    if (c.spool_quarantined_files > 0) {
      sink.set("spool_quarantined_files", c.spool_quarantined_files);
    }
    if (c.disabled) sink.set("disabled", true);
    sinks.set(outlet->name(), sink);
  }
  summary.set("sinks", sinks);
  std::ostringstream out;
  Poco::JSON::Stringifier::condense(summary, out);
  return out.str();
}

}  // namespace relay
