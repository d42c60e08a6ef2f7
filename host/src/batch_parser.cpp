#include "batch_parser.h"

#include <simdjson.h>

#include <memory>
#include <string_view>
#include <utility>

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

// On-Demand buffers are sized to the largest body seen, so one parser per listener thread
// keeps steady-state parsing allocation free.
ondemand::parser& thread_parser() {
  thread_local ondemand::parser parser;
  return parser;
}

class Parser {
 public:
  explicit Parser(const std::string& body) : body_(body) {}

  std::string error;

  bool parse(std::vector<TelemetryEvent>& events) {
    ondemand::document doc;
    simdjson::padded_string_view input(body_.data(), body_.size(), body_.capacity());
    if (auto err = thread_parser().iterate(input).get(doc)) {
      return fail_document(err);
    }
    ondemand::array array;
    if (auto err = doc.get_array().get(array)) {
      return fail_document(err);
    }
    size_t index = 0;
    for (auto element : array) {
      ondemand::value value;
      if (auto err = element.get(value)) return fail_at(err, index, doc);
      const char* start = value.raw_json_token().data();
      TelemetryEvent event;
      if (!parse_event(value, index, event)) return false;
      // object::raw_json() would consume the object before its fields are read, costing a
      // second pass; the fields loop ends with the cursor on the ',' or ']' after it instead.
      const char* end = nullptr;
      if (auto err = doc.current_location().get(end)) return fail_at(err, index, doc);
      event.json = trim_right(std::string_view(start, size_t(end - start)));
      events.push_back(event);
      ++index;
    }
    // The root array's ']' is the last token; anything after it is not part of the batch.
    const char* rest = nullptr;
    if (doc.current_location().get(rest) == simdjson::SUCCESS) {
      error = "trailing content after the array at byte " + std::to_string(offset(rest));
      return false;
    }
    return true;
  }

 private:
  bool parse_event(ondemand::value& value, size_t index, TelemetryEvent& event) {
    ondemand::object object;
    if (auto err = value.get_object().get(object)) {
      if (err == simdjson::INCORRECT_TYPE) {
        const char* at = value.raw_json_token().data();
        error =
            (*at == ']' && index > 0 ? "trailing comma after event " + std::to_string(index - 1)
                                     : "event " + std::to_string(index) + " is not a JSON object") +
            " at byte " + std::to_string(offset(at));
        return false;
      }
      return fail_value(err, index, value);
    }
    for (auto result : object) {
      ondemand::field field;
      if (auto err = std::move(result).get(field)) return fail_value(err, index, value);
      ondemand::raw_json_string key = field.key();
      ondemand::value& field_value = field.value();
      if (key == "type") {
        if (!string_contents(field_value, index, "type", event.type)) return false;
      } else if (key == "time") {
        if (!string_contents(field_value, index, "time", event.time)) return false;
      } else if (key == "record") {
        if (!raw_value(field_value, index, event.record)) return false;
      }
    }
    return true;
  }

  // The view keeps escapes as received: sinks get the producer's bytes, not a re-encoding.
  bool string_contents(ondemand::value& value, size_t index, const char* name,
                       std::string_view& out) {
    ondemand::json_type type;
    if (auto err = value.type().get(type)) return fail_value(err, index, value);
    std::string_view token = trim_right(value.raw_json_token());
    if (type != ondemand::json_type::string) {
      error = "event " + std::to_string(index) + ": \"" + name + "\" is not a string at byte " +
              std::to_string(offset(token.data()));
      return false;
    }
    out = token.substr(1, token.size() - 2);
    return true;
  }

