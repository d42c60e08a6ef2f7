#include "batch_parser.h"

#include <simdjson.h>

#include <bit>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace relay {
namespace {

namespace ondemand = simdjson::ondemand;

// Lambda events are mostly 150-600 bytes; a low guess only costs one vector regrowth.
constexpr size_t kReserveBytesPerEvent = 192;

bool is_json_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// simdjson's raw tokens run up to the next structural character, so they carry whitespace.
std::string_view trim_right(std::string_view text) {
  while (!text.empty() && is_json_space(text.back())) text.remove_suffix(1);
  return text;
}

// The JSON number grammar, without range limits: a record like 1e999 or a 30-digit integer is
// valid JSON and is forwarded as written.
bool is_json_number(std::string_view t) {
  size_t i = 0;
  auto digits = [&] {
    size_t from = i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
    return i > from;
  };
  if (i < t.size() && t[i] == '-') ++i;
  if (i < t.size() && t[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < t.size() && t[i] == '.' && (++i, !digits())) return false;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == t.size();
}

// The PlatformType of an event type, if the host reads fields of it. Function and extension logs
// leave at the first character.
std::optional<PlatformType> platform_type(std::string_view type) {
  // By length first: each case is then one comparison with a constant of known size.
  switch (type.size()) {
    case 14:
      if (type == "platform.start") return PlatformType::kStart;
      break;
    case 15:
      if (type == "platform.report") return PlatformType::kReport;
      break;
    case 20:
      if (type == "platform.runtimeDone") return PlatformType::kRuntimeDone;
      if (type == "platform.logsDropped") return PlatformType::kLogsDropped;
      break;
    default:
      break;
  }
  return std::nullopt;
}

// The one field of a platform record the host reads.
std::string_view wanted_field(PlatformType type) {
  return type == PlatformType::kLogsDropped ? "droppedRecords" : "requestId";
}

// Stores that field's value. Another JSON type than expected leaves the fields as they are (a
// record is forwarded, never refused, for what the host reads of it).
simdjson::error_code store_platform_value(ondemand::value& value, PlatformFields& fields) {
  ondemand::json_type type;
  if (auto err = value.type().get(type)) return err;
  if (fields.type != PlatformType::kLogsDropped) {
    if (type == ondemand::json_type::string) {
      const std::string_view token = trim_right(value.raw_json_token());
      if (token.size() >= 2) fields.request_id = token.substr(1, token.size() - 2);
    }
  } else if (type == ondemand::json_type::number) {
    uint64_t records = 0;
    double approximate = 0;
    if (value.get_uint64().get(records) == simdjson::SUCCESS) {
      fields.dropped_records = records;
    } else if (value.get_double().get(approximate) == simdjson::SUCCESS && approximate > 0) {
      // 1.5e3, or beyond uint64: as near as a count can be.
      fields.dropped_records = approximate >= 1.8e19 ? UINT64_MAX : uint64_t(approximate);
    }
  }
  return simdjson::SUCCESS;
}

// Reads the PlatformFields of a record object: its top-level field only, wherever it is.
simdjson::error_code extract_platform_fields(ondemand::object& object, PlatformFields& fields) {
  ondemand::value value;
  const simdjson::error_code err = object.find_field(wanted_field(fields.type)).get(value);
  if (err == simdjson::NO_SUCH_FIELD) return simdjson::SUCCESS;
  if (err) return err;
  return store_platform_value(value, fields);
}

// On-Demand buffers are sized to the largest body seen, so one parser per listener thread
// keeps steady-state parsing allocation free.
ondemand::parser& thread_parser() {
  thread_local ondemand::parser parser;
  return parser;
}

// The fast path's validation: simdjson's DOM parser checks the whole grammar in one SIMD pass
// (On-Demand does not validate what it skips). It is stricter than JSON only on limits (numbers
// beyond double or uint64, nesting beyond 1024), so a body it refuses may still be valid: those
// take the slow path, which decides exactly.
bool dom_valid(const std::string& padded_body) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  return parser.parse(padded_body.data(), padded_body.size(), false).get(root) == simdjson::SUCCESS;
}

// The first index from `from` on where text holds '"' or '\\' (with controls: or a byte below
// 0x20), else text.size(). Eight bytes at a time: strings are most of a body, and a body with
// a number beyond double's range or an invalid event is checked by the scans below.
size_t find_string_special(std::string_view text, size_t from, bool controls) {
  static_assert(std::endian::native == std::endian::little, "the byte order of x86_64, aarch64");
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHighs = 0x8080808080808080ull;
  size_t i = from;
  for (; i + 8 <= text.size(); i += 8) {
    uint64_t word = 0;
    std::memcpy(&word, text.data() + i, 8);
    // A byte equal to 0 (or below n) sets its high bit; only bytes above the first may be
    // false hits, so the lowest one is exact.
    const uint64_t quote = word ^ (kOnes * '"');
    const uint64_t backslash = word ^ (kOnes * '\\');
    uint64_t hits = ((quote - kOnes) & ~quote) | ((backslash - kOnes) & ~backslash);
    if (controls) hits |= (word - kOnes * 0x20) & ~word;
    hits &= kHighs;
    if (hits != 0) return i + static_cast<size_t>(std::countr_zero(hits) / 8);
  }
  for (; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\' || (controls && c < 0x20)) return i;
  }
  return text.size();
}

size_t skip_space(std::string_view text, size_t i) {
  while (i < text.size() && is_json_space(text[i])) ++i;
  return i;
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// The code unit of the \uXXXX escape at text[i] ('\\'), or -1 when it is not one.
int32_t unicode_escape(std::string_view text, size_t i) {
  if (i + 6 > text.size() || text[i] != '\\' || text[i + 1] != 'u') return -1;
  int32_t unit = 0;
  for (size_t k = i + 2; k < i + 6; ++k) {
    if (!is_hex(text[k])) return -1;
    const char c = text[k];
    unit = unit * 16 + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
  }
  return unit;
}

// Exact RFC 8259 validation of one JSON text, iterative (nesting costs heap, not stack), with no
// limit on number range. Lone UTF-16 surrogate escapes are refused, as simdjson and most
// receivers do. The slow path's judge; the fuzz target holds it to an independent validator.
class JsonValidator {
 public:
  // nullptr when text is valid, else the reason, with `at` the offset in text.
  const char* check(std::string_view text, size_t& at) {
    at = 0;
    if (!simdjson::validate_utf8(text.data(), text.size())) return "invalid UTF-8";
    text_ = text;
    stack_.clear();
    size_t i = 0;
    const char* reason = run(i);
    at = i;
    return reason;
  }

 private:
  enum class Want { kValue, kValueOrClose, kKey, kKeyOrClose, kColon, kCommaOrClose };

  const char* run(size_t& i) {
    Want want = Want::kValue;
    for (;;) {
      i = skip_space(text_, i);
      if (want == Want::kCommaOrClose && stack_.empty()) {
        return i == text_.size() ? nullptr : "content after the value";
      }
      if (i == text_.size()) return "unexpected end";
      const char c = text_[i];
      // An empty array or object closes where its first value or key would start.
      if ((want == Want::kValueOrClose && c == ']') || (want == Want::kKeyOrClose && c == '}')) {
        stack_.pop_back();
        ++i;
        want = Want::kCommaOrClose;
        continue;
      }
      switch (want) {
        case Want::kValueOrClose:
        case Want::kValue:
          if (c == '{' || c == '[') {
            stack_.push_back(c);
            ++i;
            want = c == '{' ? Want::kKeyOrClose : Want::kValueOrClose;
            break;
          }
          if (const char* reason = scalar(i)) return reason;
          want = Want::kCommaOrClose;
          break;
        case Want::kKeyOrClose:
        case Want::kKey:
          if (c != '"') return "expected a string key";
          if (const char* reason = string(i)) return reason;
          want = Want::kColon;
          break;
        case Want::kColon:
          if (c != ':') return "expected ':'";
          ++i;
          want = Want::kValue;
          break;
        case Want::kCommaOrClose:
          if (c == ',') {
            ++i;
            want = stack_.back() == '{' ? Want::kKey : Want::kValue;
          } else if (c == (stack_.back() == '{' ? '}' : ']')) {
            stack_.pop_back();
            ++i;
          } else {
            return stack_.back() == '{' ? "expected ',' or '}'" : "expected ',' or ']'";
          }
          break;
      }
    }
  }

  // A string, number or literal at text_[i]; on success i is just past it.
  const char* scalar(size_t& i) {
    const char c = text_[i];
    if (c == '"') return string(i);
    if (c == '-' || (c >= '0' && c <= '9')) {
      size_t end = i;
      while (end < text_.size() &&
             (std::isdigit(static_cast<unsigned char>(text_[end])) || text_[end] == '-' ||
              text_[end] == '+' || text_[end] == '.' || text_[end] == 'e' || text_[end] == 'E')) {
        ++end;
      }
      if (!is_json_number(text_.substr(i, end - i))) return "invalid number";
      i = end;
      return nullptr;
    }
    for (const std::string_view literal : {"true", "false", "null"}) {
      if (text_.substr(i, literal.size()) == literal) {
        i += literal.size();
        return nullptr;
      }
    }
    return "unexpected character";
  }

  // The string whose opening quote is text_[i]; on success i is just past its closing quote.
  const char* string(size_t& i) {
    for (++i; (i = find_string_special(text_, i, /*controls=*/true)) < text_.size();) {
      const unsigned char c = static_cast<unsigned char>(text_[i]);
      if (c == '"') {
        ++i;
        return nullptr;
      }
      if (c < 0x20) return "control character in a string";
      if (i + 1 == text_.size()) break;  // c is '\\'
      const char escaped = text_[i + 1];
      if (escaped != 'u') {
        if (std::string_view(R"("\/bfnrt)").find(escaped) == std::string_view::npos) {
          return "invalid escape in a string";
        }
        i += 2;
        continue;
      }
      const int32_t unit = unicode_escape(text_, i);
      if (unit < 0) return "invalid \\u escape in a string";
      if (unit >= 0xDC00 && unit <= 0xDFFF) return "lone UTF-16 surrogate in a string";
      if (unit >= 0xD800 && unit <= 0xDBFF) {
        const int32_t low = unicode_escape(text_, i + 6);
        if (low < 0xDC00 || low > 0xDFFF) return "lone UTF-16 surrogate in a string";
        i += 6;
      }
      i += 6;
    }
    return "unterminated string";
  }

  std::string_view text_;
  std::string stack_;  // the open '{' and '['
};

// Reads events out of a body. The fast path reads the whole array at once and gives up at the
// first surprise; the slow path then takes the array apart element by element, keeping the valid
// ones and counting the rest.
class Parser {
 public:
  Parser(const std::string& body, TelemetryPost& batch) : body_(body), batch_(batch) {}

  // Valid JSON whose elements are all objects with string "type"/"time", or false (no message:
  // the slow path says what was wrong).
  bool parse_valid_body() {
    if (!body_is_valid()) return false;
    ondemand::document doc;
    ondemand::array array;
    if (thread_parser().iterate(padded(body_)).get(doc) || doc.get_array().get(array)) {
      return false;
    }
    for (auto element : array) {
      ondemand::value value;
      ondemand::object object;
      if (element.get(value) || value.get_object().get(object)) return false;
      const char* start = value.raw_json_token().data();
      TelemetryEvent event;
      if (read_fields(object, event) != nullptr) return false;
      // object::raw_json() would consume the object before its fields are read, costing a
      // second pass; the fields loop ends with the cursor on the ',' or ']' after it instead.
      const char* end = nullptr;
      if (doc.current_location().get(end)) return false;
      event.json = trim_right(std::string_view(start, size_t(end - start)));
      add(event);
    }
    finish();
    return true;
  }

  // The slow path: a body that is not an array fails; so does one that ends inside it, or has
  // content after it. Elements are delimited by matching brackets, a mismatched closer
  // closing back to its opener, so a broken event costs only itself. Each is then checked
  // exactly and kept, or counted in invalid_events.
  bool parse_elements() {
    batch_.events.clear();
    batch_.platform.clear();
    late_.clear();
    size_t i = skip_space(body_, 0);
    if (i == body_.size()) return fail("empty body (whitespace only)");
    if (body_[i] != '[') {
      return fail(std::string("body is not a JSON array (starts with '") + body_[i] + "')");
    }
    i = skip_space(body_, i + 1);
    if (i < body_.size() && body_[i] == ']') return close_array(i);
    for (size_t index = 0;; ++index) {
      const size_t start = skip_space(body_, i);
      size_t end = start;
      if (const char* truncated = find_element_end(end)) {
        return fail("truncated: body ends inside " + std::string(truncated) + "event " +
                    std::to_string(index) + " at byte " + std::to_string(body_.size()) +
                    " (array not closed)");
      }
      check_element(trim_right(std::string_view(body_).substr(start, end - start)), index,
                    body_[end] == ']');
      if (body_[end] == ']') return close_array(end);
      i = end + 1;
    }
  }

  size_t invalid_events = 0;
  std::string error;  // parse_elements(): why it failed, or what the first invalid element was

 private:
  simdjson::padded_string_view padded(std::string_view part) const {
    return simdjson::padded_string_view(part.data(), part.size(),
                                        body_.capacity() - offset(part.data()));
  }

  // nullptr, or why the event cannot be kept.
  const char* read_fields(ondemand::object& object, TelemetryEvent& event) {
    for (auto result : object) {
      ondemand::field field;
      if (std::move(result).get(field)) return "unreadable field";
      ondemand::raw_json_string key = field.key();
      ondemand::value& value = field.value();
      if (key == "type") {
        if (!string_contents(value, event.type)) return "\"type\" is not a string";
      } else if (key == "time") {
        if (!string_contents(value, event.time)) return "\"time\" is not a string";
      } else if (key == "record") {
        if (!raw_value(value, event.record)) return "unreadable \"record\"";
      }
    }
    return nullptr;
  }

  void add(const TelemetryEvent& event) {
    // Function and extension logs leave at the type's first byte.
    if (event.type.size() > 9 && event.type[0] == 'p') note_platform(event);
    batch_.events.push_back(event);
  }

  void finish() { read_late_records(); }

  // Kept out of add(), the hot path for every event.
  [[gnu::noinline]] void note_platform(const TelemetryEvent& event) {
    const std::optional<PlatformType> kind = platform_type(event.type);
    if (!kind) return;
    PlatformFields fields;
    fields.type = *kind;
    if (!compact_request_id(event.record, fields)) {
      late_.push_back(Late{batch_.platform.size(), batch_.events.size()});
    }
    batch_.platform.push_back(fields);
  }

  // Lambda writes requestId as the first key of these records, compact: {"requestId":"<uuid>",
  // Anchored at the record's first byte, that key is certainly the record's own top-level one, and
  // the value ends at the next quote when no backslash comes before it. Anything else (spacing,
  // another key order, escapes, logsDropped) is left to read_late_records().
  static bool compact_request_id(std::string_view record, PlatformFields& fields) {
    constexpr std::string_view kPrefix = R"({"requestId":")";
    if (fields.type == PlatformType::kLogsDropped || record.substr(0, kPrefix.size()) != kPrefix) {
      return false;
    }
    const std::string_view rest = record.substr(kPrefix.size());
    // Two memchr scans: find_first_of() would test every byte against the set one by one.
    const size_t end = rest.find('"');
    if (end == std::string_view::npos || rest.substr(0, end).find('\\') != std::string_view::npos) {
      return false;
    }
    fields.request_id = rest.substr(0, end);
    return true;
  }

  // The platform records compact_request_id() could not read, read now that the document is done
  // with the parser: each lies inside the padded body, so it is iterated in place, and only its
  // top-level keys count. A record that does not read as an object simply has no fields.
  void read_late_records() {
    for (const Late& late : late_) {
      const std::string_view record = batch_.events[late.event].record;
      if (record.empty() || record.front() != '{') continue;
      ondemand::document doc;
      ondemand::object object;
      PlatformFields& fields = batch_.platform[late.fields];
      if (thread_parser().iterate(padded(record)).get(doc) || doc.get_object().get(object) ||
          extract_platform_fields(object, fields)) {
        fields = PlatformFields{fields.type, {}, 0};
      }
    }
  }

  // The view keeps escapes as received: sinks get the producer's bytes, not a re-encoding.
  static bool string_contents(ondemand::value& value, std::string_view& out) {
    ondemand::json_type type;
    if (value.type().get(type) || type != ondemand::json_type::string) return false;
    const std::string_view token = trim_right(value.raw_json_token());
    out = token.substr(1, token.size() - 2);
    return true;
  }

  // The record's bytes. Validity was checked before (the DOM pass, or JsonValidator).
  static bool raw_value(ondemand::value& value, std::string_view& out) {
    ondemand::json_type type;
    if (value.type().get(type)) return false;
    simdjson::error_code err = simdjson::SUCCESS;
    if (type == ondemand::json_type::object) {
      ondemand::object object;
      if (!(err = value.get_object().get(object))) err = object.raw_json().get(out);
    } else if (type == ondemand::json_type::array) {
      ondemand::array array;
      if (!(err = value.get_array().get(array))) err = array.raw_json().get(out);
    } else {
      out = value.raw_json_token();
    }
    out = trim_right(out);
    return err == simdjson::SUCCESS;
  }

  // From `end` at an element's first byte, moves it to the ',' or ']' after the element. Returns
  // nullptr, or, when the body ends first, where it ended ("a string in ", "").
  const char* find_element_end(size_t& end) const {
    std::string open;  // the brackets open inside the element
    size_t open_objects = 0;
    for (size_t i = end; i < body_.size(); ++i) {
      const char c = body_[i];
      switch (c) {
        case '"':
          for (++i; (i = find_string_special(body_, i, /*controls=*/false)) < body_.size() &&
                    body_[i] != '"';
               i += 2) {
            // body_[i] is '\\': skip what it escapes
          }
          if (i >= body_.size()) return "a string in ";
          break;
        case '{':
        case '[':
          open.push_back(c);
          open_objects += c == '{';
          break;
        case '}':
        case ']':
          // A closer closes back to its opener, if one is open; a ']' without one ends the
          // array, a '}' without one is stray (the element is invalid, the array goes on).
          if (c == ']' ? open.size() > open_objects : open_objects > 0) {
            const char opener = c == '}' ? '{' : '[';
            while (open.back() != opener) open_objects -= pop(open) == '{';
            open_objects -= pop(open) == '{';
          } else if (c == ']') {
            end = i;
            return nullptr;
          }
          break;
        case ',':
          if (open.empty()) {
            end = i;
            return nullptr;
          }
          break;
        default:
          break;
      }
    }
    return "";
  }

  static char pop(std::string& open) {
    const char c = open.back();
    open.pop_back();
    return c;
  }

  void check_element(std::string_view element, size_t index, bool last) {
    const char* reason = nullptr;
    size_t at = 0;
    TelemetryEvent event;
    if (element.empty()) {
      reason = last ? "trailing comma" : "empty element";
    } else if (element.front() != '{') {
      reason = "not a JSON object";
    } else if (!(reason = validator_.check(element, at))) {
      ondemand::document doc;
      ondemand::object object;
      if (thread_parser().iterate(padded(element)).get(doc) || doc.get_object().get(object)) {
        reason = "unreadable object";
      } else {
        reason = read_fields(object, event);
      }
    }
    if (reason == nullptr) {
      event.json = element;
      add(event);
      return;
    }
    if (invalid_events++ == 0) {
      const size_t byte = element.empty() ? 0 : offset(element.data()) + at;
      error = "event " + std::to_string(index) + ": " + reason + " at byte " + std::to_string(byte);
    }
  }

  bool close_array(size_t bracket) {
    const size_t rest = skip_space(body_, bracket + 1);
    if (rest != body_.size()) {
      return fail("trailing content after the array at byte " + std::to_string(rest));
    }
    finish();
    return true;
  }

  bool fail(std::string message) {
    error = std::move(message);
    return false;
  }

  size_t offset(const char* at) const { return size_t(at - body_.data()); }

  struct Late {
    size_t fields;  // index into the batch's platform
    size_t event;   // index into its events
  };

  const std::string& body_;
  TelemetryPost& batch_;
  std::vector<Late> late_;
  JsonValidator validator_;

  // simdjson's DOM pass decides the common case; a body it refuses only for its limits (a
  // number beyond double or uint64, which a log line may carry, or deep nesting) is checked
  // whole by the exact validator, still one pass, before the per-event path is considered.
  bool body_is_valid() {
    if (dom_valid(body_)) return true;
    size_t at = 0;
    return validator_.check(body_, at) == nullptr;
  }
};

ParseResult failure(std::string message) { return ParseResult{std::nullopt, {std::move(message)}}; }

}  // namespace

