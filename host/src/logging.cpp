#include "logging.h"

#include <Poco/AutoPtr.h>
#include <Poco/ConsoleChannel.h>
#include <Poco/FormattingChannel.h>
#include <Poco/PatternFormatter.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <iostream>

namespace relay {
namespace {

// The single place every message is escaped and bounded: host code, plugin callbacks and
// configuration values all reach stderr through it.
class OneLineFormatter final : public Poco::PatternFormatter {
 public:
  using PatternFormatter::PatternFormatter;

  void format(const Poco::Message& message, std::string& text) override {
    const std::string& raw = message.getText();
    // Most lines are short printable ASCII: no copy for them.
    const bool plain =
        raw.size() <= kMaxLogMessageBytes && std::all_of(raw.begin(), raw.end(), [](char c) {
          return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f &&
                 static_cast<unsigned char>(c) < 0x80;
        });
    if (plain) {
      PatternFormatter::format(message, text);
    } else {
      PatternFormatter::format(Poco::Message(message, escape_for_log(raw)), text);
    }
  }
};

bool is_utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xc0) == 0x80; }

// The escape for the character at the start of rest, and how many bytes of rest it stands
// for; empty when the first byte is shown as it is.
std::pair<std::string, size_t> escape_at(std::string_view rest) {
  const auto c = static_cast<unsigned char>(rest[0]);
  if (c < 0x20 || c == 0x7f) {
    switch (c) {
      case '\n':
        return {"\\n", 1};
      case '\r':
        return {"\\r", 1};
      case '\t':
        return {"\\t", 1};
      default: {
        std::array<char, 5> hex{};
        std::snprintf(hex.data(), hex.size(), "\\x%02x", c);
        return {hex.data(), 1};
      }
    }
  }
  if (rest.substr(0, 2) == "\xc2\x85") return {"\\u0085", 2};
  if (rest.substr(0, 3) == "\xe2\x80\xa8") return {"\\u2028", 3};
  if (rest.substr(0, 3) == "\xe2\x80\xa9") return {"\\u2029", 3};
  return {{}, 1};
}

}  // namespace

void configure_logging(const std::string& level) {
  // stderr reaches CloudWatch as the extension's log stream; %q is the one-letter priority.
  Poco::AutoPtr<Poco::PatternFormatter> formatter(
      new OneLineFormatter("telemetry-relay %p [%s] %t"));
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

std::string escape_for_log(std::string_view text, size_t max_bytes) {
  std::string line;
  line.reserve(std::min(text.size(), max_bytes));
  size_t at = 0;
  // Where the last whole character ended, in text and in line: a cut goes back there.
  size_t boundary_at = 0;
  size_t boundary_size = 0;
  while (at < text.size()) {
    if (!is_utf8_continuation(text[at])) {
      boundary_at = at;
      boundary_size = line.size();
    }
    const auto [escape, length] = escape_at(text.substr(at));
    const size_t grows = escape.empty() ? 1 : escape.size();
    if (line.size() + grows > max_bytes) break;
    if (escape.empty()) {
      line.push_back(text[at]);
    } else {
      line += escape;
    }
    at += length;
  }
  if (at == text.size()) return line;
  // Do not end inside a UTF-8 sequence (at most 3 bytes back; invalid runs are cut anywhere).
  if (is_utf8_continuation(text[at]) && at - boundary_at <= 3) line.resize(boundary_size);
  return line + "...(" + std::to_string(text.size()) + " bytes)";
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
