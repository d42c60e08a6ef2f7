// What the listener hands parsed telemetry to (the pipeline in production, a mock in tests).
#pragma once

#include "telemetry_post.h"

namespace relay {

class PostConsumer {
 public:
  virtual ~PostConsumer() = default;
  // Called on a listener thread, possibly concurrently. Must not block on any sink.
  virtual void consume(TelemetryPost&& post) = 0;
};

}  // namespace relay
