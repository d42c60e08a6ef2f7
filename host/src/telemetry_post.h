// One POST from the Lambda Telemetry API: its events, kept as the original bytes. ("Batch" is
// what a sink receives: a Delivery, the ABI's relay_batch.)
#pragma once

#include <cstdint>
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

// The platform events whose fields the host itself reads.
enum class PlatformType : uint8_t { kStart, kRuntimeDone, kReport, kLogsDropped };

// Those fields, found by the parser whatever the key order and spacing. Events of other types,
// function and extension logs included, have no entry (they stay on the parser's fast path).
struct PlatformFields {
  PlatformType type = PlatformType::kStart;
  // record.requestId of platform.start, platform.runtimeDone and platform.report: the string's
  // contents as received (escapes kept, as in TelemetryEvent::type); empty when absent or not a
  // string.
  std::string_view request_id;
  // record.droppedRecords of platform.logsDropped; 0 when absent or not a non-negative number.
  uint64_t dropped_records = 0;
};

// One POST body split into events. The body is shared (immutable) by every outlet it fans out to.
struct TelemetryPost {
  std::shared_ptr<const std::string> body;
  std::vector<TelemetryEvent> events;    // views into *body
  std::vector<PlatformFields> platform;  // one per event of a PlatformType, in event order

  size_t byte_size() const { return body ? body->size() : 0; }
};

}  // namespace relay
