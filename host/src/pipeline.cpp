#include "pipeline.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Stringifier.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <sstream>

#include "batch_parser.h"
#include "logging.h"

namespace relay {
namespace {

// Our log lines start with this (logging.cpp). In text format the record is the line itself (a
// JSON string); in JSON format Lambda wraps it as {"message": ...}, read here by the parser
// (any spacing or key order) for the few records that mention us at all.
constexpr std::string_view kOwnPrefix = "telemetry-relay ";

bool is_own_log_line(const TelemetryPost& post, const TelemetryEvent& event) {
  if (event.type != "extension" || event.record.empty()) return false;
  if (event.record.front() == '"') {
    return event.record.substr(1, kOwnPrefix.size()) == kOwnPrefix;
  }
  if (event.record.front() != '{' || event.record.find(kOwnPrefix) == std::string_view::npos) {
    return false;
  }
  const std::optional<std::string_view> message =
      record_string_field(post, event.record, "message");
  return message && message->substr(0, kOwnPrefix.size()) == kOwnPrefix;
}

}  // namespace

Pipeline::Pipeline(std::vector<std::unique_ptr<Outlet>> outlets, PipelineOptions options)
    : outlets_(std::move(outlets)), options_(options) {}

void Pipeline::consume(TelemetryPost&& post) {
  uint64_t own_lines = 0;
  if (options_.drop_own_log_lines) {
    const auto before = post.events.size();
    std::erase_if(post.events,
                  [&post](const TelemetryEvent& event) { return is_own_log_line(post, event); });
    own_lines = before - post.events.size();
  }
  // The parser found these fields (post.platform), whatever the records' spacing or key order.
  uint64_t logs_dropped = 0;
  for (const PlatformFields& fields : post.platform) {
    if (fields.type != PlatformType::kLogsDropped) continue;
    // Bounded: a hostile count saturates instead of wrapping.
    logs_dropped = fields.dropped_records > UINT64_MAX - logs_dropped
                       ? UINT64_MAX
                       : logs_dropped + fields.dropped_records;
  }
  if (logs_dropped > 0) {
    logger("pipeline")
        .warning("Lambda reported %Lu log records dropped (platform.logsDropped)", logs_dropped);
  }
  const size_t events = post.events.size();
  {
    std::lock_guard lock(mutex_);
    ++counters_.posts;
    counters_.events += events;
    counters_.own_log_lines_dropped += own_lines;
    counters_.platform_logs_dropped_records += logs_dropped;
    if (outlets_.empty()) counters_.without_sink += events;
  }
  // Into the outlets before the tracker is told it arrived: once the drain sees a report, the
  // shutdown that follows must find its POST already queued.
  // The platform fields are views into the body: hold it, since an outlet may deliver and
  // release the post before the tracker reads them.
  const std::shared_ptr<const std::string> body = post.body;
  const std::vector<PlatformFields> platform = post.platform;
  for (size_t i = 0; i + 1 < outlets_.size(); ++i) outlets_[i]->enqueue(post);
  if (!outlets_.empty()) outlets_.back()->enqueue(std::move(post));
  tracker_.note_arrival(platform);
}

void Pipeline::on_invoke() {
  for (auto& outlet : outlets_) outlet->on_invoke();
}

bool Pipeline::flushes_at_invocation_end() const {
  return std::any_of(outlets_.begin(), outlets_.end(), [](const auto& outlet) {
    return outlet->flush_policy().mode == FlushMode::kEnd;
  });
}

Pipeline::~Pipeline() {
  std::unique_lock lock(mutex_);
  work_done_.wait(lock, [this] { return work_running_ == 0; });
}

bool Pipeline::on_each(const std::vector<Outlet*>& outlets,
                       const std::function<bool(Outlet&)>& work, std::optional<Deadline> deadline) {
  {
    std::lock_guard lock(mutex_);
    work_running_ += outlets.size();
  }
  // Shared with the threads: one still running at the deadline writes its result later.
  auto results = std::make_shared<std::vector<char>>(outlets.size(), 0);
  const std::vector<bool> returned = run_in_parallel(
      outlets.size(),
      [this, outlets, work, results](size_t i) {
        (*results)[i] = work(*outlets[i]) ? 1 : 0;
        std::lock_guard lock(mutex_);
        --work_running_;
        work_done_.notify_all();
      },
      deadline);
  bool all = true;
  for (size_t i = 0; i < outlets.size(); ++i) all = all && returned[i] && (*results)[i] != 0;
  return all;
}

bool Pipeline::flush_until(Deadline deadline) {
  std::vector<Outlet*> at_end;
  for (auto& outlet : outlets_) {
    if (outlet->flush_policy().mode == FlushMode::kEnd) at_end.push_back(outlet.get());
  }
  // Each outlet returns at the deadline by itself.
  return on_each(
      at_end, [deadline](Outlet& outlet) { return outlet.flush_until(deadline); }, std::nullopt);
}

bool Pipeline::shutdown(const ShutdownBudget& budget) {
  std::vector<Outlet*> all;
  const Deadline deliver_until = budget.deliver_until();
  for (auto& outlet : outlets_) {
    outlet->begin_shutdown(deliver_until);
    all.push_back(outlet.get());
  }
  // In parallel: each outlet spools its leftovers right at the deadline, not after the others.
  // Each returns by then (plus its local I/O) by itself; a sink stuck in deliver is left behind.
  const bool clean = on_each(
      all, [deliver_until](Outlet& outlet) { return outlet.finish_shutdown(deliver_until); },
      std::nullopt);
  close_sinks(budget.close_until());
  return clean;
}

void Pipeline::close_sinks(Deadline deadline) {
  std::vector<Outlet*> all;
  for (auto& outlet : outlets_) all.push_back(outlet.get());
  // Flushes in parallel, each on its own thread, left behind at the deadline if the plugin hangs;
  // destroys here, on the main thread (sink_abi.h).
  on_each(
      all, [deadline](Outlet& outlet) { return outlet.flush_sink(deadline); }, deadline);
  for (Outlet* outlet : all) outlet->destroy_sink();
}

PipelineCounters Pipeline::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

namespace {

// One counter of a sink's summary entry; `always` false: shown only when not 0. The balance
// first, then whether it held, then what happened on the way (see README "Loss summary").
struct SummaryCounter {
  const char* key;
  uint64_t OutletCounters::*value;
  bool always = true;
};

// Each key is the counter's name in OutletCounters.
#define RELAY_COUNTER(name, ...) \
  SummaryCounter { #name, &OutletCounters::name __VA_OPT__(, ) __VA_ARGS__ }
constexpr SummaryCounter kSinkCounters[] = {RELAY_COUNTER(received),
                                            RELAY_COUNTER(inherited, false),
                                            RELAY_COUNTER(delivered),
                                            RELAY_COUNTER(discarded),
                                            RELAY_COUNTER(dropped_by_cap),
                                            RELAY_COUNTER(dropped_by_sink),
                                            RELAY_COUNTER(dropped_at_shutdown),
                                            RELAY_COUNTER(dropped_disabled),
                                            RELAY_COUNTER(dropped_corrupt),
                                            RELAY_COUNTER(dead_lettered),
                                            RELAY_COUNTER(still_spooled),
                                            RELAY_COUNTER(queued),
                                            {"balanced", nullptr},
                                            RELAY_COUNTER(calls_ok),
                                            RELAY_COUNTER(calls_retry),
                                            RELAY_COUNTER(events_retried),
                                            RELAY_COUNTER(deferred),
                                            RELAY_COUNTER(spooled),
                                            RELAY_COUNTER(replayed),
                                            RELAY_COUNTER(splits, false),
                                            RELAY_COUNTER(spool_quarantined_files, false)};
#undef RELAY_COUNTER

void put_counters(Poco::JSON::Object& sink, const OutletCounters& counters) {
  for (const SummaryCounter& counter : kSinkCounters) {
    if (counter.value == nullptr) {
      sink.set(counter.key, counters.reconciles());
      continue;
    }
    const uint64_t value = counters.*counter.value;
    if (counter.always || value > 0) sink.set(counter.key, value);
  }
}

}  // namespace

std::string Pipeline::summary_json() const {
  const PipelineCounters totals = counters();
  Poco::JSON::Object summary(Poco::JSON_PRESERVE_KEY_ORDER);
  summary.set("received_events", totals.events);
  summary.set("received_posts", totals.posts);
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
    Poco::JSON::Object sink(Poco::JSON_PRESERVE_KEY_ORDER);
    put_counters(sink, c);
    if (c.disabled) sink.set("disabled", true);
    if (c.flush_failed) sink.set("flush_failed", true);
    sinks.set(outlet->name(), sink);
  }
  summary.set("sinks", sinks);
  std::ostringstream out;
  Poco::JSON::Stringifier::condense(summary, out);
  return out.str();
}

}  // namespace relay
