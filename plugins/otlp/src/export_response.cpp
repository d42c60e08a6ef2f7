#include "export_response.h"

#include <simdjson.h>

#include <charconv>
#include <cmath>

namespace relay::otlp {
namespace {

constexpr size_t kBodyExcerpt = 100;
constexpr int kMaxGroupDepth = 16;

const char* message_name(Signal signal) {
  switch (signal) {
    case Signal::kLogs:
      return "ExportLogsServiceResponse";
    case Signal::kTraces:
      return "ExportTraceServiceResponse";
    case Signal::kMetrics:
      return "ExportMetricsServiceResponse";
  }
  return "Export*ServiceResponse";
}

// "<what> (body of N bytes: "<first 100 bytes, non-printables as '.'>")": one printable line.
std::string describe(std::string_view what, std::string_view body) {
  std::string text(what);
  text += " (body of ";
  text += std::to_string(body.size());
  text += " bytes: \"";
  for (char c : body.substr(0, kBodyExcerpt)) text += (c >= 0x20 && c < 0x7f) ? c : '.';
  if (body.size() > kBodyExcerpt) text += "...";
  text += "\")";
  return text;
}

// The server's message as one log line: bounded, cut at a character boundary, control
// characters as spaces, and every non-ASCII byte as '?' when the text is not valid UTF-8.
std::string clean_message(std::string_view text) {
  const bool utf8 = simdjson::validate_utf8(text.data(), text.size());
  std::string out;
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    const size_t n = (c < 0x80 || !utf8) ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    if (out.size() + n > kMaxPartialSuccessMessage) break;
    if (c < 0x20 || c == 0x7f) {
      out += ' ';
    } else if (c >= 0x80 && !utf8) {
      out += '?';
    } else {
      out.append(text.data() + i, n);
    }
    i += n;
  }
  return out;
}

// A bounds-checked protobuf wire reader over one message.
class WireReader {
 public:
  WireReader(const char* body_begin, std::string_view data)
      : begin_(body_begin), p_(data.data()), end_(data.data() + data.size()) {}

  bool done() const { return p_ == end_; }
  size_t offset() const { return static_cast<size_t>(p_ - begin_); }  // in the whole body

  bool varint(uint64_t& value) {  // false: truncated or longer than 10 bytes
    value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      const auto byte = static_cast<uint8_t>(*p_++);
      value |= uint64_t{byte & 0x7fu} << shift;
      if (byte < 0x80) return true;
    }
    return false;
  }
  bool skip(uint64_t n) {
    if (n > static_cast<size_t>(end_ - p_)) return false;
    p_ += n;
    return true;
  }
  bool length_delimited(std::string_view& value) {
    uint64_t n = 0;
    if (!varint(n) || !skip(n)) return false;
    value = std::string_view(p_ - n, n);
    return true;
  }

 private:
  const char* begin_;
  const char* p_;
  const char* end_;
};

class ProtobufParser {
 public:
  ProtobufParser(Signal signal, std::string_view body) : signal_(signal), body_(body) {}

  std::optional<PartialSuccess> parse(std::string& error) {
    PartialSuccess result;
    WireReader response(body_.data(), body_);
    while (!response.done()) {
      uint32_t field = 0;
      uint32_t type = 0;
      if (!tag(response, field, type)) return fail(error);
      if (field != 1) {  // partial_success = 1; anything else is unknown: skipped
        if (!skip_value(response, field, type, 0)) return fail(error);
        continue;
      }
      std::string_view bytes;
      if (!expect(response, "partial_success", type, 2) || !value(response, bytes)) {
        return fail(error);
      }
      // ExportXPartialSuccess{rejected_x = 1 (int64), error_message = 2 (string)}. A repeated
      // message merges, as protobuf's parser does.
      WireReader partial(body_.data(), bytes);
      while (!partial.done()) {
        if (!tag(partial, field, type)) return fail(error);
        if (field == 1) {
          uint64_t rejected = 0;
          if (!expect(partial, "rejected count", type, 0) || !varint(partial, rejected)) {
            return fail(error);
          }
          result.rejected = static_cast<int64_t>(rejected);
          if (result.rejected < 0) {
            problem_ = "negative rejected count " + std::to_string(result.rejected);
            return fail(error);
          }
        } else if (field == 2) {
          std::string_view message;
          if (!expect(partial, "error_message", type, 2) || !value(partial, message)) {
            return fail(error);
          }
          result.error_message = clean_message(message);
        } else if (!skip_value(partial, field, type, 0)) {
          return fail(error);
        }
      }
    }
    return result;
  }

