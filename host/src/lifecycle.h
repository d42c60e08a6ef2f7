// The lifecycle loop on the main thread: wait in `next`, tell the pipeline what happened, and on
// SHUTDOWN drain late telemetry, deliver within the deadline and report.
#pragma once

#include <cstdint>
#include <string>

#include "extensions_api.h"
#include "pipeline.h"

namespace relay {

struct LifecycleOptions {
  uint32_t shutdown_quiet_ms = 250;   // stop draining after this long without telemetry
  uint32_t shutdown_margin_ms = 150;  // exit this long before deadlineMs
};

class Lifecycle {
 public:
  Lifecycle(ExtensionsApi& api, Pipeline& pipeline, LifecycleOptions options);
  // Loops on next() until SHUTDOWN. Returns the process exit code: 0 after a clean shutdown,
  // 1 when Lambda's API failed (reported with exit/error first).
  int run();
  uint64_t invocations() const { return invocations_; }

 private:
  void shutdown(const LifecycleEvent& event);

  ExtensionsApi& api_;
  Pipeline& pipeline_;
  LifecycleOptions options_;
  std::string last_request_id_;
  uint64_t invocations_ = 0;
};

}  // namespace relay
