#pragma once

// The subset of the OTLP data model the otlp sink produces (opentelemetry-proto v1: common,
// resource, logs, trace, metrics), as plain structs that the mapping fills and the encoders
// (protobuf_encoder.h, json_encoder.h) write. Strings are views: whoever builds a request keeps
// their bytes alive in a StringStore (or in the delivered batch) until it is encoded.

#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace relay::otlp {

enum class Signal { kLogs, kTraces, kMetrics };  // also an index (0, 1, 2)

// Owns the bytes of strings a request refers to (unescaped JSON strings, formatted bodies).
// Views stay valid until clear(). clear() keeps the chunks (up to kKeptChunks) for the next
// request: fresh memory for every batch costs page faults.
class StringStore {
 public:
  StringStore() = default;
  StringStore(const StringStore&) = delete;
  StringStore& operator=(const StringStore&) = delete;
  // A deque's elements stay where they are when it moves, so views into them stay valid.
  StringStore(StringStore&& other) noexcept
      : strings_(std::move(other.strings_)),
        chunks_(std::move(other.chunks_)),
        used_(std::exchange(other.used_, 0)) {}
  StringStore& operator=(StringStore&& other) noexcept {
    strings_ = std::move(other.strings_);
    chunks_ = std::move(other.chunks_);
    used_ = std::exchange(other.used_, 0);
    return *this;
  }

  std::string_view keep(std::string text) { return strings_.emplace_back(std::move(text)); }

  // Copies text into a shared chunk (no allocation per string for short ones): a chunk is
  // reserved once and never grows, so views into it stay valid.
  std::string_view copy(std::string_view text) {
    if (text.size() > kChunkBytes / 4) return keep(std::string(text));
    if (used_ == 0 || chunks_[used_ - 1].capacity() - chunks_[used_ - 1].size() < text.size()) {
      if (used_ == chunks_.size()) chunks_.emplace_back().reserve(kChunkBytes);
      ++used_;
    }
    std::string& chunk = chunks_[used_ - 1];
    const size_t at = chunk.size();
    chunk.append(text);
    return std::string_view(chunk).substr(at, text.size());
  }

  void clear() {
    strings_.clear();
    while (chunks_.size() > kKeptChunks) chunks_.pop_back();
    for (size_t i = 0; i < used_ && i < chunks_.size(); ++i) chunks_[i].clear();  // keeps capacity
    used_ = 0;
  }

 private:
  static constexpr size_t kChunkBytes = 16384;
  static constexpr size_t kKeptChunks = 64;  // 1 MiB
  std::deque<std::string> strings_;          // keep()'s, and copies too large for a chunk
  std::deque<std::string> chunks_;           // chunks_[0, used_) hold this request's copies
  size_t used_ = 0;
};

struct KeyValue;

// common.v1.AnyValue. kEmpty is an AnyValue with no value set (e.g. a JSON null).
struct AnyValue {
  enum class Kind { kEmpty, kString, kBool, kInt, kDouble, kArray, kKvList };
  Kind kind = Kind::kEmpty;
  bool bool_value = false;  // beside kind: no padding of its own (88 bytes, not 96)
  std::string_view string_value;
  int64_t int_value = 0;
  double double_value = 0;
  std::vector<AnyValue> array_value;
  std::vector<KeyValue> kvlist_value;

  // Defined after KeyValue: clang instantiates the vectors' members where a body stands, and
  // KeyValue must be complete by then.
  static AnyValue string(std::string_view v);
  static AnyValue boolean(bool v);
  static AnyValue integer(int64_t v);
  static AnyValue floating(double v);
};

// common.v1.KeyValue
struct KeyValue {
  std::string_view key;
  AnyValue value;
};

inline AnyValue AnyValue::string(std::string_view v) {
  AnyValue a;
  a.kind = Kind::kString;
  a.string_value = v;
  return a;
}
inline AnyValue AnyValue::boolean(bool v) {
  AnyValue a;
  a.kind = Kind::kBool;
  a.bool_value = v;
  return a;
}
inline AnyValue AnyValue::integer(int64_t v) {
  AnyValue a;
  a.kind = Kind::kInt;
  a.int_value = v;
  return a;
}
inline AnyValue AnyValue::floating(double v) {
  AnyValue a;
  a.kind = Kind::kDouble;
  a.double_value = v;
  return a;
}

