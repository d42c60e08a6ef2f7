#include "telemetry_sender.h"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/NullStream.h>
#include <Poco/StreamCopier.h>

namespace relay::emu {
namespace {

constexpr const char* kSlowConsumer =
    "Some logs were dropped because the downstream consumer is slower than the logs production "
    "rate";

std::string join_array(const std::vector<Event>& events, size_t bytes) {
  std::string body;
  body.reserve(bytes + events.size() + 2);
  body += '[';
  for (size_t i = 0; i < events.size(); ++i) {
    if (i) body += ',';
    body += events[i].text;
  }
  body += ']';
  return body;
}

}  // namespace

TelemetrySender::TelemetrySender(SenderOptions options, DropEventFn make_drop_event)
    : options_(std::move(options)), make_drop_event_(std::move(make_drop_event)) {
  thread_ = std::thread([this] { run(); });
}

TelemetrySender::~TelemetrySender() { stop(); }

void TelemetrySender::enqueue(Event event) {
  std::lock_guard lock(mu_);
  if (stop_) return;
  if (current_.events.empty()) {
    current_deadline_ = Clock::now() + std::chrono::milliseconds(options_.buffering.timeout_ms);
  }
  current_.bytes += event.text.size();
  current_.events.push_back(std::move(event));
  // Like RIE, size is checked after appending, so a batch may exceed maxBytes by one event.
  if (current_.events.size() >= options_.buffering.max_items ||
      current_.bytes >= options_.buffering.max_bytes) {
    seal_locked();
  }
  cv_.notify_all();
}

void TelemetrySender::seal_locked() {
  if (ready_.size() >= options_.max_queued_batches) {
    pending_drops_.push_back({current_.events.size(), current_.bytes, kSlowConsumer});
    stats_.batches_dropped++;
    stats_.events_dropped += current_.events.size();
  } else {
    ready_.push_back(std::move(current_));
    ++sealed_;
  }
  current_ = Batch{};
}

void TelemetrySender::pause() {
  std::lock_guard lock(mu_);
  paused_ = true;
}

void TelemetrySender::resume() {
  std::lock_guard lock(mu_);
  paused_ = false;
  cv_.notify_all();
}

bool TelemetrySender::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return !in_flight_; });
}

bool TelemetrySender::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  paused_ = false;
  if (!current_.events.empty()) seal_locked();
  const uint64_t target = sealed_;
  cv_.notify_all();
  return cv_.wait_for(lock, timeout, [&] { return stop_ || finished_ >= target; });
}

void TelemetrySender::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

SenderStats TelemetrySender::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void TelemetrySender::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (!pending_drops_.empty()) {
      auto drops = std::move(pending_drops_);
      pending_drops_.clear();
      lock.unlock();
      for (const Drop& drop : drops) {
        if (auto event = make_drop_event_(drop.records, drop.bytes, drop.reason)) {
          enqueue(std::move(*event));
        }
      }
      lock.lock();
      continue;
    }
    if (paused_) {
      cv_.wait(lock);
      continue;
    }
    if (!current_.events.empty() && Clock::now() >= current_deadline_) seal_locked();
    if (ready_.empty()) {
      if (current_.events.empty()) {
        cv_.wait(lock);
      } else {
        cv_.wait_until(lock, current_deadline_);
      }
      continue;
    }

    Batch batch = std::move(ready_.front());
    ready_.pop_front();
    in_flight_ = true;
    lock.unlock();
    std::vector<double> latencies;
    uint64_t retries = 0;
    uint64_t failures = 0;
    const std::string error = deliver(batch, latencies, retries, failures);
    lock.lock();
    in_flight_ = false;
    ++finished_;
    stats_.post_latency_ms.insert(stats_.post_latency_ms.end(), latencies.begin(), latencies.end());
    stats_.retries += retries;
    stats_.posts_failed += failures;
    if (error.empty()) {
      stats_.posts_ok++;
      stats_.events_delivered += batch.events.size();
      stats_.bytes_delivered += batch.bytes;
      stats_.batch_events.push_back(batch.events.size());
      for (const Event& event : batch.events) stats_.delivered_by_type[event.type]++;
    } else {
      stats_.batches_dropped++;
      stats_.events_dropped += batch.events.size();
      pending_drops_.push_back(
          {batch.events.size(), batch.bytes, "could not send events: " + error});
    }
    cv_.notify_all();
  }
}

std::string TelemetrySender::deliver(const Batch& batch, std::vector<double>& latencies,
                                     uint64_t& retries, uint64_t& failures) {
  const std::string body = join_array(batch.events, batch.bytes);
  std::string error;
  for (int attempt = 0; attempt <= options_.retries; ++attempt) {
    if (attempt > 0) {
      retries++;
      std::unique_lock lock(mu_);
      const auto backoff = std::chrono::milliseconds(options_.backoff_ms << (attempt - 1));
      if (cv_.wait_for(lock, backoff, [this] { return stop_; })) return "stopped";
    }
    const auto start = Clock::now();
    const int status = post(body, error);
    if (status > 0) {
      latencies.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    }
    if (status >= 200 && status < 300) return {};
    failures++;
    if (status > 0) error = "HTTP status " + std::to_string(status);
  }
  return error;
}

int TelemetrySender::post(const std::string& body, std::string& error) {
  using Poco::Net::HTTPMessage;
  using Poco::Net::HTTPRequest;
  try {
    if (!session_) {
      session_ = std::make_unique<Poco::Net::HTTPClientSession>("127.0.0.1", options_.port);
      session_->setTimeout(Poco::Timespan(options_.post_timeout_ms * Poco::Timespan::MILLISECONDS));
      session_->setKeepAlive(true);
    }
    HTTPRequest request(HTTPRequest::HTTP_POST, options_.path, HTTPMessage::HTTP_1_1);
    request.setContentType("application/json");
    request.setContentLength(static_cast<std::streamsize>(body.size()));
    request.setKeepAlive(true);
    session_->sendRequest(request).write(body.data(), static_cast<std::streamsize>(body.size()));
    Poco::Net::HTTPResponse response;
    std::istream& in = session_->receiveResponse(response);
    Poco::NullOutputStream sink;
    Poco::StreamCopier::copyStream(in, sink);
    if (!response.getKeepAlive()) session_.reset();
    return static_cast<int>(response.getStatus());
  } catch (const Poco::Exception& e) {
    error = e.displayText();
  } catch (const std::exception& e) {
    error = e.what();
  }
  session_.reset();
  return -1;
}

}  // namespace relay::emu
