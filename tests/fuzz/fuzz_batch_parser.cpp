// libFuzzer target: a Telemetry API POST body as the listener hands it to parse_batch.
#include <cstddef>
#include <cstdint>
#include <string>

#include "batch_parser.h"

namespace {

// Reads every byte a view points at, so ASan sees a view that escapes the body.
size_t touch(std::string_view view) {
  size_t sum = 0;
  for (const char c : view) sum += static_cast<unsigned char>(c);
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  relay::ParseResult result =
      relay::parse_batch(std::string(reinterpret_cast<const char*>(data), size));
  if (!result.batch) {
    if (result.error.message.empty()) __builtin_trap();  // a failure must say why
    return 0;
  }
  const relay::TelemetryBatch& batch = *result.batch;
  if (!batch.body) __builtin_trap();
  const std::string& body = *batch.body;
  volatile size_t sink = 0;
  for (const relay::TelemetryEvent& event : batch.events) {
    // Every view lies inside the body the batch owns (sinks receive these bytes as they are).
    for (const std::string_view view : {event.json, event.type, event.time, event.record}) {
      if (view.empty()) continue;
      if (view.data() < body.data() || view.data() + view.size() > body.data() + body.size()) {
        __builtin_trap();
      }
      sink = sink + touch(view);
    }
    if (event.json.empty() || event.json.front() != '{' || event.json.back() != '}')
      __builtin_trap();
  }
  // The platform fields the host reads: at most one per event, views inside the body too.
  if (batch.platform.size() > batch.events.size()) __builtin_trap();
  for (const relay::PlatformFields& fields : batch.platform) {
    const std::string_view id = fields.request_id;
    if (!id.empty() &&
        (id.data() < body.data() || id.data() + id.size() > body.data() + body.size())) {
      __builtin_trap();
    }
    sink = sink + touch(id) + fields.dropped_records;
  }
  // A delivery is the events joined into one array (what the http sink POSTs): it must parse
  // back into the very same events, or a collector would get something else than Lambda sent.
  std::string joined = "[";
  for (const relay::TelemetryEvent& event : batch.events) {
    if (joined.size() > 1) joined += ',';
    joined += event.json;
  }
  joined += ']';
  const relay::ParseResult again = relay::parse_batch(joined);
  if (!again.batch || again.batch->events.size() != batch.events.size()) __builtin_trap();
  for (size_t i = 0; i < batch.events.size(); ++i) {
    const relay::TelemetryEvent& a = batch.events[i];
    const relay::TelemetryEvent& b = again.batch->events[i];
    if (a.json != b.json || a.type != b.type || a.time != b.time || a.record != b.record) {
      __builtin_trap();
    }
  }
  // The same events give the same platform fields, read from the joined copy.
  if (again.batch->platform.size() != batch.platform.size()) __builtin_trap();
  for (size_t i = 0; i < batch.platform.size(); ++i) {
    const relay::PlatformFields& a = batch.platform[i];
    const relay::PlatformFields& b = again.batch->platform[i];
    if (a.type != b.type || a.request_id != b.request_id ||
        a.dropped_records != b.dropped_records) {
      __builtin_trap();
    }
  }
  return 0;
}
