#include "lifecycle.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>

#include "function_arn.h"
#include "logging.h"

namespace relay {
namespace {

// Ends a shutdown that overruns its exit time: a sink stuck in a call must not keep the
// process alive until Lambda's SIGKILL, which Lambda records as a failed shutdown.
class ShutdownWatchdog {
 public:
  ShutdownWatchdog(Deadline exit_by, std::function<void()> on_overrun)
      : thread_([this, exit_by, overrun = std::move(on_overrun)] {
          std::unique_lock lock(mutex_);
          if (finished_.wait_until(lock, exit_by.time_point(), [this] { return done_; })) return;
          lock.unlock();
          overrun();
        }) {}
  ~ShutdownWatchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    finished_.notify_all();
    thread_.join();
  }
  ShutdownWatchdog(const ShutdownWatchdog&) = delete;
  ShutdownWatchdog& operator=(const ShutdownWatchdog&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable finished_;
  bool done_ = false;
  std::thread thread_;  // last: it starts running at once
};

}  // namespace

Lifecycle::Lifecycle(ExtensionsApi& api, Pipeline& pipeline, LifecycleOptions options)
    : api_(api), pipeline_(pipeline), options_(std::move(options)) {}

Deadline Lifecycle::invoke_deadline(const LifecycleEvent& event, uint64_t received_unix_ms,
                                    const LifecycleOptions& options) {
  const Deadline budget(received_unix_ms + options.invoke_budget_ms);
  if (event.deadline_ms <= 0) return budget;
  // Never past the function's own deadline minus the margin (nor before the INVOKE arrived).
  const Deadline function_deadline =
      Deadline(static_cast<uint64_t>(event.deadline_ms))
          .earlier_by(options.invoke_margin_ms, Deadline(received_unix_ms));
  return std::min(budget, function_deadline);
}

int Lifecycle::run() {
  Poco::Logger& log = logger("lifecycle");
  const bool at_end = pipeline_.flushes_at_invocation_end();
  while (true) {
    LifecycleEvent event;
    try {
      event = api_.next();
    } catch (const LambdaApiError& e) {
      log.error("event/next failed (status %d): %s %s", e.status(), std::string(e.what()),
                one_line(e.body()));
      api_.exit_error("Extension.NextFailed", e.what());
      return 1;
    }
    switch (event.type) {
      case LifecycleEvent::Type::kInvoke: {
        const uint64_t received = now_unix_ms();
        ++invocations_;
        last_request_id_ = event.request_id;
        publish_function_arn(event.function_arn);
        // next-invoke releases here; periodic and continuous outlets work on their own.
        pipeline_.on_invoke();
        if (at_end) end_of_invocation(event, received);
        if (log.debug()) log.debug("summary %s", pipeline_.summary_json());
        break;
      }
      case LifecycleEvent::Type::kShutdown:
        shutdown(event);
        return 0;
      case LifecycleEvent::Type::kUnknown:
        log.warning("ignoring unknown event type '%s'", event.raw_type);
        break;
    }
  }
}

// `end` mode: this invocation's telemetry is complete once its platform.runtimeDone arrived;
// deliver it before calling next, but never beyond the budget. What is left goes on in the
// background (the outlet counts it as deferred).
void Lifecycle::end_of_invocation(const LifecycleEvent& event, uint64_t received_unix_ms) {
  const Deadline deadline = invoke_deadline(event, received_unix_ms, options_);
  const bool done_seen = options_.telemetry_expected && !event.request_id.empty() &&
                         pipeline_.tracker().wait_for_runtime_done(event.request_id, deadline);
  const bool flushed = pipeline_.flush_until(deadline);
  Poco::Logger& log = logger("lifecycle");
  if (log.debug()) {
    log.debug("invocation %s released after %Lu ms: %s, %s", event.request_id,
              now_unix_ms() - received_unix_ms,
              std::string(done_seen ? "platform.runtimeDone seen" : "no platform.runtimeDone"),
              std::string(flushed ? "everything delivered" : "the rest goes on in the background"));
  }
}

void Lifecycle::shutdown(const LifecycleEvent& event) {
  Poco::Logger& log = logger("lifecycle");
  const uint64_t now = now_unix_ms();
  ShutdownBudget budget(now, event.deadline_ms, options_.shutdown_margin_ms);
  log.information(
      "SHUTDOWN (%s), %Ld ms to the deadline", event.shutdown_reason,
      static_cast<int64_t>(budget.lambda_deadline().unix_ms()) - static_cast<int64_t>(now));

  std::function<void()> finish = options_.on_shutdown_overrun;
  if (!finish) {
    finish = [] {
      std::fflush(nullptr);
      std::_Exit(0);
    };
  }
  auto overrun = [this, finish] {
    logger("lifecycle")
        .warning("shutdown: out of time with a sink still busy; exiting before the deadline");
    write_summary_once(Deadline::in(std::chrono::milliseconds(options_.shutdown_margin_ms / 2)));
    finish();
  };
  ShutdownWatchdog watchdog(budget.exit_by(), overrun);

  // Drain: the last invocation's platform.report arrives after SHUTDOWN; wait for it (on
  // Managed Instances, and before any invocation, for a quiet period).
  const std::string last = options_.managed_instances ? std::string() : last_request_id_;
  const bool report_seen =
      pipeline_.tracker().wait_for_report(last, options_.shutdown_quiet_ms, budget.drain_until());
  log.debug("shutdown drain ended: %s",
            std::string(report_seen ? "last platform.report seen" : "quiet period or time limit"));

  // Deliver, spool what is left, flush and destroy the sinks (ShutdownBudget has the phases).
  budget.end_drain(now_unix_ms());
  pipeline_.shutdown(budget);
  // The summary last. (Past exit_by the watchdog takes over, and waits for this line.)
  const Deadline summary_by = std::max(
      budget.exit_by(), Deadline::in(std::chrono::milliseconds(options_.shutdown_margin_ms / 2)));
  write_summary_once(summary_by);
}

void Lifecycle::write_summary_once(Deadline deadline) {
  // The watchdog and the shutdown path may both get here (a deadline already past): one line.
  int idle = kSummaryNotWritten;
  if (!summary_state_.compare_exchange_strong(idle, kSummaryWriting)) {
    // The other one is writing it: let it finish before this one ends the process.
    std::unique_lock lock(summary_mutex_);
    summary_written_.wait_until(lock, deadline.time_point(),
                                [this] { return summary_state_.load() == kSummaryWritten; });
    return;
  }
  Poco::Logger& out = logger("lifecycle");
  // The summary takes each outlet's lock, which an outlet may hold while it spools (fsync):
  // wait for it only until the deadline, so the exit stays ahead of Lambda's.
  auto summary = std::make_shared<std::string>();
  const bool ready = run_in_parallel(
      1, [&pipeline = pipeline_, summary](size_t) { *summary = pipeline.summary_json(); },
      deadline)[0];
  if (ready) {
    out.information("summary %s", *summary);
  } else {
    out.error("summary unavailable: an outlet was still writing its spool at the deadline");
  }
  {
    std::lock_guard lock(summary_mutex_);
    summary_state_.store(kSummaryWritten);
  }
  summary_written_.notify_all();
}

}  // namespace relay
