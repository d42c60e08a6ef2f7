// Fans each received POST out to one outlet per enabled sink, tells the invocation tracker what
// arrived, and runs the outlets' shared steps (the `end` flush, the shutdown) in parallel.
// It owns no I/O: the listener calls consume(), the lifecycle loop calls the rest.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "deadline.h"
#include "invocation_tracker.h"
#include "listener_stats.h"
#include "outlet.h"
#include "post_consumer.h"

namespace relay {

struct PipelineOptions {
  // Drop `extension` events that are our own log lines, so they never loop back as telemetry.
  bool drop_own_log_lines = false;
};

struct PipelineCounters {
  uint64_t posts = 0;  // POSTs from the Telemetry API
  uint64_t events = 0;
  uint64_t own_log_lines_dropped = 0;
  uint64_t platform_logs_dropped_records = 0;  // reported by Lambda in platform.logsDropped
  uint64_t without_sink = 0;                   // received while no sink is enabled
};

class Pipeline final : public PostConsumer {
 public:
  Pipeline(std::vector<std::unique_ptr<Outlet>> outlets, PipelineOptions options);
  // Waits for outlet work that outlived its deadline. (Never in the extension: it exits
  // without destructors.)
  ~Pipeline() override;

  void consume(TelemetryPost&& post) override;  // [listener threads]
  // The waits for platform.runtimeDone and platform.report. [lifecycle thread]
  InvocationTracker& tracker() { return tracker_; }

  void on_invoke();  // [lifecycle thread]
  // True when some outlet flushes at the end of each invocation (FlushMode::kEnd).
  bool flushes_at_invocation_end() const;
  // Flushes every `end` outlet, in parallel, until the deadline (Outlet::flush_until). Returns
  // true when none was left with pending telemetry. [lifecycle thread]
  bool flush_until(Deadline deadline);
  // SHUTDOWN, after the drain (see ShutdownBudget): every outlet delivers everything it holds
  // until budget.deliver_until(), then spools (or counts as dropped) what is left; then every
  // sink none of whose calls is still running is flushed (all in parallel, until
  // budget.close_until()) and destroyed (on this thread). Returns true when nothing was dropped
  // or left in a spool. [lifecycle thread]
  bool shutdown(const ShutdownBudget& budget);

  // The listener whose requests summary_json() reports (its `listener` section): what it accepted
  // and what it refused, so the summary reconciles with what Lambda sent. `stats` must outlive
  // every later summary_json() call.
  void watch_listener(const ListenerStats& stats) { listener_stats_.store(&stats); }

  PipelineCounters counters() const;
  const std::vector<std::unique_ptr<Outlet>>& outlets() const { return outlets_; }
  // One JSON object: pipeline counters and one entry per sink.
  std::string summary_json() const;

 private:
  // Runs work on each of `outlets` in parallel (run_in_parallel), with or without a deadline;
  // true when every one returned true in time.
  bool on_each(const std::vector<Outlet*>& outlets, const std::function<bool(Outlet&)>& work,
               std::optional<Deadline> deadline);
  void close_sinks(Deadline deadline);

  std::vector<std::unique_ptr<Outlet>> outlets_;
  PipelineOptions options_;
  std::atomic<const ListenerStats*> listener_stats_{nullptr};
  InvocationTracker tracker_;

  mutable std::mutex mutex_;
  std::condition_variable work_done_;
  size_t work_running_ = 0;  // on_each's calls still running, possibly past their deadline
  PipelineCounters counters_;
};

}  // namespace relay
