// The host's own view of a sink: a plain C++ interface the outlets call and tests mock.
// The C ABI of plugins is adapted to it in dl_sink.h; nothing else in the host sees the ABI.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "telemetry_post.h"

namespace relay {

enum class DeliveryStatus { kOk, kRetry, kDrop, kFatal };

const char* to_string(DeliveryStatus status);

struct DeliveryResult {
  DeliveryStatus status = DeliveryStatus::kOk;
  std::string error;  // the sink's explanation when status is not kOk
  // With kRetry: the sink's Retry-After hint, 0 when none. The outlet bounds it.
  uint64_t retry_after_ms = 0;
  // With kOk: the sink discarded the events by configuration (e.g. no endpoint configured).
  bool discarded = false;
  // With kOk: how many of the events the receiver refused (a partial success); the outlet counts
  // them dropped by the sink (at most the delivery's events) and the rest delivered.
  uint64_t rejected_events = 0;
  // With kDrop: the receiver refused the delivery as too large; the outlet splits it.
  bool too_large = false;
};

// What one delivery hands a sink: the events and the JSON array made of their original bytes.
struct Delivery {
  std::string batch_id{};                // random, the same on every retry and replay
  std::string json{};                    // "[e1,e2,...]"
  std::vector<TelemetryEvent> events{};  // views into the batches the events came from
};

// The calls an outlet makes, in this order (sink_abi.h says what the plugin sees):
//   deliver* (the outlet thread, one at a time), then at SHUTDOWN flush once (a shutdown thread,
//   after the outlet thread ended) and destroy once (the main thread). A sink stuck in a call
//   at the deadline gets no further call.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual const std::string& name() const = 0;
  virtual DeliveryResult deliver(const Delivery& delivery, uint64_t deadline_unix_ms) = 0;
  // Hands on what the sink buffers itself; kOk means nothing is left buffered.
  virtual DeliveryResult flush(uint64_t deadline_unix_ms) = 0;
  // Ends the instance; no call follows. (The process exits soon after: a plugin library stays
  // loaded.)
  virtual void destroy() = 0;
};

using SinkPtr = std::unique_ptr<Sink>;

}  // namespace relay