ParseResult parse_batch(std::string body) {
  if (body.empty()) return failure("empty body");
  // Pad in place and share that same buffer, so the views below point into the final storage.
  body.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  auto shared = std::make_shared<const std::string>(std::move(body));
  if (shared->capacity() - shared->size() < simdjson::SIMDJSON_PADDING) {
    // Only if a move ever stopped carrying the capacity over (it does not in libstdc++).
    std::string copy;
    copy.reserve(shared->size() + simdjson::SIMDJSON_PADDING);
    copy.assign(*shared);
    shared = std::make_shared<const std::string>(std::move(copy));
  }

  TelemetryPost batch;
  batch.events.reserve(shared->size() / kReserveBytesPerEvent + 1);
  Parser parser(*shared, batch);
  if (!parser.parse_valid_body() && !parser.parse_elements()) {
    return failure(std::move(parser.error));
  }
  batch.body = std::move(shared);
  return ParseResult{std::move(batch), {std::move(parser.error)}, parser.invalid_events};
}

std::optional<std::string_view> record_string_field(const TelemetryPost& batch,
                                                    std::string_view record, std::string_view key) {
  if (!batch.body || record.empty() || record.front() != '{') return std::nullopt;
  const std::string& body = *batch.body;
  // Only a view into this body has the padding the parser reads past its end.
  if (record.data() < body.data() || record.data() + record.size() > body.data() + body.size()) {
    return std::nullopt;
  }
  const size_t capacity = body.capacity() - size_t(record.data() - body.data());
  simdjson::padded_string_view input(record.data(), record.size(), capacity);
  ondemand::document doc;
  ondemand::object object;
  if (thread_parser().iterate(input).get(doc) || doc.get_object().get(object)) return std::nullopt;
  for (auto result : object) {
    ondemand::field field;
    if (std::move(result).get(field)) return std::nullopt;
    if (field.key() != key) continue;
    ondemand::json_type type;
    if (field.value().type().get(type) || type != ondemand::json_type::string) return std::nullopt;
    const std::string_view token = trim_right(field.value().raw_json_token());
    return token.size() >= 2 ? token.substr(1, token.size() - 2) : std::string_view{};
  }
  return std::nullopt;
}

}  // namespace relay
