#include "xray_trace_header.h"

#include <cstdint>

namespace relay::otlp {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Writes hex (an even number of digits) as bytes into out; false on a non-hex digit.
bool decode_hex(std::string_view hex, uint8_t* out) {
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    int high = hex_value(hex[i]);
    int low = hex_value(hex[i + 1]);
    if (high < 0 || low < 0) return false;
    *out++ = static_cast<uint8_t>(high << 4 | low);
  }
  return true;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  return text;
}

}  // namespace

std::optional<SpanId> parse_span_id(std::string_view hex) {
  SpanId id{};
  if (hex.size() != 16 || !decode_hex(hex, id.data()) || !is_set(id)) return std::nullopt;
  return id;
}

std::optional<XRayTraceHeader> parse_xray_trace_header(std::string_view value) {
  XRayTraceHeader header;
  bool has_root = false;
  while (!value.empty()) {
    size_t end = value.find(';');
    std::string_view part = trim(value.substr(0, end));
    value = end == std::string_view::npos ? std::string_view() : value.substr(end + 1);
    size_t eq = part.find('=');
    if (eq == std::string_view::npos) {
      if (part.empty()) continue;
      return std::nullopt;
    }
    std::string_view key = part.substr(0, eq);
    std::string_view val = part.substr(eq + 1);
    if (key == "Root") {
      // 1-<8 hex>-<24 hex>
      if (val.size() != 35 || val.substr(0, 2) != "1-" || val[10] != '-' ||
          !decode_hex(val.substr(2, 8), header.trace_id.data()) ||
          !decode_hex(val.substr(11, 24), header.trace_id.data() + 4) || !is_set(header.trace_id)) {
        return std::nullopt;
      }
      has_root = true;
    } else if (key == "Parent") {
      auto parent = parse_span_id(val);
      if (!parent) return std::nullopt;
      header.parent_id = *parent;
    } else if (key == "Sampled") {
      if (val == "0") {
        header.sampled = false;
      } else if (val != "1" && val != "?") {
        return std::nullopt;
      }
    }
    // Lineage, Self and vendor keys carry nothing for the mapping.
  }
  if (!has_root) return std::nullopt;
  return header;
}

}  // namespace relay::otlp
