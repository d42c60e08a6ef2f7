// The host's one way to handle time limits: a Deadline (Unix epoch milliseconds, the clock Lambda
// and the sink ABI give deadlines in), the phases of the SHUTDOWN window, and run_in_parallel,
// the one place that runs work on several threads and waits for it at most until a deadline.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace relay {

uint64_t now_unix_ms();

class Deadline {
 public:
  constexpr explicit Deadline(uint64_t unix_ms) : unix_ms_(unix_ms) {}
  static Deadline in(std::chrono::milliseconds from_now);

  constexpr uint64_t unix_ms() const { return unix_ms_; }
  // Time left, 0 once passed.
  uint64_t remaining_ms() const;
  bool passed() const { return remaining_ms() == 0; }
  std::chrono::system_clock::time_point time_point() const {
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(unix_ms_));
  }
  // This deadline moved `ms` earlier, but not before `floor`.
  Deadline earlier_by(uint64_t ms, Deadline floor) const;

  friend constexpr auto operator<=>(Deadline, Deadline) = default;

 private:
  uint64_t unix_ms_;
};

// The SHUTDOWN window, from the event to Lambda's deadlineMs, in phases:
//
//   drain (at most half) | deliver | spool leftovers, flush, destroy | summary | margin |
//   deadlineMs
//                                  ^ deliver_until                   ^ close_until  ^ exit_by
//
// The drain waits for the last platform.report. Delivery takes what the drain left, minus a
// reserve (a quarter of it, 10 to 200 ms) in which every outlet spools what is left, each sink
// is flushed and destroyed, and the summary is written. exit_by is deadlineMs minus the margin:
// the watchdog ends the process there whatever is still running.
class ShutdownBudget {
 public:
  // Lambda's documented Shutdown phase with external extensions, when deadlineMs is missing.
  static constexpr uint64_t kDefaultWindowMs = 2000;

  // lambda_deadline_unix_ms: the event's deadlineMs (0 or less: the default window).
  ShutdownBudget(uint64_t start_unix_ms, int64_t lambda_deadline_unix_ms, uint64_t margin_ms);

  Deadline lambda_deadline() const { return lambda_deadline_; }
  Deadline exit_by() const { return exit_by_; }
  Deadline drain_until() const { return drain_until_; }
  // Once the drain has ended at drained_unix_ms, the rest of the window is split.
  void end_drain(uint64_t drained_unix_ms);
  Deadline deliver_until() const { return deliver_until_; }
  Deadline close_until() const { return close_until_; }

 private:
  Deadline lambda_deadline_;
  Deadline exit_by_;
  Deadline drain_until_;
  Deadline deliver_until_;
  Deadline close_until_;
};

// Runs work(i) for every i in [0, count) at once and waits until all returned, or with a
// deadline at most until then. Returns, for each i, whether it returned in time. Without a
// deadline (for work that keeps its own, like an outlet's flush_until) the last item runs on the
// calling thread. With one (for plugin code that may hang), each runs on its own thread, and work
// still running at the deadline goes on detached: it must only use what outlives it (in the
// extension the process exits soon after; the Pipeline's destructor waits for it).
std::vector<bool> run_in_parallel(size_t count, std::function<void(size_t)> work,
                                  std::optional<Deadline> deadline = std::nullopt);

}  // namespace relay