  bool raw_value(ondemand::value& value, size_t index, std::string_view& out) {
    ondemand::json_type type;
    if (auto err = value.type().get(type)) return fail_value(err, index, value);
    const char* start = value.raw_json_token().data();
    simdjson::error_code err = simdjson::SUCCESS;
    switch (type) {
      case ondemand::json_type::object: {
        ondemand::object object;
        if (!(err = value.get_object().get(object))) err = object.raw_json().get(out);
        break;
      }
      case ondemand::json_type::array: {
        ondemand::array array;
        if (!(err = value.get_array().get(array))) err = array.raw_json().get(out);
        break;
      }
      case ondemand::json_type::string:
        out = value.raw_json_token();
        break;
      // Scalars are not otherwise touched, so check them here rather than forward a bad token.
      case ondemand::json_type::number:
        out = trim_right(value.raw_json_token());
        if (!is_json_number(out)) err = simdjson::NUMBER_ERROR;
        break;
      case ondemand::json_type::boolean:
        out = trim_right(value.raw_json_token());
        if (out != "true" && out != "false") err = simdjson::T_ATOM_ERROR;
        break;
      case ondemand::json_type::null:
        out = trim_right(value.raw_json_token());
        if (out != "null") err = simdjson::N_ATOM_ERROR;
        break;
    }
    if (err) {
      error = "event " + std::to_string(index) + ": bad \"record\" (" +
              simdjson::error_message(err) + ") at byte " + std::to_string(offset(start));
      return false;
    }
    out = trim_right(out);
    return true;
  }

  bool fail_value(simdjson::error_code err, size_t index, ondemand::value& value) {
    const char* at = nullptr;
    std::string where;
    if (value.current_location().get(at) == simdjson::SUCCESS) {
      where = " near byte " + std::to_string(offset(at));
    }
    error = "event " + std::to_string(index) + ": " + simdjson::error_message(err) + where;
    return false;
  }

  bool fail_at(simdjson::error_code err, size_t index, ondemand::document& doc) {
    if (err == simdjson::INCOMPLETE_ARRAY_OR_OBJECT || err == simdjson::OUT_OF_BOUNDS) {
      return fail_document(simdjson::INCOMPLETE_ARRAY_OR_OBJECT);
    }
    const char* at = nullptr;
    std::string where;
    if (doc.current_location().get(at) == simdjson::SUCCESS) {
      where = " near byte " + std::to_string(offset(at));
    }
    error = "event " + std::to_string(index) + ": " + simdjson::error_message(err) + where;
    return false;
  }

  bool fail_document(simdjson::error_code err) {
    switch (err) {
      case simdjson::EMPTY:
        error = "empty body (whitespace only)";
        break;
      case simdjson::INCORRECT_TYPE:
        error = std::string("body is not a JSON array (starts with '") + first_char() + "')";
        break;
      case simdjson::INCOMPLETE_ARRAY_OR_OBJECT:
        error = describe_unbalanced();
        break;
      default:
        error = std::string("invalid JSON: ") + simdjson::error_message(err);
    }
    return false;
  }

  char first_char() const {
    for (char c : body_) {
      if (!is_json_space(c)) return c;
    }
    return ' ';
  }

  // Error path only: On-Demand just says "unbalanced", so rescan to tell truncation (the
  // common case: a cut-off POST) from content after the array, and say where.
  std::string describe_unbalanced() const {
    int depth = 0;
    size_t element = 0;
    bool in_string = false;
    bool escaped = false;
    for (size_t i = 0; i < body_.size(); ++i) {
      char c = body_[i];
      if (in_string) {
        if (escaped) {
          escaped = false;
        } else if (c == '\\') {
          escaped = true;
        } else if (c == '"') {
          in_string = false;
        }
        continue;
      }
      switch (c) {
        case '"':
          in_string = true;
          break;
        case '[':
        case '{':
          ++depth;
          break;
        case ']':
        case '}':
          if (--depth < 0)
            return "unbalanced '" + std::string(1, c) + "' at byte " + std::to_string(i);
          if (depth == 0) {
            size_t next = i + 1;
            while (next < body_.size() && is_json_space(body_[next])) ++next;
            return "trailing content after the array at byte " + std::to_string(next);
          }
          break;
        case ',':
          if (depth == 1) ++element;
          break;
        default:
          break;
      }
    }
    return "truncated: body ends inside event " + std::to_string(element) + " at byte " +
           std::to_string(body_.size()) + " (array not closed)";
  }

  size_t offset(const char* at) const { return size_t(at - body_.data()); }

  const std::string& body_;
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

  TelemetryBatch batch;
  batch.events.reserve(shared->size() / kReserveBytesPerEvent + 1);
  Parser parser(*shared);
  if (!parser.parse(batch.events)) return failure(std::move(parser.error));
  batch.body = std::move(shared);
  return ParseResult{std::move(batch), {}};
}

}  // namespace relay
