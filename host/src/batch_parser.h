// Splits a Telemetry API POST body (a JSON array of events) into events without re-serialising.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "telemetry_post.h"

namespace relay {

struct ParseError {
  std::string message;  // names what was wrong and where (byte offset or event index)
};

// Parses body (which it takes over). On success every TelemetryEvent views into result.body.
// Fails, naming the reason, when the body is not a JSON array (or is truncated, or has content
// after it). Within the array, each element that is not a valid JSON object (RFC 8259, no range
// limits on numbers or nesting), or whose "type"/"time" is not a string, is dropped and counted:
// every event kept is valid JSON, so events joined into an array always are too. Missing
// "type"/"time" are tolerated (empty views); "record" may be any JSON value.
struct ParseResult {
  std::optional<TelemetryPost> batch;
  // Without a batch: why. With one: what was wrong with the first dropped element, if any.
  ParseError error;
  size_t invalid_events = 0;  // elements dropped from batch
};
ParseResult parse_batch(std::string body);

// The contents of the top-level string field `key` of an object record, as received (escapes
// kept), or nullopt when the record is not an object, has no such field or it is not a string.
// `record` must be the record of an event parse_batch put in `batch` (it is read in place, in the
// padded body). A parse of its own: for the occasional record, not for every event.
std::optional<std::string_view> record_string_field(const TelemetryPost& batch,
                                                    std::string_view record, std::string_view key);

}  // namespace relay
