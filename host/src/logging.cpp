#include "logging.h"

#include <Poco/AutoPtr.h>
#include <Poco/ConsoleChannel.h>
#include <Poco/FormattingChannel.h>
#include <Poco/PatternFormatter.h>

#include <algorithm>
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

std::string one_line(std::string_view text, size_t max_bytes) {
  std::string line;
  line.reserve(std::min(text.size(), max_bytes));
  for (char c : text.substr(0, max_bytes)) {
    line.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c);
  }
  const auto end = line.find_last_not_of(' ');
  line.erase(end == std::string::npos ? 0 : end + 1);
  line.erase(0, std::min(line.find_first_not_of(' '), line.size()));
  if (text.size() > max_bytes) line += "...";
  return line;
}

Poco::Logger& logger(const std::string& component) {
  return Poco::Logger::get("relay." + component);
}

}  // namespace relay
