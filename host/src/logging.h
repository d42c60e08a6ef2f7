// The extension's own log lines: stderr, one line per event, "<level> [<component>] <message>".
#pragma once

#include <Poco/Logger.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace relay {

// The most a log message keeps; longer ones are cut (see escape_for_log). The summary line is
// never cut: it is parsed, and stays far below this (at most kMaxSinks sinks, see config.h).
inline constexpr size_t kMaxLogMessageBytes = 32 * 1024;

// Sets up the root logger. level is one of error, warn, info, debug, trace. Every message, from
// the host or from a plugin through relay_host.log, passes escape_for_log on its way out.
void configure_logging(const std::string& level);

// Text made safe for one log line, whatever it holds: control characters and the Unicode line
// breaks (U+0085, U+2028, U+2029) become escapes such as \n, \x1b or \u2028, so no value can
// start a forged line; at most max_bytes are kept (whole characters), then "...(<n> bytes)".
std::string escape_for_log(std::string_view text, size_t max_bytes = kMaxLogMessageBytes);

// Text from outside (an HTTP answer's body) made fit for one log line: control characters
// become spaces, surrounding whitespace goes, and at most max_bytes are kept.
std::string one_line(std::string_view text, size_t max_bytes = 512);

// Logger for one component, e.g. logger("listener") -> "relay.listener".
Poco::Logger& logger(const std::string& component);

}  // namespace relay
