#include "logging.h"

#include <Poco/AutoPtr.h>
#include <Poco/ConsoleChannel.h>
#include <Poco/FormattingChannel.h>
#include <Poco/PatternFormatter.h>

#include <iostream>

namespace relay {

void configure_logging(const std::string& level) {
  // stderr reaches CloudWatch as the extension's log stream; %q is the one-letter priority.
  Poco::AutoPtr<Poco::PatternFormatter> formatter(
      new Poco::PatternFormatter("telemetry-relay %p [%s] %t"));
  Poco::AutoPtr<Poco::FormattingChannel> channel(
      new Poco::FormattingChannel(formatter, new Poco::ConsoleChannel(std::cerr)));
  Poco::Logger::root().setChannel(channel);
  Poco::Logger::root().setLevel(level == "warn" ? "warning" : level);
  // Existing component loggers inherit the new setup.
  Poco::Logger::setChannel("", channel);
  Poco::Logger::setLevel("", Poco::Logger::parseLevel(level == "warn" ? "warning" : level));
}

Poco::Logger& logger(const std::string& component) { return Poco::Logger::get("relay." + component); }

}  // namespace relay
