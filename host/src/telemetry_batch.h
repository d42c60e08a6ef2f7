// A batch of telemetry events as received from the Lambda Telemetry API, kept as the original
// bytes.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace relay {

// Views into the body that carried the event. Never re-serialised: the sink gets these bytes.
struct TelemetryEvent {
  std::string_view json;    // the whole event object {"time":..,"type":..,"record":..}
  std::string_view type;    // the value of "type" without quotes
  std::string_view time;    // the value of "time" without quotes
  std::string_view record;  // raw JSON of "record": a quoted string or an object/other value
};

// One POST body split into events. The body is shared (immutable) by every outlet it fans out to.
struct TelemetryBatch {
  std::shared_ptr<const std::string> body;
  std::vector<TelemetryEvent> events;  // views into *body

  size_t byte_size() const { return body ? body->size() : 0; }
};

}  // namespace relay
