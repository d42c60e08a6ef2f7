#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace relay::otlp {

// An RFC 3339 date-time as Unix nanoseconds: YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm).
// Lenient where Lambda's producers are: 't' or ' ' as separator, 'z', any number of fraction
// digits (beyond nanoseconds ignored), a leap second 60 folded into the next second. Anything
// else, including times before 1970, gives nullopt (the caller falls back).
std::optional<uint64_t> parse_rfc3339_nanos(std::string_view text);

}  // namespace relay::otlp
