#pragma once

// The body of an OTLP/HTTP 200 answer: Export{Logs,Trace,Metrics}ServiceResponse, protobuf or
// JSON, of which the sink needs only partial_success (how many items the server rejected, why).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "otlp_model.h"

namespace relay::otlp {

// Longest body parsed (the caller caps what it reads at this) and longest error_message kept.
inline constexpr size_t kMaxResponseBody = 64 * 1024;
inline constexpr size_t kMaxPartialSuccessMessage = 1024;

struct PartialSuccess {
  int64_t rejected = 0;  // rejected log records, spans or data points; never negative
  // The server's message, at most kMaxPartialSuccessMessage bytes, cut at a character boundary,
  // control characters and invalid UTF-8 replaced so it is one printable log line.
  std::string error_message;
};

// An empty body (or no partial_success) is a full success: rejected 0. A body that is not a
// response of this signal in that encoding (HTML from a proxy, truncated protobuf, wrong JSON
// types, a negative count) gives nullopt and `error` says what was wrong in one printable line
// with at most the first 100 bytes of the body. JSON counts may be numbers or decimal strings;
// unknown fields are ignored in both encodings.
std::optional<PartialSuccess> parse_export_response(Signal signal, bool json, std::string_view body,
                                                    std::string& error);

}  // namespace relay::otlp
