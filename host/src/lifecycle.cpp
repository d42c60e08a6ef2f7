#include "lifecycle.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include "logging.h"

namespace relay {
namespace {

// Lambda's documented Shutdown phase for a function with external extensions; used when the
// SHUTDOWN event carries no deadlineMs.
constexpr uint64_t kDefaultShutdownMs = 2000;

// Ends a shutdown that overruns its exit time: a sink stuck in a call must not keep the
// process alive until Lambda's SIGKILL, which Lambda records as a failed shutdown.
class ShutdownWatchdog {
 public:
  ShutdownWatchdog(uint64_t exit_by_unix_ms, std::function<void()> on_overrun)
      : thread_([this, exit_by_unix_ms, overrun = std::move(on_overrun)] {
          std::unique_lock lock(mutex_);
          while (!done_) {
            const uint64_t now = now_unix_ms();
            if (now >= exit_by_unix_ms) {
              lock.unlock();
              overrun();
              return;
            }
            finished_.wait_for(lock, std::chrono::milliseconds(exit_by_unix_ms - now));
          }
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

uint64_t Lifecycle::invoke_deadline(const LifecycleEvent& event, uint64_t received_unix_ms,
                                    const LifecycleOptions& options) {
  uint64_t deadline = received_unix_ms + options.invoke_budget_ms;
  if (event.deadline_ms > 0) {
    const uint64_t function_deadline = static_cast<uint64_t>(event.deadline_ms);
    const uint64_t latest = function_deadline > options.invoke_margin_ms
                                ? function_deadline - options.invoke_margin_ms
                                : received_unix_ms;
    deadline = std::min(deadline, std::max(latest, received_unix_ms));
  }
  return deadline;
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
  const uint64_t deadline = invoke_deadline(event, received_unix_ms, options_);
  const bool done_seen = options_.telemetry_expected && !event.request_id.empty() &&
                         pipeline_.wait_for_runtime_done(event.request_id, deadline);
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
  const uint64_t deadline =
      event.deadline_ms > 0 ? static_cast<uint64_t>(event.deadline_ms) : now + kDefaultShutdownMs;
  const uint64_t exit_by =
      deadline > now + options_.shutdown_margin_ms ? deadline - options_.shutdown_margin_ms : now;
  log.information("SHUTDOWN (%s), %Ld ms to the deadline", event.shutdown_reason,
                  static_cast<int64_t>(deadline) - static_cast<int64_t>(now));

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
    write_summary_once(std::chrono::milliseconds(options_.shutdown_margin_ms / 2));
    finish();
  };
  ShutdownWatchdog watchdog(exit_by, overrun);

  // Phase 1: the last invocation's platform.report arrives after SHUTDOWN; wait for it (on
  // Managed Instances, and before any invocation, for a quiet period), but keep at least half
  // of the remaining time for delivery.
  const std::string last = options_.managed_instances ? std::string() : last_request_id_;
  const uint64_t drain_until = now + (exit_by - now) / 2;
  const bool report_seen = pipeline_.wait_for_report(last, options_.shutdown_quiet_ms, drain_until);
  log.debug("shutdown drain ended: %s",
            std::string(report_seen ? "last platform.report seen" : "quiet period or time limit"));

  // Phase 2 and 3: deliver with what time remains, keeping a reserve in which each outlet
  // spools (or counts) what is left and the summary is written.
  const uint64_t drained = now_unix_ms();
  const uint64_t left = exit_by > drained ? exit_by - drained : 0;
  const uint64_t reserve = std::clamp<uint64_t>(left / 4, std::min<uint64_t>(left, 10), 200);
  pipeline_.shutdown(exit_by - std::min(left, reserve));
  // Phase 4. (Past exit_by the watchdog takes over, and waits for this line.)
  const uint64_t at = now_unix_ms();
  write_summary_once(std::chrono::milliseconds(
      std::max<uint64_t>(exit_by > at ? exit_by - at : 0, options_.shutdown_margin_ms / 2)));
}

void Lifecycle::write_summary_once(std::chrono::milliseconds patience) {
  // The watchdog and the shutdown path may both get here (a deadline already past): one line.
  int idle = kSummaryNotWritten;
  if (!summary_state_.compare_exchange_strong(idle, kSummaryWriting)) {
    // The other one is writing it: let it finish before this one ends the process.
    const auto until = std::chrono::steady_clock::now() + patience;
    while (summary_state_.load() != kSummaryWritten && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return;
  }
  Poco::Logger& out = logger("lifecycle");
  // The summary takes each outlet's lock, which an outlet may hold while it spools (fsync):
  // wait for it only part of the margin, so the exit stays ahead of the deadline.
  auto summary = std::make_shared<std::promise<std::string>>();
  std::future<std::string> ready = summary->get_future();
  std::thread([this, summary] { summary->set_value(pipeline_.summary_json()); }).detach();
  if (ready.wait_for(patience) == std::future_status::ready) {
    out.information("summary %s", ready.get());
  } else {
    out.error("summary unavailable: an outlet was still writing its spool at the deadline");
  }
  summary_state_.store(kSummaryWritten);
}

}  // namespace relay
