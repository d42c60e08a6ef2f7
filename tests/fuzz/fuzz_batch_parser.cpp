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
  return 0;
}
