// The extension's own log lines: stderr, one line per event, "<level> [<component>] <message>".
#pragma once

#include <Poco/Logger.h>

#include <string>
#include <string_view>

namespace relay {

// Sets up the root logger. level is one of error, warn, info, debug, trace.
void configure_logging(const std::string& level);

// Text from outside (an HTTP answer's body) made fit for one log line: control characters
// become spaces, surrounding whitespace goes, and at most max_bytes are kept.
std::string one_line(std::string_view text, size_t max_bytes = 512);

// Logger for one component, e.g. logger("listener") -> "relay.listener".
Poco::Logger& logger(const std::string& component);

}  // namespace relay
