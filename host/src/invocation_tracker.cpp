#include "invocation_tracker.h"

#include <algorithm>

namespace relay {
namespace {

// The waits concern the current invocation or the one before: a few ids are plenty.
constexpr size_t kRememberedIds = 16;

void remember(std::deque<std::string>& ids, std::string_view id) {
  ids.emplace_back(id);
  if (ids.size() > kRememberedIds) ids.pop_front();
}

}  // namespace

void InvocationTracker::note_arrival(const std::vector<PlatformFields>& platform) {
  {
    std::lock_guard lock(mutex_);
    last_arrival_ms_ = now_unix_ms();
    for (const PlatformFields& fields : platform) {
      if (fields.type == PlatformType::kReport) remember(reports_, fields.request_id);
      if (fields.type == PlatformType::kRuntimeDone) remember(runtime_dones_, fields.request_id);
    }
  }
  arrived_.notify_all();
}

bool InvocationTracker::seen(const std::deque<std::string>& ids, const std::string& id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

bool InvocationTracker::wait_for_runtime_done(const std::string& request_id, Deadline deadline) {
  std::unique_lock lock(mutex_);
  return arrived_.wait_until(lock, deadline.time_point(),
                             [&] { return seen(runtime_dones_, request_id); });
}

bool InvocationTracker::wait_for_report(const std::string& request_id, uint32_t quiet_ms,
                                        Deadline deadline) {
  std::unique_lock lock(mutex_);
  const uint64_t started = now_unix_ms();
  while (true) {
    if (!request_id.empty() && seen(reports_, request_id)) return true;
    const Deadline quiet_end(std::max(started, last_arrival_ms_) + quiet_ms);
    const Deadline until = std::min(quiet_end, deadline);
    if (until.passed()) return false;
    arrived_.wait_until(lock, until.time_point());
  }
}

}  // namespace relay
