// What the lifecycle waits for in the telemetry: an invocation's platform.runtimeDone (`end`
// mode releases the invocation after it) and its platform.report (the SHUTDOWN drain ends with
// the last one), or a quiet period without any telemetry.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "deadline.h"
#include "telemetry_post.h"

namespace relay {

class InvocationTracker {
 public:
  // A POST's events arrived (already queued in every outlet, so that whoever this wakes finds
  // them there). [listener threads]
  void note_arrival(const std::vector<PlatformFields>& platform);
  // Waits until platform.runtimeDone of request_id arrived (true) or the deadline passed.
  bool wait_for_runtime_done(const std::string& request_id, Deadline deadline);
  // Waits until platform.report of request_id arrived (true), or no telemetry arrived for
  // quiet_ms, or the deadline passed. With an empty request_id (no invocation yet) only the
  // quiet period counts.
  bool wait_for_report(const std::string& request_id, uint32_t quiet_ms, Deadline deadline);

 private:
  static bool seen(const std::deque<std::string>& ids, const std::string& id);

  std::mutex mutex_;
  std::condition_variable arrived_;
  uint64_t last_arrival_ms_ = 0;
  std::deque<std::string> reports_;        // request ids of the last few, newest last
  std::deque<std::string> runtime_dones_;  // the same for platform.runtimeDone
};

}  // namespace relay
