// What the listener hands parsed telemetry to (the pipeline in production, a mock in tests).
#pragma once

#include "telemetry_batch.h"

namespace relay {

class BatchConsumer {
 public:
  virtual ~BatchConsumer() = default;
  // Called on a listener thread, possibly concurrently. Must not block on any sink.
  virtual void consume(TelemetryBatch&& batch) = 0;
};

}  // namespace relay
