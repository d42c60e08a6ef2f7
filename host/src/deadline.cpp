#include "deadline.h"

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

namespace relay {

uint64_t now_unix_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

Deadline Deadline::in(std::chrono::milliseconds from_now) {
  return Deadline(now_unix_ms() + static_cast<uint64_t>(std::max<int64_t>(from_now.count(), 0)));
}

uint64_t Deadline::remaining_ms() const {
  const uint64_t now = now_unix_ms();
  return unix_ms_ > now ? unix_ms_ - now : 0;
}

Deadline Deadline::earlier_by(uint64_t ms, Deadline floor) const {
  const uint64_t moved = unix_ms_ > ms ? unix_ms_ - ms : 0;
  return Deadline(std::max(moved, floor.unix_ms_));
}

ShutdownBudget::ShutdownBudget(uint64_t start_unix_ms, int64_t lambda_deadline_unix_ms,
                               uint64_t margin_ms)
    : lambda_deadline_(lambda_deadline_unix_ms > 0 ? static_cast<uint64_t>(lambda_deadline_unix_ms)
                                                   : start_unix_ms + kDefaultWindowMs),
      exit_by_(lambda_deadline_.earlier_by(margin_ms, Deadline(start_unix_ms))),
      // At most half the window drains: the rest is kept for delivery.
      drain_until_(start_unix_ms + (exit_by_.unix_ms() - start_unix_ms) / 2),
      deliver_until_(exit_by_),
      close_until_(exit_by_) {
  end_drain(start_unix_ms);
}

void ShutdownBudget::end_drain(uint64_t drained_unix_ms) {
  const Deadline drained(std::min(drained_unix_ms, exit_by_.unix_ms()));
  const uint64_t left = exit_by_.unix_ms() - drained.unix_ms();
  // Spooling takes milliseconds (an fsync), a flush a request or two, the summary less.
  const uint64_t reserve = std::clamp<uint64_t>(left / 4, std::min<uint64_t>(left, 10), 200);
  deliver_until_ = exit_by_.earlier_by(reserve, drained);
  close_until_ = exit_by_.earlier_by(reserve / 4, drained);
}

std::vector<bool> run_in_parallel(size_t count, std::function<void(size_t)> work,
                                  std::optional<Deadline> deadline) {
  // Shared with the threads, which may outlive this call.
  struct State {
    std::function<void(size_t)> work;
    std::mutex mutex;
    std::condition_variable returned;
    std::vector<bool> done;
    size_t running = 0;
  };
  auto state = std::make_shared<State>();
  state->work = std::move(work);
  state->done.assign(count, false);
  state->running = count;
  const size_t on_threads = deadline || count == 0 ? count : count - 1;
  auto finish = [](State& s, size_t i) {
    {
      std::lock_guard lock(s.mutex);
      s.done[i] = true;
      --s.running;
    }
    s.returned.notify_all();
  };
  for (size_t i = 0; i < on_threads; ++i) {
    std::thread([state, i, finish] {
      state->work(i);
      finish(*state, i);
    }).detach();
  }
  if (on_threads < count) {
    state->work(count - 1);
    finish(*state, count - 1);
  }
  std::unique_lock lock(state->mutex);
  auto all_returned = [&] { return state->running == 0; };
  if (deadline) {
    state->returned.wait_until(lock, deadline->time_point(), all_returned);
  } else {
    state->returned.wait(lock, all_returned);
  }
  return state->done;
}

}  // namespace relay
