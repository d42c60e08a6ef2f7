// Fans each received batch out to one outlet per enabled sink and relays lifecycle triggers.
// It owns no I/O: the listener calls consume(), the lifecycle loop calls the rest.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "batch_consumer.h"
#include "listener_stats.h"
#include "outlet.h"

namespace relay {

struct PipelineOptions {
  // Drop `extension` events that are our own log lines, so they never loop back as telemetry.
  bool drop_own_log_lines = false;
};

struct PipelineCounters {
  uint64_t batches = 0;
  uint64_t events = 0;
  uint64_t own_log_lines_dropped = 0;
  uint64_t platform_logs_dropped_records = 0;  // reported by Lambda in platform.logsDropped
  uint64_t without_sink = 0;                   // received while no sink is enabled
};

class Pipeline final : public BatchConsumer {
 public:
  Pipeline(std::vector<std::unique_ptr<Outlet>> outlets, PipelineOptions options);

  void consume(TelemetryBatch&& batch) override;  // [listener threads]

  void on_invoke();  // [lifecycle thread]
  // True when some outlet flushes at the end of each invocation (FlushMode::kEnd).
  bool flushes_at_invocation_end() const;
  // Waits until platform.runtimeDone of request_id arrived (true) or deadline_unix_ms passed.
  bool wait_for_runtime_done(const std::string& request_id, uint64_t deadline_unix_ms);
  // Flushes every `end` outlet, in parallel, until the deadline (Outlet::flush_until). Returns
  // true when none was left with pending telemetry. [lifecycle thread]
  bool flush_until(uint64_t deadline_unix_ms);
  // Waits until platform.report of request_id arrived, or no telemetry arrived for quiet_ms,
  // or deadline_unix_ms. With an empty request_id (no invocation yet) only the quiet period
  // counts. Returns true when the report was seen.
  bool wait_for_report(const std::string& request_id, uint32_t quiet_ms, uint64_t deadline_unix_ms);
  // Releases everything to every sink and waits for all of them, in parallel, until the deadline;
  // then each outlet spools (or counts as dropped) what is left. Returns true when nothing was
  // dropped.
  bool shutdown(uint64_t deadline_unix_ms);

  // The listener whose requests summary_json() reports (its `listener` section): what it accepted
  // and what it refused, so the summary reconciles with what Lambda sent. `stats` must outlive
  // every later summary_json() call.
  void watch_listener(const ListenerStats& stats) { listener_stats_.store(&stats); }

  PipelineCounters counters() const;
  const std::vector<std::unique_ptr<Outlet>>& outlets() const { return outlets_; }
  // One JSON object: pipeline counters and one entry per sink.
  std::string summary_json() const;

 private:
  std::vector<std::unique_ptr<Outlet>> outlets_;
  PipelineOptions options_;
  std::atomic<const ListenerStats*> listener_stats_{nullptr};

  mutable std::mutex mutex_;
  std::condition_variable arrived_;
  PipelineCounters counters_;
  uint64_t last_arrival_ms_ = 0;
  std::deque<std::string> report_request_ids_;        // the last few seen, newest last
  std::deque<std::string> runtime_done_request_ids_;  // the same for platform.runtimeDone
};

}  // namespace relay