using Attributes = std::vector<KeyValue>;
using TraceId = std::array<uint8_t, 16>;  // all zero: none
using SpanId = std::array<uint8_t, 8>;    // all zero: none

// A trace or span id is set unless all its bytes are zero.
template <size_t N>
bool is_set(const std::array<uint8_t, N>& id) {
  for (uint8_t b : id) {
    if (b != 0) return true;
  }
  return false;
}

// resource.v1.Resource
struct Resource {
  Attributes attributes;
};

// common.v1.InstrumentationScope
struct Scope {
  std::string_view name;
  std::string_view version;
};

// logs.v1.LogRecord. SeverityNumber values as in logs.proto (0 unspecified, 1 TRACE ... 21 FATAL).
struct LogRecord {
  uint64_t time_unix_nano = 0;  // 0: unknown
  uint64_t observed_time_unix_nano = 0;
  int32_t severity_number = 0;
  std::string_view severity_text;
  AnyValue body;
  Attributes attributes;
  TraceId trace_id{};
  SpanId span_id{};
  uint32_t flags = 0;  // W3C trace flags: 1 = sampled
};

// trace.v1.Span
struct SpanEvent {
  uint64_t time_unix_nano = 0;
  std::string_view name;
  Attributes attributes;
};

struct SpanStatus {
  enum class Code : int32_t { kUnset = 0, kOk = 1, kError = 2 };
  Code code = Code::kUnset;
  std::string_view message;
};

struct Span {
  enum class Kind : int32_t { kUnspecified = 0, kInternal = 1, kServer = 2, kClient = 3 };
  TraceId trace_id{};
  SpanId span_id{};
  SpanId parent_span_id{};  // all zero: a root span
  std::string_view name;
  Kind kind = Kind::kInternal;
  uint64_t start_time_unix_nano = 0;
  uint64_t end_time_unix_nano = 0;
  Attributes attributes;
  std::vector<SpanEvent> events;
  SpanStatus status;
  uint32_t flags = 0;  // W3C trace flags: 1 = sampled
};

// metrics.v1: the Sum, Gauge and Histogram kinds, delta or cumulative.
enum class Temporality : int32_t { kUnspecified = 0, kDelta = 1, kCumulative = 2 };

struct NumberDataPoint {
  uint64_t start_time_unix_nano = 0;
  uint64_t time_unix_nano = 0;
  bool is_double = false;
  int64_t as_int = 0;
  double as_double = 0;
  Attributes attributes;
};

struct HistogramDataPoint {
  uint64_t start_time_unix_nano = 0;
  uint64_t time_unix_nano = 0;
  uint64_t count = 0;
  double sum = 0;
  std::vector<uint64_t> bucket_counts;  // explicit_bounds.size() + 1 buckets
  std::vector<double> explicit_bounds;
  std::optional<double> min;
  std::optional<double> max;
  Attributes attributes;
};

struct Metric {
  enum class Kind { kSum, kGauge, kHistogram };
  std::string_view name;
  std::string_view description;
  std::string_view unit;
  Kind kind = Kind::kSum;
  Temporality temporality = Temporality::kDelta;  // Sum and Histogram
  bool is_monotonic = true;                       // Sum
  std::vector<NumberDataPoint> number_points;     // Sum and Gauge
  std::vector<HistogramDataPoint> histogram_points;
};

// One Export*ServiceRequest: a single resource and scope (the sink's), then the signal's items.
struct LogsRequest {
  const Resource* resource = nullptr;
  Scope scope;
  std::vector<LogRecord> records;
};

struct TracesRequest {
  const Resource* resource = nullptr;
  Scope scope;
  std::vector<Span> spans;
};

struct MetricsRequest {
  const Resource* resource = nullptr;
  Scope scope;
  std::vector<Metric> metrics;
};

}  // namespace relay::otlp
