// The extension's own log lines: stderr, one line per event, "<level> [<component>] <message>".
#pragma once

#include <string>

#include <Poco/Logger.h>

namespace relay {

// Sets up the root logger. level is one of error, warn, info, debug, trace.
void configure_logging(const std::string& level);

// Logger for one component, e.g. logger("listener") -> "relay.listener".
Poco::Logger& logger(const std::string& component);

}  // namespace relay
