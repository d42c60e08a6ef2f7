#pragma once

// The OpenTelemetry exporter's list syntax, shared by OTEL_EXPORTER_OTLP_HEADERS (the sink's
// RELAY_OTLP_HEADERS) and OTEL_RESOURCE_ATTRIBUTES: W3C-baggage-like "k1=v1,k2=v2".

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace relay::otlp {

inline constexpr size_t kMaxOtelListBytes = 8 * 1024;
inline constexpr size_t kMaxOtelListItems = 64;

// The items of `text` in order (duplicates kept: the caller decides), each split at its first
// '=', key and value trimmed of spaces and tabs and then percent-decoded ("%2C" is a ','; '+' is
// not a space). Empty items ("a=1,,b=2", a trailing ',') are skipped; an empty value is kept.
// Throws std::invalid_argument naming `what` (e.g. "RELAY_OTLP_HEADERS") and the item's
// 1-based position, never its text (header values are secrets), for an item without '=', an
// empty key, a malformed percent-escape, a control character once decoded, more than
// kMaxOtelListItems items or more than kMaxOtelListBytes bytes.
std::vector<std::pair<std::string, std::string>> parse_otel_list(std::string_view text,
                                                                 std::string_view what);

}  // namespace relay::otlp
