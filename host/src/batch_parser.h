// Splits a Telemetry API POST body (a JSON array of events) into events without re-serialising.
#pragma once

#include <optional>
#include <string>

#include "telemetry_batch.h"

namespace relay {

struct ParseError {
  std::string message;  // names what was wrong and where (byte offset or event index)
};

// Parses body (which it takes over). On success every TelemetryEvent views into result.body.
// Fails, naming the reason, when the body is not a JSON array of objects, or is truncated.
// Missing "type"/"time" are tolerated (empty views); "record" may be any JSON value.
struct ParseResult {
  std::optional<TelemetryBatch> batch;
  ParseError error;
};
ParseResult parse_batch(std::string body);

}  // namespace relay
