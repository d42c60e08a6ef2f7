#include "pipeline.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Stringifier.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <sstream>

#include "logging.h"

namespace relay {
namespace {

constexpr size_t kRememberedReports = 16;

// Our log lines start with this (logging.cpp). In text format the record is the line itself; in
// JSON format Lambda wraps it as {"message": ...}.
bool is_own_log_line(const TelemetryEvent& event) {
  if (event.type != "extension") return false;
  return event.record.rfind("\"telemetry-relay ", 0) == 0 ||
         event.record.find("\"message\":\"telemetry-relay ") != std::string_view::npos;
}

// The value of a string field in a small JSON object, found textually: enough for requestId,
// which Lambda writes as a plain UUID.
std::string_view string_field(std::string_view json, std::string_view field) {
  std::string key = "\"";
  key.append(field).append("\":\"");
  const size_t at = json.find(key);
  if (at == std::string_view::npos) return {};
  const size_t begin = at + key.size();
  const size_t end = json.find('"', begin);
  return end == std::string_view::npos ? std::string_view{} : json.substr(begin, end - begin);
}

uint64_t number_field(std::string_view json, std::string_view field) {
  std::string key = "\"";
  key.append(field).append("\":");
  const size_t at = json.find(key);
  if (at == std::string_view::npos) return 0;
  size_t begin = at + key.size();
  while (begin < json.size() && json[begin] == ' ') ++begin;
  uint64_t value = 0;
  std::from_chars(json.data() + begin, json.data() + json.size(), value);
  return value;
}

}  // namespace

Pipeline::Pipeline(std::vector<std::unique_ptr<Outlet>> outlets, PipelineOptions options)
    : outlets_(std::move(outlets)), options_(options) {}

void Pipeline::consume(TelemetryBatch&& batch) {
  uint64_t own_lines = 0;
  if (options_.drop_own_log_lines) {
    const auto before = batch.events.size();
    std::erase_if(batch.events, is_own_log_line);
    own_lines = before - batch.events.size();
  }
  uint64_t logs_dropped = 0;
  std::vector<std::string> reports;
  for (const TelemetryEvent& event : batch.events) {
    if (event.type == "platform.report") {
      reports.emplace_back(string_field(event.record, "requestId"));
    } else if (event.type == "platform.logsDropped") {
      logs_dropped += number_field(event.record, "droppedRecords");
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
    for (auto& id : reports) {
      report_request_ids_.push_back(std::move(id));
      if (report_request_ids_.size() > kRememberedReports) report_request_ids_.pop_front();
    }
  }
  arrived_.notify_all();
}

void Pipeline::on_invoke() {
  for (auto& outlet : outlets_) outlet->on_invoke();
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

void Pipeline::shutdown(uint64_t deadline_unix_ms) {
  for (auto& outlet : outlets_) outlet->begin_shutdown(deadline_unix_ms);
  for (auto& outlet : outlets_) outlet->finish_shutdown(deadline_unix_ms);
}

PipelineCounters Pipeline::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

std::string Pipeline::summary_json() const {
  const PipelineCounters totals = counters();
  Poco::JSON::Object summary;
  summary.set("received_events", totals.events);
  summary.set("received_batches", totals.batches);
  summary.set("platform_logs_dropped", totals.platform_logs_dropped_records);
  summary.set("own_log_lines_dropped", totals.own_log_lines_dropped);
  if (totals.without_sink > 0) summary.set("dropped_no_sink", totals.without_sink);
  Poco::JSON::Object sinks;
  for (const auto& outlet : outlets_) {
    const OutletCounters c = outlet->counters();
    Poco::JSON::Object sink;
    sink.set("received", c.received);
    sink.set("delivered", c.delivered);
    sink.set("deliveries", c.deliveries);
    sink.set("retries", c.retries);
    sink.set("dropped_by_cap", c.dropped_by_cap);
    sink.set("dropped_by_sink", c.dropped_by_sink);
    sink.set("dropped_at_shutdown", c.dropped_at_shutdown);
    sink.set("dropped_disabled", c.dropped_disabled);
    sink.set("queued", c.queued);
    sinks.set(outlet->name(), sink);
  }
  summary.set("sinks", sinks);
  std::ostringstream out;
  Poco::JSON::Stringifier::condense(summary, out);
  return out.str();
}

}  // namespace relay
