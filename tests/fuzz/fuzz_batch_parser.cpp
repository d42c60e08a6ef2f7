// libFuzzer target: a Telemetry API POST body as the listener hands it to parse_batch, held to
// an independent validator (nlohmann::json, test-only): every event kept, and every delivery
// built from them, is valid JSON; a body the parser finds wholly valid is; and a valid array
// loses no element. scripts/fuzz runs it with inputs up to the listener's 1 MiB body cap.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "batch_parser.h"

namespace {

// Reads every byte a view points at, so ASan sees a view that escapes the body.
size_t touch(std::string_view view) {
  size_t sum = 0;
  for (const char c : view) sum += static_cast<unsigned char>(c);
  return sum;
}

// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? (std::regex recurses per character).
bool grammatical_number(std::string_view t) {
  auto digits = [&](size_t from) {
    while (from < t.size() && t[from] >= '0' && t[from] <= '9') ++from;
    return from;
  };
  size_t i = t.starts_with('-') ? 1 : 0;
  if (i >= t.size() || t[i] < '0' || t[i] > '9') return false;
  i = t[i] == '0' ? i + 1 : digits(i);
  if (i < t.size() && t[i] == '.') {
    const size_t end = digits(i + 1);
    if (end == i + 1) return false;
    i = end;
  }
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    const size_t end = digits(i);
    if (end == i) return false;
    i = end;
  }
  return i == t.size();
}

// nlohmann refuses numbers beyond double (1e999), which JSON's grammar allows and the parser
// forwards as written: for the oracle those become 0; everything else is left as it is.
std::string tame_huge_numbers(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\' && i + 1 < text.size()) {
        out.append(text.substr(i, 2));
        i += 2;
        continue;
      }
      in_string = c != '"';
      out += c;
      ++i;
      continue;
    }
    if (c == '"') in_string = true;
    if (c != '-' && (c < '0' || c > '9')) {
      out += c;
      ++i;
      continue;
    }
    size_t end = i;
    while (end < text.size() &&
           std::string_view("0123456789+-.eE").find(text[end]) != std::string_view::npos) {
      ++end;
    }
    const std::string token(text.substr(i, end - i));
    const bool huge = grammatical_number(token) && std::isinf(std::strtod(token.c_str(), nullptr));
    out += huge ? "0" : token;
    i = end;
  }
  return out;
}

// nlohmann takes a NUL byte for the end of the input; a raw NUL is never valid JSON.
bool has_nul(std::string_view text) { return text.find('\0') != std::string_view::npos; }

bool valid_json(std::string_view text) {
  return !has_nul(text) && nlohmann::json::accept(tame_huge_numbers(text));
}

// The oracle's view of the body: the size of the array when the whole body is a valid JSON array.
std::optional<size_t> valid_array_size(std::string_view body) {
  // nlohmann skips a UTF-8 byte order mark; a Telemetry API body has none, the parser refuses it.
  if (body.substr(0, 3) == "\xEF\xBB\xBF" || has_nul(body)) return std::nullopt;
  nlohmann::json parsed =
      nlohmann::json::parse(tame_huge_numbers(body), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_array()) return std::nullopt;
  return parsed.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  relay::ParseResult result = relay::parse_batch(std::string(input));
  const std::optional<size_t> array_size = valid_array_size(input);
  if (!result.batch) {
    if (result.error.message.empty()) __builtin_trap();  // a failure must say why
    if (array_size) __builtin_trap();                    // a valid array is never refused whole
    return 0;
  }
  // Nothing dropped means the whole body was valid; a valid array loses no element uncounted.
  if (result.invalid_events == 0 && !valid_json(input)) __builtin_trap();
  if (array_size && result.batch->events.size() + result.invalid_events != *array_size) {
    __builtin_trap();
  }
  if (result.invalid_events > 0 && result.error.message.empty()) __builtin_trap();
  const relay::TelemetryPost& batch = *result.batch;
  if (!batch.body) __builtin_trap();
  const std::string& body = *batch.body;
  volatile size_t sink = 0;
  for (const relay::TelemetryEvent& event : batch.events) {
    // Every view lies inside the body the batch owns (sinks receive these bytes as they are).
    for (const std::string_view view : {event.json, event.type, event.time, event.record}) {
      if (view.empty()) continue;
      if (view.data() < body.data() || view.data() + view.size() > body.data() + body.size()) {
        __builtin_trap();
      }
      sink = sink + touch(view);
    }
    if (event.json.empty() || event.json.front() != '{' || event.json.back() != '}')
      __builtin_trap();
    if (!valid_json(event.json)) __builtin_trap();
  }
  // The platform fields the host reads: at most one per event, views inside the body too.
  if (batch.platform.size() > batch.events.size()) __builtin_trap();
  for (const relay::PlatformFields& fields : batch.platform) {
    const std::string_view id = fields.request_id;
    if (!id.empty() &&
        (id.data() < body.data() || id.data() + id.size() > body.data() + body.size())) {
      __builtin_trap();
    }
    sink = sink + touch(id) + fields.dropped_records;
  }
  // A delivery is the events joined into one array (what the http sink POSTs): it must parse
  // back into the very same events, or a collector would get something else than Lambda sent.
  std::string joined = "[";
  for (const relay::TelemetryEvent& event : batch.events) {
    if (joined.size() > 1) joined += ',';
    joined += event.json;
  }
  joined += ']';
  if (!valid_json(joined)) __builtin_trap();
  const relay::ParseResult again = relay::parse_batch(joined);
  if (!again.batch || again.invalid_events != 0 ||
      again.batch->events.size() != batch.events.size()) {
    __builtin_trap();
  }
  for (size_t i = 0; i < batch.events.size(); ++i) {
    const relay::TelemetryEvent& a = batch.events[i];
    const relay::TelemetryEvent& b = again.batch->events[i];
    if (a.json != b.json || a.type != b.type || a.time != b.time || a.record != b.record) {
      __builtin_trap();
    }
  }
  // The same events give the same platform fields, read from the joined copy.
  if (again.batch->platform.size() != batch.platform.size()) __builtin_trap();
  for (size_t i = 0; i < batch.platform.size(); ++i) {
    const relay::PlatformFields& a = batch.platform[i];
    const relay::PlatformFields& b = again.batch->platform[i];
    if (a.type != b.type || a.request_id != b.request_id ||
        a.dropped_records != b.dropped_records) {
      __builtin_trap();
    }
  }
  return 0;
}
