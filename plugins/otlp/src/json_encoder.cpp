#include "json_encoder.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>

namespace relay::otlp {
namespace {

// Writes JSON into a string used as a raw buffer (each write reserves its worst case once, then
// stores bytes: no per-character bookkeeping); knows when a comma is due, so the encoders below
// only say what goes where. finish() cuts the string to what was written.
class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {
    // The old content is dead: use all the capacity the caller's string already has.
    out_.resize(std::max(out_.capacity(), size_t{1024}));
    p_ = out_.data();
    end_ = p_ + out_.size();
  }
  void finish() { out_.resize(static_cast<size_t>(p_ - out_.data())); }

  void begin_object() { open('{'); }
  void end_object() { close('}'); }
  void begin_array() { open('['); }
  void end_array() { close(']'); }
  [[gnu::always_inline]] void key(std::string_view name) {  // names are literals: nothing to escape
    reserve(name.size() + 4);
    separate();
    *p_++ = '"';
    put(name);
    *p_++ = '"';
    *p_++ = ':';
    comma_ = false;
  }

  void string(std::string_view s) {
    reserve(s.size() * 6 + 3);  // every byte escaped as \\u00XX at worst
    separate();
    *p_++ = '"';
    const char* in = s.data();
    const char* const end = in + s.size();
    while (in != end) {
      // Eight bytes at a time while none needs escaping (most text), else one.
      uint64_t block;
      if (end - in >= 8 && (std::memcpy(&block, in, 8), !needs_escape(block))) {
        std::memcpy(p_, in, 8);
        p_ += 8;
        in += 8;
        continue;
      }
      const auto c = static_cast<unsigned char>(*in++);
      if (kEscape[c]) {
        escape(c);
      } else {
        *p_++ = static_cast<char>(c);
      }
    }
    *p_++ = '"';
    comma_ = true;
  }
  void integer(int64_t v) {  // enums and flags: a JSON number
    reserve(24);
    separate();
    put_number(v);
    comma_ = true;
  }
  template <class Int>
  void integer_string(Int v) {  // 64-bit integers: a decimal string
    reserve(24);
    separate();
    *p_++ = '"';
    put_number(v);
    *p_++ = '"';
    comma_ = true;
  }
  void boolean(bool v) {
    reserve(6);
    separate();
    put(v ? "true" : "false");
    comma_ = true;
  }
  void number(double v) {
    reserve(32);
    separate();
    if (std::isnan(v)) {
      put("\"NaN\"");
    } else if (std::isinf(v)) {
      put(v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    } else {
      put_number(v);  // shortest form that reads back as the same double (at most 24 bytes)
    }
    comma_ = true;
  }
  void hex(const uint8_t* bytes, size_t n) {
    reserve(2 * n + 3);
    separate();
    *p_++ = '"';
    for (size_t i = 0; i < n; ++i) {
      *p_++ = kHexDigits[bytes[i] >> 4];
      *p_++ = kHexDigits[bytes[i] & 0xf];
    }
    *p_++ = '"';
    comma_ = true;
  }

 private:
  static constexpr char kHexDigits[] = "0123456789abcdef";
  // Bytes a JSON string cannot hold as they are: quote, backslash and control characters.
  static constexpr auto kEscape = [] {
    std::array<bool, 256> table{};
    for (int c = 0; c < 0x20; ++c) table[c] = true;
    table['"'] = table['\\'] = true;
    return table;
  }();

  // Whether any of eight bytes is a control character, a quote or a backslash (SWAR: a byte's
  // high bit survives in (v - 0x01) & ~v only where v was zero, in (v - n) & ~v where v < n).
  static bool needs_escape(uint64_t v) {
    constexpr uint64_t kOnes = 0x0101010101010101;
    constexpr uint64_t kHighs = 0x8080808080808080;
    const uint64_t quote = v ^ (kOnes * '"');
    const uint64_t backslash = v ^ (kOnes * '\\');
    return (((v - kOnes * 0x20) & ~v) | ((quote - kOnes) & ~quote) |
            ((backslash - kOnes) & ~backslash)) &
           kHighs;
  }

  void reserve(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) grow(n);
  }
  void grow(size_t n) {
    const size_t used = static_cast<size_t>(p_ - out_.data());
    out_.resize(std::max(out_.size() * 2, used + n));
    p_ = out_.data() + used;
    end_ = out_.data() + out_.size();
  }
  void separate() {  // callers reserve one byte for it
    if (comma_) *p_++ = ',';
  }
  void open(char bracket) {
    reserve(2);
    separate();
    *p_++ = bracket;
    comma_ = false;
  }
  void close(char bracket) {
    reserve(1);
    *p_++ = bracket;
    comma_ = true;
  }
  void put(std::string_view s) {
    if (!s.empty()) std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  template <class Number>
  void put_number(Number v) {
    p_ = std::to_chars(p_, end_, v).ptr;
  }
  void escape(unsigned char c) {
    switch (c) {
      case '"':
        put("\\\"");
        break;
      case '\\':
        put("\\\\");
        break;
      case '\b':
        put("\\b");
        break;
      case '\f':
        put("\\f");
        break;
      case '\n':
        put("\\n");
        break;
      case '\r':
        put("\\r");
        break;
      case '\t':
        put("\\t");
        break;
      default:
        put("\\u00");
        *p_++ = kHexDigits[c >> 4];
        *p_++ = kHexDigits[c & 0xf];
    }
  }

  std::string& out_;
  char* p_ = nullptr;
  char* end_ = nullptr;
  bool comma_ = false;
};

// proto3 JSON leaves default values out. Inlined (like key()) so the key names are constants
// and their copies a few moves: ~15% of the JSON encoder's time.
[[gnu::always_inline]] inline void string_field(JsonWriter& w, std::string_view name,
                                                std::string_view value) {
  if (value.empty()) return;
  w.key(name);
  w.string(value);
}
[[gnu::always_inline]] inline void time_field(JsonWriter& w, std::string_view name,
                                              uint64_t nanos) {
  if (nanos == 0) return;
  w.key(name);
  w.integer_string(nanos);
}
[[gnu::always_inline]] inline void integer_field(JsonWriter& w, std::string_view name,
                                                 int64_t value) {
  if (value == 0) return;
  w.key(name);
  w.integer(value);
}
template <size_t N>
void id_field(JsonWriter& w, std::string_view name, const std::array<uint8_t, N>& id) {
  if (!is_set(id)) return;
  w.key(name);
  w.hex(id.data(), N);
}

void key_values(JsonWriter& w, std::string_view name, const Attributes& attributes);

// common.v1.AnyValue: a oneof, so a set member is written even when it is zero or empty.
void any_value(JsonWriter& w, const AnyValue& v) {
  w.begin_object();
  switch (v.kind) {
    case AnyValue::Kind::kEmpty:
      break;
    case AnyValue::Kind::kString:
      w.key("stringValue");
      w.string(v.string_value);
      break;
    case AnyValue::Kind::kBool:
      w.key("boolValue");
      w.boolean(v.bool_value);
      break;
    case AnyValue::Kind::kInt:
      w.key("intValue");
      w.integer_string(v.int_value);
      break;
    case AnyValue::Kind::kDouble:
      w.key("doubleValue");
      w.number(v.double_value);
      break;
    case AnyValue::Kind::kArray:
      w.key("arrayValue");
      w.begin_object();
      if (!v.array_value.empty()) {
        w.key("values");
        w.begin_array();
        for (const AnyValue& element : v.array_value) any_value(w, element);
        w.end_array();
      }
      w.end_object();
      break;
    case AnyValue::Kind::kKvList:
      w.key("kvlistValue");
      w.begin_object();
      key_values(w, "values", v.kvlist_value);
      w.end_object();
      break;
  }
  w.end_object();
}

void key_values(JsonWriter& w, std::string_view name, const Attributes& attributes) {
  if (attributes.empty()) return;
  w.key(name);
  w.begin_array();
  for (const KeyValue& kv : attributes) {
    w.begin_object();
    string_field(w, "key", kv.key);
    w.key("value");
    any_value(w, kv.value);
    w.end_object();
  }
  w.end_array();
}

// {"resourceX":[{"resource":{...},"scopeX":[{"scope":{...},"items":[...]}]}]}, as protobuf's.
template <class Items>
void export_request(std::string& out, std::string_view resource_key, std::string_view scope_key,
                    std::string_view items_key, const Resource* resource, const Scope& scope,
                    bool has_items, Items&& items) {
  JsonWriter w(out);
  w.begin_object();
  w.key(resource_key);
  w.begin_array();
  w.begin_object();
  if (resource != nullptr && !resource->attributes.empty()) {
    w.key("resource");
    w.begin_object();
    key_values(w, "attributes", resource->attributes);
    w.end_object();
  }
  w.key(scope_key);
  w.begin_array();
  w.begin_object();
  if (!scope.name.empty() || !scope.version.empty()) {
    w.key("scope");
    w.begin_object();
    string_field(w, "name", scope.name);
    string_field(w, "version", scope.version);
    w.end_object();
  }
  if (has_items) {
    w.key(items_key);
    w.begin_array();
    items(w);
    w.end_array();
  }
  w.end_object();
  w.end_array();
  w.end_object();
  w.end_array();
  w.end_object();
  w.finish();
}

void log_record(JsonWriter& w, const LogRecord& r) {
  w.begin_object();
  time_field(w, "timeUnixNano", r.time_unix_nano);
  integer_field(w, "severityNumber", r.severity_number);
  string_field(w, "severityText", r.severity_text);
  if (r.body.kind != AnyValue::Kind::kEmpty) {
    w.key("body");
    any_value(w, r.body);
  }
  key_values(w, "attributes", r.attributes);
  integer_field(w, "flags", r.flags);
  id_field(w, "traceId", r.trace_id);
  id_field(w, "spanId", r.span_id);
  time_field(w, "observedTimeUnixNano", r.observed_time_unix_nano);
  w.end_object();
}

void span(JsonWriter& w, const Span& s) {
  w.begin_object();
  id_field(w, "traceId", s.trace_id);
  id_field(w, "spanId", s.span_id);
  id_field(w, "parentSpanId", s.parent_span_id);
  string_field(w, "name", s.name);
  integer_field(w, "kind", static_cast<int32_t>(s.kind));
  time_field(w, "startTimeUnixNano", s.start_time_unix_nano);
  time_field(w, "endTimeUnixNano", s.end_time_unix_nano);
  key_values(w, "attributes", s.attributes);
  if (!s.events.empty()) {
    w.key("events");
    w.begin_array();
    for (const SpanEvent& event : s.events) {
      w.begin_object();
      time_field(w, "timeUnixNano", event.time_unix_nano);
      string_field(w, "name", event.name);
      key_values(w, "attributes", event.attributes);
      w.end_object();
    }
    w.end_array();
  }
  if (s.status.code != SpanStatus::Code::kUnset || !s.status.message.empty()) {
    w.key("status");
    w.begin_object();
    string_field(w, "message", s.status.message);
    integer_field(w, "code", static_cast<int32_t>(s.status.code));
    w.end_object();
  }
  integer_field(w, "flags", s.flags);
  w.end_object();
}

// metrics.v1.NumberDataPoint: asDouble / asInt are a oneof, written even when zero.
void number_point(JsonWriter& w, const NumberDataPoint& p) {
  w.begin_object();
  time_field(w, "startTimeUnixNano", p.start_time_unix_nano);
  time_field(w, "timeUnixNano", p.time_unix_nano);
  if (p.is_double) {
    w.key("asDouble");
    w.number(p.as_double);
  } else {
    w.key("asInt");
    w.integer_string(p.as_int);
  }
  key_values(w, "attributes", p.attributes);
  w.end_object();
}

// metrics.v1.HistogramDataPoint: sum, min and max have explicit presence.
void histogram_point(JsonWriter& w, const HistogramDataPoint& p) {
  w.begin_object();
  time_field(w, "startTimeUnixNano", p.start_time_unix_nano);
  time_field(w, "timeUnixNano", p.time_unix_nano);
  if (p.count != 0) {
    w.key("count");
    w.integer_string(p.count);
  }
  w.key("sum");
  w.number(p.sum);
  if (!p.bucket_counts.empty()) {
    w.key("bucketCounts");
    w.begin_array();
    for (uint64_t count : p.bucket_counts) w.integer_string(count);
    w.end_array();
  }
  if (!p.explicit_bounds.empty()) {
    w.key("explicitBounds");
    w.begin_array();
    for (double bound : p.explicit_bounds) w.number(bound);
    w.end_array();
  }
  key_values(w, "attributes", p.attributes);
  if (p.min) {
    w.key("min");
    w.number(*p.min);
  }
  if (p.max) {
    w.key("max");
    w.number(*p.max);
  }
  w.end_object();
}

void metric(JsonWriter& w, const Metric& m) {
  w.begin_object();
  string_field(w, "name", m.name);
  string_field(w, "description", m.description);
  string_field(w, "unit", m.unit);
  const bool histogram = m.kind == Metric::Kind::kHistogram;
  w.key(histogram ? "histogram" : m.kind == Metric::Kind::kSum ? "sum" : "gauge");
  w.begin_object();
  if (histogram ? !m.histogram_points.empty() : !m.number_points.empty()) {
    w.key("dataPoints");
    w.begin_array();
    if (histogram) {
      for (const HistogramDataPoint& p : m.histogram_points) histogram_point(w, p);
    } else {
      for (const NumberDataPoint& p : m.number_points) number_point(w, p);
    }
    w.end_array();
  }
  if (m.kind != Metric::Kind::kGauge) {
    integer_field(w, "aggregationTemporality", static_cast<int32_t>(m.temporality));
  }
  if (m.kind == Metric::Kind::kSum && m.is_monotonic) {
    w.key("isMonotonic");
    w.boolean(true);
  }
  w.end_object();
  w.end_object();
}

}  // namespace

void encode_json(const LogsRequest& request, std::string& out) {
  export_request(out, "resourceLogs", "scopeLogs", "logRecords", request.resource, request.scope,
                 !request.records.empty(), [&](JsonWriter& w) {
                   for (const LogRecord& record : request.records) log_record(w, record);
                 });
}

void encode_json(const TracesRequest& request, std::string& out) {
  export_request(out, "resourceSpans", "scopeSpans", "spans", request.resource, request.scope,
                 !request.spans.empty(), [&](JsonWriter& w) {
                   for (const Span& s : request.spans) span(w, s);
                 });
}

void encode_json(const MetricsRequest& request, std::string& out) {
  export_request(out, "resourceMetrics", "scopeMetrics", "metrics", request.resource, request.scope,
                 !request.metrics.empty(), [&](JsonWriter& w) {
                   for (const Metric& m : request.metrics) metric(w, m);
                 });
}

}  // namespace relay::otlp
