#include "timestamps.h"

#include <chrono>

namespace relay::otlp {
namespace {

// Reads exactly n digits at text[at...]; false if any is not a digit.
bool digits(std::string_view text, size_t at, size_t n, int& value) {
  if (at + n > text.size()) return false;
  value = 0;
  for (size_t i = at; i < at + n; ++i) {
    char c = text[i];
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  return true;
}

}  // namespace

std::optional<uint64_t> parse_rfc3339_nanos(std::string_view text) {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!digits(text, 0, 4, year) || text.size() < 20 || text[4] != '-' ||
      !digits(text, 5, 2, month) || text[7] != '-' || !digits(text, 8, 2, day) ||
      (text[10] != 'T' && text[10] != 't' && text[10] != ' ') || !digits(text, 11, 2, hour) ||
      text[13] != ':' || !digits(text, 14, 2, minute) || text[16] != ':' ||
      !digits(text, 17, 2, second)) {
    return std::nullopt;
  }
  if (hour > 23 || minute > 59 || second > 60) return std::nullopt;
  size_t at = 19;
  uint64_t fraction_ns = 0;
  if (at < text.size() && text[at] == '.') {
    ++at;
    size_t first = at;
    uint64_t scale = 100'000'000;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9') {
      fraction_ns += static_cast<uint64_t>(text[at] - '0') * scale;
      scale /= 10;
      ++at;
    }
    if (at == first) return std::nullopt;
  }
  int64_t offset_s = 0;
  if (at < text.size() && (text[at] == 'Z' || text[at] == 'z')) {
    ++at;
  } else if (at < text.size() && (text[at] == '+' || text[at] == '-')) {
    int oh = 0, om = 0;
    if (!digits(text, at + 1, 2, oh) || at + 3 >= text.size() || text[at + 3] != ':' ||
        !digits(text, at + 4, 2, om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_s = (oh * 3600 + om * 60) * (text[at] == '-' ? -1 : 1);
    at += 6;
  } else {
    return std::nullopt;
  }
  if (at != text.size()) return std::nullopt;

  using namespace std::chrono;
  year_month_day date{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                      std::chrono::day{static_cast<unsigned>(day)}};
  if (!date.ok()) return std::nullopt;
  int64_t seconds = sys_days{date}.time_since_epoch().count() * int64_t{86400} + hour * 3600 +
                    minute * 60 + second - offset_s;
  // uint64 nanoseconds end in 2554.
  if (seconds < 0 || seconds >= int64_t{18'000'000'000}) return std::nullopt;
  return static_cast<uint64_t>(seconds) * 1'000'000'000u + fraction_ns;
}

}  // namespace relay::otlp
