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
  const int priority = level == "error"   ? Poco::Message::PRIO_ERROR
                       : level == "warn"  ? Poco::Message::PRIO_WARNING
                       : level == "debug" ? Poco::Message::PRIO_DEBUG
                       : level == "trace" ? Poco::Message::PRIO_TRACE
                                          : Poco::Message::PRIO_INFORMATION;
  // "" addresses the root and every logger below it, including ones created before this call.
  Poco::Logger::setChannel("", channel);
  Poco::Logger::setLevel("", priority);
}

Poco::Logger& logger(const std::string& component) { return Poco::Logger::get("relay." + component); }

}  // namespace relay
