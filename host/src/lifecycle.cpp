#include "lifecycle.h"

#include <algorithm>

#include "logging.h"

namespace relay {

Lifecycle::Lifecycle(ExtensionsApi& api, Pipeline& pipeline, LifecycleOptions options)
    : api_(api), pipeline_(pipeline), options_(options) {}

int Lifecycle::run() {
  Poco::Logger& log = logger("lifecycle");
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
      case LifecycleEvent::Type::kInvoke:
        // The default flush mode adds nothing to the invocation: release and go back to next.
        ++invocations_;
        last_request_id_ = event.request_id;
        pipeline_.on_invoke();
        break;
      case LifecycleEvent::Type::kShutdown:
        shutdown(event);
        return 0;
      case LifecycleEvent::Type::kUnknown:
        log.warning("ignoring unknown event type '%s'", event.raw_type);
        break;
    }
  }
}

void Lifecycle::shutdown(const LifecycleEvent& event) {
  Poco::Logger& log = logger("lifecycle");
  const uint64_t now = now_unix_ms();
  const uint64_t exit_by =
      event.deadline_ms > static_cast<int64_t>(options_.shutdown_margin_ms)
          ? static_cast<uint64_t>(event.deadline_ms) - options_.shutdown_margin_ms
          : now;
  log.information("SHUTDOWN (%s), %Ld ms to the deadline", event.shutdown_reason,
                  static_cast<int64_t>(event.deadline_ms) - static_cast<int64_t>(now));
  // The last invocation's platform.report arrives after SHUTDOWN; wait for it, but keep at
  // least half of the remaining time for delivery.
  const uint64_t drain_until = now + (exit_by > now ? (exit_by - now) / 2 : 0);
  const bool report_seen =
      pipeline_.wait_for_report(last_request_id_, options_.shutdown_quiet_ms, drain_until);
  log.debug("shutdown drain ended: %s",
            std::string(report_seen ? "last platform.report seen" : "quiet period or time limit"));
  pipeline_.shutdown(exit_by);
  log.information("summary %s", pipeline_.summary_json());
}

}  // namespace relay
