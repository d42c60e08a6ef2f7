#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace relay::otlp {

// An OTLP severity: SeverityNumber (0 unspecified, 1 TRACE ... 21 FATAL ... 24 FATAL4) and its
// canonical text ("INFO", "WARN2"; static storage). Unknown levels give {0, ""}.
struct Severity {
  int32_t number = 0;
  std::string_view text;
};

// A log level as runtimes write it, case-insensitive: TRACE..FATAL and their 2-4 forms, ALL ->
// TRACE, WARNING -> WARN, CRITICAL -> FATAL (the OpenTelemetry Lambda receiver's table).
Severity severity_from_level(std::string_view level);

// A line in one of the runtimes' text formats:
//   Node    <RFC 3339 time>\t<requestId>\t<LEVEL>\t<message>
//   Python  [<LEVEL>]\t<RFC 3339 time>\t<requestId>\t<message>
// request_id is empty when the runtime wrote "undefined" (Node, during init). Views into line.
struct LambdaTextLine {
  uint64_t time_unix_nano = 0;
  std::string_view request_id;
  std::string_view level;
  std::string_view message;
};
std::optional<LambdaTextLine> parse_lambda_text_line(std::string_view line);

// The content of a JSON string token ("..." with its quotes) with the short escapes (\" \\ \/
// \b \f \n \r \t) undone, into out. False for \u escapes and invalid escapes, which the
// caller leaves to a JSON parser. Raw quotes and control characters, which the host's parser
// has already refused, are not looked for: they would only be copied.
bool unescape_simple_json_string(std::string_view token, std::string& out);

// Replaces each maximal invalid UTF-8 subsequence of text with U+FFFD into out (cleared first).
// Returns false, leaving out untouched, when text is valid already.
bool repair_utf8(std::string_view text, std::string& out);

}  // namespace relay::otlp
