#include "lambda_log_line.h"

#include <simdjson.h>

#include <array>
#include <cstring>

#include "timestamps.h"

namespace relay::otlp {
namespace {

constexpr std::array<std::string_view, 24> kSeverityNames = {
    "TRACE", "TRACE2", "TRACE3", "TRACE4", "DEBUG", "DEBUG2", "DEBUG3", "DEBUG4",
    "INFO",  "INFO2",  "INFO3",  "INFO4",  "WARN",  "WARN2",  "WARN3",  "WARN4",
    "ERROR", "ERROR2", "ERROR3", "ERROR4", "FATAL", "FATAL2", "FATAL3", "FATAL4"};

Severity severity(int32_t number) { return {number, kSeverityNames[number - 1]}; }

// Upper case letters and digits, at most 16: a level field.
bool is_level_token(std::string_view text) {
  if (text.empty() || text.size() > 16) return false;
  for (char c : text) {
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

}  // namespace

Severity severity_from_level(std::string_view level) {
  std::array<char, 16> upper{};
  if (level.empty() || level.size() > upper.size()) return {};
  for (size_t i = 0; i < level.size(); ++i) {
    char c = level[i];
    upper[i] = c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
  }
  std::string_view name(upper.data(), level.size());
  if (name == "WARNING") return severity(13);
  if (name == "CRITICAL") return severity(21);
  if (name == "ALL") return severity(1);
  for (size_t i = 0; i < kSeverityNames.size(); ++i) {
    if (kSeverityNames[i] == name) return severity(static_cast<int32_t>(i + 1));
  }
  return {};
}

std::optional<LambdaTextLine> parse_lambda_text_line(std::string_view line) {
  // Only the first three tabs separate fields: the message may hold more.
  std::array<std::string_view, 3> fields;
  std::string_view rest = line;
  for (auto& field : fields) {
    size_t tab = rest.find('\t');
    if (tab == std::string_view::npos) return std::nullopt;
    field = rest.substr(0, tab);
    rest.remove_prefix(tab + 1);
  }
  LambdaTextLine parsed;
  std::string_view time;
  if (fields[0].size() > 2 && fields[0].front() == '[' && fields[0].back() == ']') {
    parsed.level = fields[0].substr(1, fields[0].size() - 2);  // Python
    time = fields[1];
    parsed.request_id = fields[2];
  } else {
    time = fields[0];  // Node
    parsed.request_id = fields[1];
    parsed.level = fields[2];
  }
  auto nanos = parse_rfc3339_nanos(time);
  if (!nanos || !is_level_token(parsed.level) || parsed.request_id.empty()) return std::nullopt;
  parsed.time_unix_nano = *nanos;
  if (parsed.request_id == "undefined") parsed.request_id = {};
  parsed.message = rest;
  return parsed;
}

bool unescape_simple_json_string(std::string_view token, std::string& out) {
  if (token.size() < 2 || token.front() != '"' || token.back() != '"') return false;
  std::string_view content = token.substr(1, token.size() - 2);
  out.clear();
  // memchr and append run over the plain stretches; only escapes are looked at byte by byte.
  while (!content.empty()) {
    const void* found = std::memchr(content.data(), '\\', content.size());
    size_t plain = found == nullptr
                       ? content.size()
                       : static_cast<size_t>(static_cast<const char*>(found) - content.data());
    out.append(content.data(), plain);
    if (plain == content.size()) break;
    if (plain + 1 == content.size()) return false;  // the closing quote was escaped
    switch (content[plain + 1]) {
      case '"':
        out += '"';
        break;
      case '\\':
        out += '\\';
        break;
      case '/':
        out += '/';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      default:
        return false;  // \u and invalid escapes
    }
    content.remove_prefix(plain + 2);
  }
  return true;
}

bool repair_utf8(std::string_view text, std::string& out) {
  // Most lines are ASCII: eight bytes at a time, before simdjson's validator.
  size_t ascii = 0;
  for (; ascii + 8 <= text.size(); ascii += 8) {
    uint64_t word;
    std::memcpy(&word, text.data() + ascii, 8);
    if ((word & 0x8080808080808080u) != 0) break;
  }
  while (ascii < text.size() && static_cast<unsigned char>(text[ascii]) < 0x80) ++ascii;
  if (ascii == text.size()) return false;
  if (simdjson::validate_utf8(text.data() + ascii, text.size() - ascii)) return false;
  constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  out.clear();
  out.reserve(text.size() + 16);
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = byte(i);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    // The sequence length and the allowed range of its second byte (Unicode Table 3-7).
    size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      if (c == 0xE0) low = 0xA0;
      if (c == 0xED) high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      if (c == 0xF0) low = 0x90;
      if (c == 0xF4) high = 0x8F;
    }
    size_t valid = length == 0 ? 0 : 1;  // bytes of a valid prefix
    while (valid > 0 && valid < length && i + valid < text.size()) {
      unsigned char next = byte(i + valid);
      bool ok = valid == 1 ? next >= low && next <= high : next >= 0x80 && next <= 0xBF;
      if (!ok) break;
      ++valid;
    }
    if (length != 0 && valid == length) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      // A maximal invalid subpart: one replacement for the lead and its valid continuations.
      out.append(kReplacement);
      i += valid == 0 ? 1 : valid;
    }
  }
  return true;
}

}  // namespace relay::otlp
