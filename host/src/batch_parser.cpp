#include "batch_parser.h"

#include <simdjson.h>

#include <cstdint>
#include <memory>
#include <optional>
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

class Parser {
 public:
  explicit Parser(const std::string& body) : body_(body) {}

  std::string error;

  bool parse(std::vector<TelemetryEvent>& events, std::vector<PlatformFields>& platform) {
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
      if (!parse_event(value, index, event, platform)) return false;
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
    read_late_records(events, platform);
    return true;
  }

 private:
  // The PlatformFields of an event are taken from a compact record at once (compact_request_id),
  // otherwise read by read_late_records() once the whole body is parsed.
  bool parse_event(ondemand::value& value, size_t index, TelemetryEvent& event,
                   std::vector<PlatformFields>& platform) {
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
    // Function and extension logs leave at the type's first byte.
    if (event.type.size() > 9 && event.type[0] == 'p') note_platform(event, index, platform);
    return true;
  }

  // Kept out of parse_event(), whose loop is the hot path for every event.
  [[gnu::noinline]] void note_platform(const TelemetryEvent& event, size_t index,
                                       std::vector<PlatformFields>& platform) {
    const std::optional<PlatformType> kind = platform_type(event.type);
    if (!kind) return;
    PlatformFields fields;
    fields.type = *kind;
    if (!compact_request_id(event.record, fields)) late_.push_back(Late{platform.size(), index});
    platform.push_back(fields);
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
  void read_late_records(const std::vector<TelemetryEvent>& events,
                         std::vector<PlatformFields>& platform) {
    for (const Late& late : late_) {
      const std::string_view record = events[late.event].record;
      if (record.empty() || record.front() != '{') continue;
      const size_t capacity = body_.capacity() - offset(record.data());
      simdjson::padded_string_view input(record.data(), record.size(), capacity);
      ondemand::document doc;
      ondemand::object object;
      PlatformFields& fields = platform[late.fields];
      if (thread_parser().iterate(input).get(doc) || doc.get_object().get(object) ||
          extract_platform_fields(object, fields)) {
        fields = PlatformFields{fields.type, {}, 0};
      }
    }
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
    if (err == simdjson::INCOMPLETE_ARRAY_OR_OBJECT || err == simdjson::OUT_OF_BOUNDS) {
      return fail_document(simdjson::INCOMPLETE_ARRAY_OR_OBJECT);
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

  struct Late {
    size_t fields;  // index into the batch's platform
    size_t event;   // index into its events
  };

  const std::string& body_;
  std::vector<Late> late_;
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
  if (!parser.parse(batch.events, batch.platform)) return failure(std::move(parser.error));
  batch.body = std::move(shared);
  return ParseResult{std::move(batch), {}};
}

std::optional<std::string_view> record_string_field(const TelemetryBatch& batch,
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