 private:
  std::nullopt_t fail(std::string& error) const {
    error = describe(std::string("malformed protobuf ") + message_name(signal_) + ": " + problem_,
                     body_);
    return std::nullopt;
  }
  bool problem(WireReader& r, std::string_view what) {
    problem_ = std::string(what) + " at byte " + std::to_string(r.offset());
    return false;
  }
  bool tag(WireReader& r, uint32_t& field, uint32_t& type) {
    uint64_t key = 0;
    if (!r.varint(key)) return problem(r, "truncated or over-long field tag");
    if (key >> 3 == 0 || key >> 3 > 0x1fffffff) return problem(r, "invalid field number");
    field = static_cast<uint32_t>(key >> 3);
    type = static_cast<uint32_t>(key & 7);
    return type <= 5 || problem(r, "invalid wire type " + std::to_string(type));
  }
  bool expect(WireReader& r, std::string_view name, uint32_t type, uint32_t expected) {
    if (type == expected) return true;
    return problem(r, std::string(name) + " has wire type " + std::to_string(type) + ", not " +
                          std::to_string(expected));
  }
  bool varint(WireReader& r, uint64_t& v) {
    return r.varint(v) || problem(r, "truncated or over-long varint");
  }
  bool value(WireReader& r, std::string_view& v) {
    return r.length_delimited(v) || problem(r, "truncated length-delimited field");
  }
  // Any unknown field, of every wire type; groups (3 ... 4, deprecated) nest a bounded depth.
  bool skip_value(WireReader& r, uint32_t field, uint32_t type, int depth) {
    uint64_t ignored = 0;
    std::string_view ignored_bytes;
    switch (type) {
      case 0:
        return varint(r, ignored);
      case 1:
        return r.skip(8) || problem(r, "truncated fixed64");
      case 2:
        return value(r, ignored_bytes);
      case 3:
        if (depth == kMaxGroupDepth) return problem(r, "groups nested too deeply");
        for (;;) {
          uint32_t inner_field = 0;
          uint32_t inner_type = 0;
          if (!tag(r, inner_field, inner_type)) return false;
          if (inner_type == 4) {
            return inner_field == field || problem(r, "mismatched end-group");
          }
          if (!skip_value(r, inner_field, inner_type, depth + 1)) return false;
        }
      case 4:
        return problem(r, "end-group of field " + std::to_string(field) + " outside a group");
      default:  // 5; tag() refused 6 and 7
        return r.skip(4) || problem(r, "truncated fixed32");
    }
  }

  Signal signal_;
  std::string_view body_;
  std::string problem_;
};

// A JSON count: an integer, or a decimal string (64-bit integers are strings in OTLP/JSON).
bool json_count(simdjson::dom::element value, int64_t& count) {
  switch (value.type()) {
    case simdjson::dom::element_type::INT64:
      count = value.get_int64().value_unsafe();
      return true;
    case simdjson::dom::element_type::DOUBLE: {  // 5.0 or 1e3 are still integers
      const double d = value.get_double().value_unsafe();
      if (d != std::trunc(d) || std::fabs(d) >= 9.2e18) return false;
      count = static_cast<int64_t>(d);
      return true;
    }
    case simdjson::dom::element_type::STRING: {
      const std::string_view text = value.get_string().value_unsafe();
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), count);
      return ec == std::errc() && end == text.data() + text.size() && !text.empty();
    }
    default:  // UINT64 (beyond int64), bool, array, object
      return false;
  }
}

// The lowerCamelCase name OTLP/JSON uses, or the proto field name other proto3 JSON writers may.
simdjson::error_code find(simdjson::dom::object object, std::string_view camel,
                          std::string_view snake, simdjson::dom::element& value) {
  const auto error = object.at_key(camel).get(value);
  return error == simdjson::NO_SUCH_FIELD ? object.at_key(snake).get(value) : error;
}

std::optional<PartialSuccess> parse_json(Signal signal, std::string_view body, std::string& error) {
  const auto fail = [&](const std::string& what) {
    error = describe(std::string("invalid JSON ") + message_name(signal) + ": " + what, body);
    return std::nullopt;
  };
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (const auto e = parser.parse(body.data(), body.size()).get(root); e) {
    return fail(simdjson::error_message(e));
  }
  simdjson::dom::object response;
  if (root.get_object().get(response)) return fail("not an object");

  PartialSuccess result;
  simdjson::dom::element partial_value;
  if (find(response, "partialSuccess", "partial_success", partial_value) ||
      partial_value.is_null()) {
    return result;  // no partial_success: everything was accepted
  }
  simdjson::dom::object partial;
  if (partial_value.get_object().get(partial)) return fail("partialSuccess is not an object");

  const char* camel = signal == Signal::kLogs     ? "rejectedLogRecords"
                      : signal == Signal::kTraces ? "rejectedSpans"
                                                  : "rejectedDataPoints";
  const char* snake = signal == Signal::kLogs     ? "rejected_log_records"
                      : signal == Signal::kTraces ? "rejected_spans"
                                                  : "rejected_data_points";
  simdjson::dom::element value;
  if (!find(partial, camel, snake, value) && !value.is_null()) {
    if (!json_count(value, result.rejected)) {
      return fail(std::string(camel) + " is not an int64 (number or decimal string)");
    }
    if (result.rejected < 0) return fail(std::string(camel) + " is negative");
  }
  if (!find(partial, "errorMessage", "error_message", value) && !value.is_null()) {
    std::string_view message;
    if (value.get_string().get(message)) return fail("errorMessage is not a string");
    result.error_message = clean_message(message);
  }
  return result;
}

}  // namespace

std::optional<PartialSuccess> parse_export_response(Signal signal, bool json, std::string_view body,
                                                    std::string& error) {
  if (body.size() > kMaxResponseBody) {
    error = std::string(message_name(signal)) + " body of " + std::to_string(body.size()) +
            " bytes is over the " + std::to_string(kMaxResponseBody) + "-byte limit";
    return std::nullopt;
  }
  if (body.find_first_not_of(json ? " \t\r\n" : "") == std::string_view::npos) {
    return PartialSuccess{};  // an empty body: a full success
  }
  return json ? parse_json(signal, body, error) : ProtobufParser(signal, body).parse(error);
}

}  // namespace relay::otlp
