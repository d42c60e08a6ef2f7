// The lifecycle loop on the main thread: wait in `next`, tell the pipeline what happened, hold an
// invocation for `end` flushing within its budget, and on SHUTDOWN drain late telemetry, deliver
// within the deadline, spool the rest, flush and destroy the sinks, and report (ShutdownBudget
// in deadline.h has the phases).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "deadline.h"
#include "extensions_api.h"
#include "pipeline.h"

namespace relay {

struct LifecycleOptions {
  uint32_t shutdown_quiet_ms = 250;   // stop draining after this long without telemetry
  uint32_t shutdown_margin_ms = 150;  // exit this long before deadlineMs
  // `end` mode: an invocation is held at most this long after its INVOKE arrived (the wait for
  // platform.runtimeDone included), and never past its deadlineMs minus invoke_margin_ms.
  uint32_t invoke_budget_ms = 100;
  uint32_t invoke_margin_ms = 50;
  // False when no telemetry can arrive (the subscription was refused or is not supported): `end`
  // mode then flushes at once instead of waiting for a platform.runtimeDone that never comes.
  bool telemetry_expected = true;
  // Managed Instances: there are no INVOKE events and no last invocation, so the shutdown drain
  // ends on the quiet period alone.
  bool managed_instances = false;
  // Called when the shutdown is still busy at deadlineMs minus the margin (a sink that hangs).
  // It must end the process; the default logs nothing more and exits 0 at once. Tests replace it.
  std::function<void()> on_shutdown_overrun;
};

class Lifecycle {
 public:
  Lifecycle(ExtensionsApi& api, Pipeline& pipeline, LifecycleOptions options);
  // Loops on next() until SHUTDOWN. Returns the process exit code: 0 after a clean shutdown,
  // 1 when Lambda's API failed (reported with exit/error first).
  int run();
  uint64_t invocations() const { return invocations_; }

  // The moment an invocation received at received_unix_ms must be released in `end` mode.
  static Deadline invoke_deadline(const LifecycleEvent& event, uint64_t received_unix_ms,
                                  const LifecycleOptions& options);

 private:
  void end_of_invocation(const LifecycleEvent& event, uint64_t received_unix_ms);
  void shutdown(const LifecycleEvent& event);
  // Logs the summary line, once per process, waiting for the outlets at most until the deadline.
  void write_summary_once(Deadline deadline);

  ExtensionsApi& api_;
  Pipeline& pipeline_;
  LifecycleOptions options_;
  std::string last_request_id_;
  uint64_t invocations_ = 0;
  static constexpr int kSummaryNotWritten = 0, kSummaryWriting = 1, kSummaryWritten = 2;
  std::atomic<int> summary_state_{kSummaryNotWritten};
  std::mutex summary_mutex_;
  std::condition_variable summary_written_;
};

}  // namespace relay
