// Shared helpers for the host's unit tests (the mocks are in tests/mocks/).
#pragma once

#include <Poco/AutoPtr.h>
#include <Poco/Channel.h>
#include <Poco/Logger.h>
#include <Poco/Message.h>
#include <gmock/gmock.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "batch_parser.h"
#include "deadline.h"
#include "telemetry_post.h"

namespace relay::testing {

// A batch of n small events: {"time":"...","type":"function","record":"<prefix> i"}.
inline TelemetryPost make_batch(int n, const std::string& prefix = "line",
                                const std::string& type = "function") {
  std::string body = "[";
  for (int i = 0; i < n; ++i) {
    if (i > 0) body += ",";
    body += R"({"time":"2024-05-14T09:12:05.321Z","type":")" + type + R"(","record":")" + prefix +
            " " + std::to_string(i) + "\"}";
  }
  body += "]";
  ParseResult parsed = parse_batch(std::move(body));
  return std::move(*parsed.batch);
}

// A SHUTDOWN window ending `window` from now, without margin (for Pipeline::shutdown).
inline ShutdownBudget shutdown_window(std::chrono::milliseconds window) {
  const uint64_t now = now_unix_ms();
  return ShutdownBudget(now, static_cast<int64_t>(now + static_cast<uint64_t>(window.count())), 0);
}

// Polls cond every 5 ms for up to `limit`; for conditions reached by other threads.
inline bool eventually(const std::function<bool()>& cond,
                       std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

// Collects what one logger writes ("<priority> <text>" per line) while it lives.
class LogCapture {
 public:
  explicit LogCapture(const std::string& name, int level = Poco::Message::PRIO_INFORMATION)
      : logger_(Poco::Logger::get(name)),
        previous_(logger_.getChannel()),
        previous_level_(logger_.getLevel()),
        channel_(new Channel) {
    logger_.setChannel(channel_);
    logger_.setLevel(level);
  }
  ~LogCapture() {
    logger_.setChannel(previous_);
    logger_.setLevel(previous_level_);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::vector<std::string> lines() const { return channel_->lines(); }

 private:
  class Channel : public Poco::Channel {
   public:
    void log(const Poco::Message& msg) override {
      std::lock_guard lock(mutex_);
      lines_.push_back(std::to_string(msg.getPriority()) + " " + msg.getText());
    }
    std::vector<std::string> lines() const {
      std::lock_guard lock(mutex_);
      return lines_;
    }

   private:
    mutable std::mutex mutex_;
    std::vector<std::string> lines_;
  };
  Poco::Logger& logger_;
  Poco::Channel::Ptr previous_;
  int previous_level_;
  Poco::AutoPtr<Channel> channel_;
};

}  // namespace relay::testing
