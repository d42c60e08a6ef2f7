#include "otel_env.h"

#include <Poco/Exception.h>
#include <Poco/URI.h>

#include <algorithm>
#include <stdexcept>

namespace relay::otlp {
namespace {

std::string_view trim(std::string_view text) {
  const auto blank = [](char c) { return c == ' ' || c == '\t'; };
  while (!text.empty() && blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && blank(text.back())) text.remove_suffix(1);
  return text;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> parse_otel_list(std::string_view text,
                                                                 std::string_view what) {
  const auto invalid = [&](const std::string& why) {
    return std::invalid_argument(std::string(what) + ": " + why);
  };
  if (text.size() > kMaxOtelListBytes) {
    throw invalid("longer than " + std::to_string(kMaxOtelListBytes) + " bytes");
  }
  std::vector<std::pair<std::string, std::string>> items;
  size_t position = 0;
  for (size_t start = 0; start <= text.size();) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string_view item = trim(text.substr(start, comma - start));
    start = comma + 1;
    ++position;
    if (item.empty()) continue;
    const std::string where = "item " + std::to_string(position);
    if (items.size() == kMaxOtelListItems) {
      throw invalid("more than " + std::to_string(kMaxOtelListItems) + " items");
    }
    const size_t equals = item.find('=');
    if (equals == std::string_view::npos) throw invalid(where + " has no '=' (not shown)");
    const std::string_view key = trim(item.substr(0, equals));
    if (key.empty()) throw invalid(where + " has an empty key (value not shown)");
    std::pair<std::string, std::string> decoded;
    try {
      Poco::URI::decode(std::string(key), decoded.first);
      Poco::URI::decode(std::string(trim(item.substr(equals + 1))), decoded.second);
    } catch (const Poco::Exception&) {  // the message would quote the text
      throw invalid(where + " has a malformed percent-escape (not shown)");
    }
    const auto control = [](unsigned char c) { return c < 0x20 || c == 0x7f; };
    if (std::any_of(decoded.first.begin(), decoded.first.end(), control) ||
        std::any_of(decoded.second.begin(), decoded.second.end(), control)) {
      throw invalid(where + " has a control character once decoded (not shown)");
    }
    items.push_back(std::move(decoded));
  }
  return items;
}

}  // namespace relay::otlp
