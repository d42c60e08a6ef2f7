// Life of an event through LambdaMapping::map():
//  1. The type picks the path. `function`/`extension` are log lines; `platform.*` types the
//     mapping knows update its state (init phase, invocations by request id, the invocation in
//     progress) and feed spans, metrics and, with platform_logs, CloudWatch-style log records;
//     other types are skipped and counted. Known platform types that matter only as logs
//     (extension, telemetrySubscription, logsDropped, restore*) are not even parsed without
//     platform_logs.
//  2. The raw record is checked for UTF-8 (invalid bytes become U+FFFD, counted). A log line
//     that is a JSON string with only short escapes (the usual `"...\t...\t..."`) is unescaped
//     directly; anything else is copied into a padded buffer and parsed with simdjson's DOM
//     parser. Strings that outlive the parse are copied into the output's StringStore.
//  3. A log line becomes a LogRecord: Lambda's text formats give time, severity and request id;
//     JSON objects give them from timestamp/level/requestId, the body from message and the other
//     keys as attributes; anything else is the body as it came.
//  4. The record gets its invocation: its own request id, else (outside Managed Instances) the
//     invocation in progress. A known invocation lends its trace id, span id and sampled flag; a
//     request id whose platform.start has not arrived is held (strings copied) until that start,
//     hold_ms, max_held_records or release_held(), and then always sent.
//  5. platform.start fixes an invocation's trace context (X-Ray tracing, else random ids) and
//     releases its held records; platform.runtimeDone (on Managed Instances, platform.report)
//     closes its SERVER span with runtimeDone.spans as children; initStart..initRuntimeDone or
//     initReport make the init span. Report, runtimeDone and initReport values accumulate into
//     the call's metrics, emitted once at the end of map() (one point per metric, delta).

#include "lambda_mapping.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <span>
#include <utility>

#include "lambda_log_line.h"
#include "timestamps.h"
#include "xray_trace_header.h"

namespace relay::otlp {
namespace {

namespace dom = simdjson::dom;
namespace od = simdjson::ondemand;

constexpr uint64_t kNanosPerMilli = 1'000'000;
// Larger records are not parsed (Lambda's own limit is 256 KiB per line): kept whole.
constexpr size_t kMaxParsedRecordBytes = 1 << 20;
// Deeper JSON in a log record's body or attributes is kept as its JSON text.
constexpr int kMaxJsonDepth = 32;
// runtimeDone.spans beyond this are ignored (Lambda sends three).
constexpr size_t kMaxChildSpans = 16;

// Histogram bounds. Durations in seconds: the semantic conventions' advice for durations,
// extended to Lambda's 900 s limit. Memory in bytes: 16 MiB to 8 GiB by powers of two.
constexpr std::array<double, 18> kDurationBounds = {
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 300, 900};
constexpr double kMiB = 1048576;
constexpr std::array<double, 10> kMemoryBounds = {16 * kMiB,   32 * kMiB,  64 * kMiB,   128 * kMiB,
                                                  256 * kMiB,  512 * kMiB, 1024 * kMiB, 2048 * kMiB,
                                                  4096 * kMiB, 8192 * kMiB};

constexpr int32_t kSeverityInfo = 9;
constexpr int32_t kSeverityWarn = 13;
constexpr int32_t kSeverityError = 17;

enum class PlatformKind {
  kUnknown,
  kInitStart,
  kInitRuntimeDone,
  kInitReport,
  kStart,
  kRuntimeDone,
  kReport,
  kRestoreStart,
  kRestoreRuntimeDone,
  kRestoreReport,
  kExtension,
  kTelemetrySubscription,
  kLogsDropped,
};

struct PlatformType {
  std::string_view name;
  PlatformKind kind;
};
constexpr std::array<PlatformType, 12> kPlatformTypes = {{
    {"platform.initStart", PlatformKind::kInitStart},
    {"platform.initRuntimeDone", PlatformKind::kInitRuntimeDone},
    {"platform.initReport", PlatformKind::kInitReport},
    {"platform.start", PlatformKind::kStart},
    {"platform.runtimeDone", PlatformKind::kRuntimeDone},
    {"platform.report", PlatformKind::kReport},
    {"platform.restoreStart", PlatformKind::kRestoreStart},
    {"platform.restoreRuntimeDone", PlatformKind::kRestoreRuntimeDone},
    {"platform.restoreReport", PlatformKind::kRestoreReport},
    {"platform.extension", PlatformKind::kExtension},
    {"platform.telemetrySubscription", PlatformKind::kTelemetrySubscription},
    {"platform.logsDropped", PlatformKind::kLogsDropped},
}};

// The static name of a known platform type (log records may outlive the event).
const PlatformType* platform_type(std::string_view type) {
  for (const auto& known : kPlatformTypes) {
    if (known.name == type) return &known;
  }
  return nullptr;
}

bool affects_state(PlatformKind kind) {
  switch (kind) {
    case PlatformKind::kInitStart:
    case PlatformKind::kInitRuntimeDone:
    case PlatformKind::kInitReport:
    case PlatformKind::kStart:
    case PlatformKind::kRuntimeDone:
    case PlatformKind::kReport:
      return true;
    default:
      return false;
  }
}

std::string_view get_string(const dom::object& object, std::string_view key) {
  std::string_view value;
  if (object[key].get_string().get(value) != simdjson::SUCCESS) return {};
  return value;
}

// A finite number, integer or not (durations may be written as 2599 or 2599.0).
std::optional<double> get_number(const dom::object& object, std::string_view key) {
  dom::element element;
  if (object[key].get(element) != simdjson::SUCCESS || !element.is_number()) return std::nullopt;
  double value = 0;
  if (element.get_double().get(value) != simdjson::SUCCESS || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

// A duration, size or count from a metrics object: non-negative and bounded, else nullopt.
std::optional<double> get_amount(const dom::object& object, std::string_view key) {
  std::optional<double> value = get_number(object, key);
  if (!value || *value < 0 || *value > 1e12) return std::nullopt;
  return value;
}

std::optional<dom::object> get_object(const dom::object& object, std::string_view key) {
  dom::object value;
  if (object[key].get_object().get(value) != simdjson::SUCCESS) return std::nullopt;
  return value;
}

// Milliseconds (non-negative, below a day's worth of years) as nanoseconds.
std::optional<uint64_t> millis_to_nanos(std::optional<double> ms) {
  if (!ms || *ms < 0 || *ms > 1e12) return std::nullopt;
  // Rounded by hand: std::llround would make the plugin need libm, which the base layer lacks.
  return static_cast<uint64_t>(*ms * kNanosPerMilli + 0.5);
}

bool is_failure(std::string_view status) { return !status.empty() && status != "success"; }

// Not std::to_chars: libstdc++'s floating-point to_chars makes the plugin need libm, which a sink
// layer cannot bring and the base layer does not ship.
void append_number(std::string& text, double value, int precision) {
  std::array<char, 64> buffer;
  const int n = std::snprintf(buffer.data(), buffer.size(), "%.*f", precision, value);
  if (n > 0 && static_cast<size_t>(n) < buffer.size()) text.append(buffer.data(), n);
}

// A JSON array of strings as [a,b,c] (other values left out).
void append_string_list(std::string& text, const dom::object& object, std::string_view key) {
  text += '[';
  dom::array array;
  if (object[key].get_array().get(array) == simdjson::SUCCESS) {
    bool first = true;
    for (dom::element item : array) {
      std::string_view value;
      if (item.get_string().get(value) != simdjson::SUCCESS) continue;
      if (!first) text += ',';
      text += value;
      first = false;
    }
  }
  text += ']';
}

// Whether JSON text is an object (so worth the On-Demand parser).
bool starts_object(std::string_view json) {
  const size_t first = json.find_first_not_of(" \t\n\r");
  return first != std::string_view::npos && json[first] == '{';
}

// A line's single trailing newline is its terminator, not content.
std::string_view strip_newline(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// In place, without a temporary AnyValue (two vectors) per field: this runs for every line.
void set_string(AnyValue& value, std::string_view text) {
  value.kind = AnyValue::Kind::kString;
  value.string_value = text;
}
void add_string(Attributes& attributes, std::string_view key, std::string_view text) {
  KeyValue& kv = attributes.emplace_back();
  kv.key = key;
  set_string(kv.value, text);
}

// A parsed JSON value into out (kEmpty on entry), strings copied into strings. The DOM parse
// has validated it all: nothing fails here. uint64 above INT64_MAX: its exact text.
void to_any(dom::element element, StringStore& strings, int depth, AnyValue& out) {
  switch (element.type()) {
    case dom::element_type::ARRAY: {
      if (depth >= kMaxJsonDepth) {
        set_string(out, strings.keep(simdjson::to_string(element)));
        return;
      }
      const dom::array array(element);
      out.kind = AnyValue::Kind::kArray;
      out.array_value.reserve(array.size());
      for (dom::element item : array) {
        to_any(item, strings, depth + 1, out.array_value.emplace_back());
      }
      return;
    }
    case dom::element_type::OBJECT: {
      if (depth >= kMaxJsonDepth) {
        set_string(out, strings.keep(simdjson::to_string(element)));
        return;
      }
      const dom::object object(element);
      out.kind = AnyValue::Kind::kKvList;
      out.kvlist_value.reserve(object.size());
      for (dom::key_value_pair field : object) {
        KeyValue& kv = out.kvlist_value.emplace_back();
        kv.key = strings.copy(field.key);
        to_any(field.value, strings, depth + 1, kv.value);
      }
      return;
    }
    case dom::element_type::INT64:
      out.kind = AnyValue::Kind::kInt;
      out.int_value = int64_t(element);
      return;
    case dom::element_type::UINT64: {
      std::array<char, 24> text;
      auto end = std::to_chars(text.data(), text.data() + text.size(), uint64_t(element)).ptr;
      set_string(out, strings.copy(std::string_view(text.data(), end)));
      return;
    }
    case dom::element_type::DOUBLE:
      out.kind = AnyValue::Kind::kDouble;
      out.double_value = double(element);
      return;
    case dom::element_type::STRING:
      set_string(out, strings.copy(std::string_view(element)));
      return;
    case dom::element_type::BOOL:
      out.kind = AnyValue::Kind::kBool;
      out.bool_value = bool(element);
      return;
    case dom::element_type::NULL_VALUE:
      return;
  }
}

// raw_json_token() keeps the whitespace up to the next token.
std::string_view trim_json_space(std::string_view text) {
  const size_t end = text.find_last_not_of(" \t\n\r");
  return end == std::string_view::npos ? std::string_view() : text.substr(0, end + 1);
}

// A JSON value into out (kEmpty on entry), with its strings copied into strings. An error means
// the record is not valid JSON. Integers outside int64 (beyond simdjson 3.0.1's types: its DOM
// parser refuses the whole document) become strings with their exact text: nothing is rounded.
simdjson::error_code to_any(od::value value, StringStore& strings, int depth, AnyValue& out) {
  od::json_type type;
  SIMDJSON_TRY(value.type().get(type));
  switch (type) {
    case od::json_type::array: {
      od::array array;
      SIMDJSON_TRY(value.get_array().get(array));
      if (depth >= kMaxJsonDepth) {
        std::string_view raw;
        SIMDJSON_TRY(array.raw_json().get(raw));
        set_string(out, strings.copy(raw));
        return simdjson::SUCCESS;
      }
      out.kind = AnyValue::Kind::kArray;
      size_t count = 0;  // a second look at the array's tokens costs less than growing a vector
      SIMDJSON_TRY(array.count_elements().get(count));
      out.array_value.reserve(count);
      for (auto item : array) {
        od::value element;
        SIMDJSON_TRY(item.get(element));
        SIMDJSON_TRY(to_any(element, strings, depth + 1, out.array_value.emplace_back()));
      }
      return simdjson::SUCCESS;
    }
    case od::json_type::object: {
      od::object object;
      SIMDJSON_TRY(value.get_object().get(object));
      if (depth >= kMaxJsonDepth) {
        std::string_view raw;
        SIMDJSON_TRY(object.raw_json().get(raw));
        set_string(out, strings.copy(raw));
        return simdjson::SUCCESS;
      }
      out.kind = AnyValue::Kind::kKvList;
      size_t count = 0;
      SIMDJSON_TRY(object.count_fields().get(count));
      out.kvlist_value.reserve(count);
      for (auto field : object) {
        std::string_view key;
        od::value element;
        SIMDJSON_TRY(field.unescaped_key().get(key));
        SIMDJSON_TRY(field.value().get(element));
        KeyValue& kv = out.kvlist_value.emplace_back();
        kv.key = strings.copy(key);
        SIMDJSON_TRY(to_any(element, strings, depth + 1, kv.value));
      }
      return simdjson::SUCCESS;
    }
    case od::json_type::number: {
      od::number_type number_type;
      SIMDJSON_TRY(value.get_number_type().get(number_type));
      if (number_type == od::number_type::floating_point_number) {
        double number = 0;
        SIMDJSON_TRY(value.get_double().get(number));
        out.kind = AnyValue::Kind::kDouble;
        out.double_value = number;
        return simdjson::SUCCESS;
      }
      int64_t integer = 0;
      if (number_type == od::number_type::signed_integer &&
          value.get_int64().get(integer) == simdjson::SUCCESS) {
        out.kind = AnyValue::Kind::kInt;
        out.int_value = integer;
        return simdjson::SUCCESS;
      }
      // Beyond int64 (get_number_type() saw an optional '-' then only digits): the text, once
      // checked against JSON's rule that the digits of a 19+ digit integer don't start with 0.
      const std::string_view text = trim_json_space(value.raw_json_token());
      const std::string_view digits = text.substr(text.starts_with('-') ? 1 : 0);
      if (digits.empty() || digits.front() == '0') return simdjson::NUMBER_ERROR;
      set_string(out, strings.copy(text));
      return simdjson::SUCCESS;
    }
    case od::json_type::string: {
      std::string_view text;
      SIMDJSON_TRY(value.get_string().get(text));
      set_string(out, strings.copy(text));
      return simdjson::SUCCESS;
    }
    case od::json_type::boolean: {
      bool flag = false;
      SIMDJSON_TRY(value.get_bool().get(flag));
      out.kind = AnyValue::Kind::kBool;
      out.bool_value = flag;
      return simdjson::SUCCESS;
    }
    case od::json_type::null: {
      bool is_null = false;
      SIMDJSON_TRY(value.is_null().get(is_null));
      return is_null ? simdjson::SUCCESS : simdjson::INCORRECT_TYPE;
    }
  }
  return simdjson::INCORRECT_TYPE;
}

// Points every string of value at copies in strings.
void rehome(AnyValue& value, StringStore& strings) {
  if (value.kind == AnyValue::Kind::kString) value.string_value = strings.copy(value.string_value);
  for (auto& item : value.array_value) rehome(item, strings);
  for (auto& field : value.kvlist_value) {
    field.key = strings.copy(field.key);
    rehome(field.value, strings);
  }
}

void rehome(LogRecord& record, StringStore& strings) {
  record.severity_text = strings.copy(record.severity_text);
  rehome(record.body, strings);
  for (auto& attribute : record.attributes) {
    attribute.key = strings.copy(attribute.key);
    rehome(attribute.value, strings);
  }
}

}  // namespace

// One event's parsed parts, shared by the handlers.
struct LambdaMapping::EventContext {
  std::string_view type;  // static storage for platform types
  PlatformKind kind = PlatformKind::kUnknown;
  std::string_view raw_time;
  uint64_t time = 0;  // the envelope's time, now when it does not parse (log lines: 0, lazily)
  uint64_t now = 0;
  std::string_view record;  // raw JSON, valid UTF-8, alive until the output is encoded
};

// The call's metrics, accumulated while mapping and emitted at the end.
struct LambdaMapping::Metrics {
  struct Window {
    uint64_t start = 0;
    uint64_t end = 0;
    void add(uint64_t time) {
      start = start == 0 ? time : std::min(start, time);
      end = std::max(end, time);
    }
  };
  struct Counter {
    Window window;
    int64_t value = 0;
    bool seen = false;
    void add(int64_t n, uint64_t time) {
      value += n;
      seen = true;
      window.add(time);
    }
  };
  struct Gauge {
    Window window;
    int64_t value = 0;
    bool seen = false;
    void set(int64_t v, uint64_t time) {
      if (time >= window.end) value = v;
      seen = true;
      window.add(time);
    }
  };
  struct Histogram {
    explicit Histogram(std::span<const double> b) : bounds(b) {}
    std::span<const double> bounds;
    Window window;
    HistogramDataPoint point;
    void add(double value, uint64_t time) {
      if (point.count == 0) point.bucket_counts.assign(bounds.size() + 1, 0);
      // A value equal to a bound falls into the bucket that bound closes (OTLP's rule).
      size_t bucket = static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), value) -
                                          bounds.begin());
      ++point.bucket_counts[bucket];
      ++point.count;
      point.sum += value;
      point.min = point.min ? std::min(*point.min, value) : value;
      point.max = point.max ? std::max(*point.max, value) : value;
      window.add(time);
    }
  };

  Histogram invoke_duration{kDurationBounds};
  Histogram init_duration{kDurationBounds};
  Histogram billed_duration{kDurationBounds};
  Histogram mem_usage{kMemoryBounds};
  Counter coldstarts, invocations, errors, timeouts;
  Gauge memory_size;

  // Counts a final status (invocation or init) into invocations, errors or timeouts.
  void count_status(std::string_view status, bool is_invocation, uint64_t time) {
    if (status == "success") {
      if (is_invocation) invocations.add(1, time);
    } else if (status == "timeout") {
      timeouts.add(1, time);
    } else if (status == "error" || status == "failure") {
      errors.add(1, time);
    }
  }

  void emit(std::vector<Metric>& out) const {
    auto histogram = [&](const Histogram& h, std::string_view name, std::string_view description,
                         std::string_view unit) {
      if (h.point.count == 0) return;
      Metric& metric = out.emplace_back();
      metric.name = name;
      metric.description = description;
      metric.unit = unit;
      metric.kind = Metric::Kind::kHistogram;
      HistogramDataPoint& point = metric.histogram_points.emplace_back(h.point);
      point.explicit_bounds.assign(h.bounds.begin(), h.bounds.end());
      point.start_time_unix_nano = h.window.start;
      point.time_unix_nano = h.window.end;
    };
    auto number = [&](bool seen, int64_t value, const Window& window, Metric::Kind kind,
                      std::string_view name, std::string_view description, std::string_view unit) {
      if (!seen) return;
      Metric& metric = out.emplace_back();
      metric.name = name;
      metric.description = description;
      metric.unit = unit;
      metric.kind = kind;
      NumberDataPoint& point = metric.number_points.emplace_back();
      point.as_int = value;
      point.start_time_unix_nano = window.start;
      point.time_unix_nano = window.end;
    };
    histogram(invoke_duration, "faas.invoke_duration",
              "Measures the duration of the function's logic execution", "s");
    histogram(init_duration, "faas.init_duration",
              "Measures the duration of the function's initialization, such as a cold start", "s");
    number(coldstarts.seen, coldstarts.value, coldstarts.window, Metric::Kind::kSum,
           "faas.coldstarts", "Number of invocation cold starts", "{coldstart}");
    number(invocations.seen, invocations.value, invocations.window, Metric::Kind::kSum,
           "faas.invocations", "Number of successful invocations", "{invocation}");
    number(errors.seen, errors.value, errors.window, Metric::Kind::kSum, "faas.errors",
           "Number of invocation errors", "{error}");
    number(timeouts.seen, timeouts.value, timeouts.window, Metric::Kind::kSum, "faas.timeouts",
           "Number of invocation timeouts", "{timeout}");
    histogram(mem_usage, "faas.mem_usage", "Distribution of max memory usage per invocation", "By");
    histogram(billed_duration, "aws.lambda.billed_duration", "Billed duration per invocation", "s");
    number(memory_size.seen, memory_size.value, memory_size.window, Metric::Kind::kGauge,
           "aws.lambda.memory_size", "Memory configured for the function", "By");
  }
};

LambdaMapping::LambdaMapping(MappingOptions options) : options_(std::move(options)) {
  std::random_device device;
  std::seed_seq seed{device(), device(), device(), device()};
  random_.seed(seed);
  invocations_.reserve(kRememberedInvocations);  // pointers into it stay valid
}

void LambdaMapping::map(const std::vector<LambdaEvent>& events, uint64_t now_unix_nano,
                        MappingOutput& out) {
  Metrics metrics;
  // Geometric growth: a caller may append several calls' output before encoding.
  const size_t wanted = out.logs.size() + events.size();
  if (out.logs.capacity() < wanted) out.logs.reserve(std::max(wanted, 2 * out.logs.capacity()));
  for (const LambdaEvent& event : events) map_event(event, now_unix_nano, metrics, out);
  const uint64_t hold_ns =
      std::min<uint64_t>(options_.hold_ms, UINT64_MAX / kNanosPerMilli) * kNanosPerMilli;
  while (!held_.empty() && now_unix_nano >= held_.front().held_since_unix_nano &&
         now_unix_nano - held_.front().held_since_unix_nano >= hold_ns) {
    release_front(out);
  }
  metrics.emit(out.metrics);
}

void LambdaMapping::release_held(MappingOutput& out) {
  while (!held_.empty()) release_front(out);
}

void LambdaMapping::map_event(const LambdaEvent& event, uint64_t now, Metrics& metrics,
                              MappingOutput& out) {
  EventContext ev;
  ev.now = now;
  bool is_log = false;
  if (event.type == "function") {
    ev.type = "function";
    is_log = true;
  } else if (event.type == "extension") {
    ev.type = "extension";
    is_log = true;
  } else if (const PlatformType* known = platform_type(event.type)) {
    ev.type = known->name;
    ev.kind = known->kind;
    if (!options_.platform_logs && !affects_state(ev.kind)) return;  // nothing for the mapping
  } else {
    ++counters_.unknown_types_skipped;
    return;
  }
  ev.raw_time = event.time;
  // A log line usually carries its own time: the envelope's is parsed only when needed.
  if (!is_log) ev.time = parse_rfc3339_nanos(event.time).value_or(now);

  ev.record = event.record;
  if (repair_utf8(event.record, repaired_)) {
    ++counters_.invalid_utf8;
    ev.record = out.strings.copy(repaired_);
  }
  if (is_log) {
    map_log(ev, out);
  } else {
    map_platform(ev, metrics, out);
  }
}

bool LambdaMapping::parse(std::string_view json, simdjson::dom::element& root) {
  if (json.size() > kMaxParsedRecordBytes) return false;
  pad(json);
  return parser_.parse(padded_.data(), json.size(), false).get(root) == simdjson::SUCCESS;
}

void LambdaMapping::pad(std::string_view json) {
  const size_t padded_size = json.size() + simdjson::SIMDJSON_PADDING;
  if (padded_.size() < padded_size) padded_.resize(padded_size);
  std::copy(json.begin(), json.end(), padded_.begin());
  // simdjson reads into the padding; a previous record's bytes there are no concern of its.
  std::fill_n(padded_.begin() + static_cast<ptrdiff_t>(json.size()), simdjson::SIMDJSON_PADDING,
              ' ');
}

void LambdaMapping::map_log(const EventContext& ev, MappingOutput& out) {
  LogRecord& record = out.logs.emplace_back();  // built in place: a LogRecord is large
  record.observed_time_unix_nano = ev.now;
  record.attributes.reserve(2);  // the type and the invocation id; a JSON object's keys grow it
  add_string(record.attributes, "aws.lambda.log_type", ev.type);
  std::string_view request_id;

  std::string_view line;
  dom::element root;
  bool parsed = false;
  // Most lines are JSON strings with only short escapes (\t, \"): no parser needed for them.
  bool is_string = unescape_simple_json_string(ev.record, line_);
  bool is_object = false;
  if (is_string) {
    line = line_;
  } else if (starts_object(ev.record)) {
    is_object = map_object(ev.record, record, request_id, out);
  } else {
    parsed = parse(ev.record, root);
    is_string = parsed && root.get_string().get(line) == simdjson::SUCCESS;
  }
  if (is_string) {
    line = out.strings.copy(strip_newline(line));
    if (auto text = parse_lambda_text_line(line)) {
      record.time_unix_nano = text->time_unix_nano;
      Severity severity = severity_from_level(text->level);
      record.severity_number = severity.number;
      record.severity_text = severity.number != 0 ? severity.text : text->level;
      request_id = text->request_id;
      set_string(record.body, text->message);
    } else if (!starts_object(line) || !map_object(line, record, request_id, out)) {
      // Schema 2022-07-01 keeps JSON-format lines as strings: read as objects too, above.
      set_string(record.body, line);
      ++counters_.unparsed_records;
    }
  } else if (!is_object) {
    set_string(record.body, ev.record);  // not JSON, or a JSON number, array...: as is
    ++counters_.unparsed_records;
  }

  if (record.time_unix_nano == 0) {
    record.time_unix_nano = parse_rfc3339_nanos(ev.raw_time).value_or(ev.now);
  }

  if (!request_id.empty()) {
    add_string(record.attributes, "faas.invocation_id", request_id);
    if (const Invocation* invocation = find(request_id)) {
      attach(record, *invocation);
    } else {
      LogRecord early = std::move(record);
      out.logs.pop_back();
      hold(std::move(early), request_id, ev.now, out);
      return;
    }
  } else if (!options_.managed_instances && !current_request_.empty()) {
    if (const Invocation* invocation = find(current_request_)) {
      add_string(record.attributes, "faas.invocation_id", out.strings.copy(current_request_));
      attach(record, *invocation);
    }
  }
}

// A JSON object's fields: level, message, timestamp and requestId, the rest as attributes.
// Read with simdjson's On-Demand API, which (unlike its DOM in 3.0.1) lets a big integer through
// as text. False, with record as it came, when json is not a valid object.
bool LambdaMapping::map_object(std::string_view json, LogRecord& record,
                               std::string_view& request_id, MappingOutput& out) {
  if (json.size() > kMaxParsedRecordBytes) return false;
  pad(json);
  const size_t attributes = record.attributes.size();
  std::string_view id;
  // Each field: level, requestId and a timestamp that parses are the record's own; the rest
  // are attributes, message the body (the last one wins).
  auto special = [&](std::string_view key, std::string_view text) {
    if (key == "level") {
      Severity severity = severity_from_level(text);
      record.severity_number = severity.number;
      record.severity_text = severity.number != 0 ? severity.text : out.strings.copy(text);
    } else if (key == "requestId") {
      id = out.strings.copy(text);
    } else if (auto time = parse_rfc3339_nanos(text)) {
      record.time_unix_nano = *time;
    } else {
      add_string(record.attributes, out.strings.copy(key), out.strings.copy(text));
    }
  };
  auto is_special = [](std::string_view key) {
    return key == "level" || key == "requestId" || key == "timestamp";
  };

  // DOM first: simdjson picks its SIMD kernels at run time for the whole parse, On-Demand
  // (built for the baseline CPU) walks with generic code. DOM refuses integers beyond 64 bits:
  // only then (NUMBER_ERROR) does On-Demand read the record again.
  dom::element root;
  const simdjson::error_code parsed = parser_.parse(padded_.data(), json.size(), false).get(root);
  if (parsed == simdjson::SUCCESS) {
    dom::object object;
    if (root.get_object().get(object) != simdjson::SUCCESS) return false;
    for (dom::key_value_pair field : object) {
      std::string_view text;
      if (field.key == "message") {
        record.body = AnyValue{};
        to_any(field.value, out.strings, 1, record.body);
      } else if (is_special(field.key) && field.value.get_string().get(text) == simdjson::SUCCESS) {
        special(field.key, text);
      } else {
        KeyValue& kv = record.attributes.emplace_back();
        kv.key = out.strings.copy(field.key);
        to_any(field.value, out.strings, 1, kv.value);
      }
    }
    request_id = id;
    return true;
  }
  if (parsed != simdjson::NUMBER_ERROR) return false;

  auto read = [&]() -> simdjson::error_code {
    od::document document;
    od::object object;
    SIMDJSON_TRY(ondemand_.iterate(padded_.data(), json.size(), padded_.size()).get(document));
    SIMDJSON_TRY(document.get_object().get(object));
    for (auto field : object) {
      std::string_view key;
      od::value value;
      od::json_type type;
      SIMDJSON_TRY(field.unescaped_key().get(key));
      SIMDJSON_TRY(field.value().get(value));
      SIMDJSON_TRY(value.type().get(type));
      if (key == "message") {
        record.body = AnyValue{};  // the last one wins
        SIMDJSON_TRY(to_any(value, out.strings, 1, record.body));
        continue;
      }
      if (!is_special(key) || type != od::json_type::string) {
        KeyValue& kv = record.attributes.emplace_back();
        kv.key = out.strings.copy(key);
        SIMDJSON_TRY(to_any(value, out.strings, 1, kv.value));
        continue;
      }
      std::string_view text;
      SIMDJSON_TRY(value.get_string().get(text));
      special(key, text);
    }
    // Nothing may follow the object (On-Demand reads lazily: this is not checked for us).
    if (document.current_location().error() != simdjson::OUT_OF_BOUNDS) return simdjson::TAPE_ERROR;
    return simdjson::SUCCESS;
  };
  if (read() != simdjson::SUCCESS) {  // undo what a partly read object gave
    record.attributes.resize(attributes);
    record.body = AnyValue{};
    record.severity_number = 0;
    record.severity_text = {};
    record.time_unix_nano = 0;
    return false;
  }
  request_id = id;
  return true;
}

void LambdaMapping::map_platform(const EventContext& ev, Metrics& metrics, MappingOutput& out) {
  dom::element root;
  dom::object record;
  if (!parse(ev.record, root) || root.get_object().get(record) != simdjson::SUCCESS) return;
  switch (ev.kind) {
    case PlatformKind::kStart:
      on_start(ev, record, metrics, out);
      return;
    case PlatformKind::kRuntimeDone:
      on_invocation_end(ev, record, false, metrics, out);
      return;
    case PlatformKind::kReport:
      on_invocation_end(ev, record, true, metrics, out);
      return;
    case PlatformKind::kInitStart:
      on_init_start(ev, record);
      break;
    case PlatformKind::kInitRuntimeDone:
      on_init_end(ev, record, false, metrics, out);
      break;
    case PlatformKind::kInitReport:
      on_init_end(ev, record, true, metrics, out);
      break;
    default:
      break;
  }
  if (!options_.platform_logs) return;

  // The other platform events in CloudWatch's wording.
  std::string& text = text_;
  text.clear();
  int32_t severity = kSeverityInfo;
  std::string_view status = get_string(record, "status");
  std::string_view error_type = get_string(record, "errorType");
  auto append_status = [&] {
    if (!status.empty()) text.append(" Status: ").append(status);
    if (!error_type.empty()) text.append(" Error Type: ").append(error_type);
    if (is_failure(status)) severity = kSeverityError;
  };
  auto append_runtime = [&] {
    std::string_view version = get_string(record, "runtimeVersion");
    std::string_view arn = get_string(record, "runtimeVersionArn");
    if (!version.empty()) text.append(" Runtime Version: ").append(version);
    if (!arn.empty()) text.append(" Runtime Version ARN: ").append(arn);
  };
  auto append_duration = [&](std::string_view label) {
    if (auto metrics_object = get_object(record, "metrics")) {
      if (auto ms = get_amount(*metrics_object, "durationMs")) {
        text.append(label);
        append_number(text, *ms, 2);
        text.append(" ms");
      }
    }
  };
  switch (ev.kind) {
    case PlatformKind::kInitStart:
      text = "INIT_START";
      append_runtime();
      break;
    case PlatformKind::kInitRuntimeDone:
      text = "INIT_RUNTIME_DONE";
      append_status();
      break;
    case PlatformKind::kInitReport: {
      text = "INIT_REPORT";
      append_duration(" Init Duration: ");
      std::string_view phase = get_string(record, "phase");
      if (!phase.empty()) text.append(" Phase: ").append(phase);
      append_status();
      break;
    }
    case PlatformKind::kRestoreStart:
      text = "RESTORE_START";
      append_runtime();
      break;
    case PlatformKind::kRestoreRuntimeDone:
      text = "RESTORE_RUNTIME_DONE";
      append_status();
      break;
    case PlatformKind::kRestoreReport:
      text = "RESTORE_REPORT";
      append_duration(" Restore Duration: ");
      append_status();
      break;
    case PlatformKind::kExtension:
      text.append("EXTENSION Name: ").append(get_string(record, "name"));
      text.append(" State: ").append(get_string(record, "state")).append(" Events: ");
      append_string_list(text, record, "events");
      append_status();
      break;
    case PlatformKind::kTelemetrySubscription:
      text.append("TELEMETRY Name: ").append(get_string(record, "name"));
      text.append(" State: ").append(get_string(record, "state")).append(" Types: ");
      append_string_list(text, record, "types");
      break;
    case PlatformKind::kLogsDropped:
      text = "LOGS_DROPPED DroppedRecords: ";
      append_number(text, get_number(record, "droppedRecords").value_or(0), 0);
      text += " DroppedBytes: ";
      append_number(text, get_number(record, "droppedBytes").value_or(0), 0);
      text.append(" Reason: ").append(get_string(record, "reason"));
      severity = kSeverityWarn;
      break;
    default:
      return;
  }
  platform_log(ev, out.strings.copy(text), severity, {}, nullptr, out);
}

void LambdaMapping::platform_log(const EventContext& ev, std::string_view body, int32_t severity,
                                 std::string_view request_id, const Invocation* invocation,
                                 MappingOutput& out) {
  LogRecord& record = out.logs.emplace_back();
  record.time_unix_nano = ev.time;
  record.observed_time_unix_nano = ev.now;
  record.severity_number = severity;
  record.severity_text = severity_from_level(severity == kSeverityError  ? "ERROR"
                                             : severity == kSeverityWarn ? "WARN"
                                                                         : "INFO")
                             .text;
  set_string(record.body, body);
  add_string(record.attributes, "aws.lambda.log_type", ev.type);
  if (!request_id.empty()) {
    add_string(record.attributes, "faas.invocation_id", out.strings.copy(request_id));
  }
  if (invocation != nullptr) attach(record, *invocation);
}

std::optional<LambdaMapping::TraceContext> LambdaMapping::read_tracing(const dom::object& record,
                                                                       bool count_missing) {
  dom::element tracing_element;
  if (record["tracing"].get(tracing_element) != simdjson::SUCCESS) {
    if (count_missing) ++counters_.bad_tracing;
    return std::nullopt;
  }
  dom::object tracing;
  std::string_view value;
  std::optional<XRayTraceHeader> header;
  std::string_view type;
  if (tracing_element.get_object().get(tracing) != simdjson::SUCCESS ||
      tracing["value"].get_string().get(value) != simdjson::SUCCESS ||
      (tracing["type"].get_string().get(type) == simdjson::SUCCESS && type != "X-Amzn-Trace-Id") ||
      !(header = parse_xray_trace_header(value))) {
    ++counters_.bad_tracing;
    return std::nullopt;
  }
  TraceContext context;
  context.trace_id = header->trace_id;
  context.parent_id = header->parent_id;
  context.sampled = header->sampled;
  std::string_view span_id;
  if (tracing["spanId"].get_string().get(span_id) == simdjson::SUCCESS) {
    if (auto id = parse_span_id(span_id)) {
      context.span_id = *id;
    } else {
      ++counters_.bad_tracing;
    }
  }
  if (!is_set(context.span_id)) context.span_id = random_span_id();
  return context;
}

void LambdaMapping::on_start(const EventContext& ev, const dom::object& record, Metrics& metrics,
                             MappingOutput& out) {
  std::string_view request_id = get_string(record, "requestId");
  if (request_id.empty()) return;
  std::optional<TraceContext> trace = read_tracing(record, true);
  Invocation* invocation = find(request_id);
  if (invocation == nullptr) invocation = &remember(request_id);
  if (!invocation->started) {
    invocation->started = true;
    invocation->start_unix_nano = ev.time;
    // A context made up by an earlier runtimeDone stays: its span may be out already.
    if (trace && !invocation->span_emitted) invocation->trace = *trace;
    if (cold_start_pending_) {
      cold_start_pending_ = false;
      invocation->coldstart = true;
      metrics.coldstarts.add(1, ev.time);
    }
  }
  if (!options_.managed_instances) current_request_.assign(request_id);
  if (options_.platform_logs) {
    text_.assign("START RequestId: ").append(request_id);
    std::string_view version = get_string(record, "version");
    if (!version.empty()) text_.append(" Version: ").append(version);
    platform_log(ev, out.strings.copy(text_), kSeverityInfo, request_id, invocation, out);
  }
  release_for(*invocation, out);
}

void LambdaMapping::on_invocation_end(const EventContext& ev, const dom::object& record,
                                      bool is_report, Metrics& metrics, MappingOutput& out) {
  std::string_view request_id = get_string(record, "requestId");
  if (request_id.empty()) return;
  std::string_view status = get_string(record, "status");
  std::string_view error_type = get_string(record, "errorType");
  std::optional<dom::object> numbers = get_object(record, "metrics");
  auto number = [&](std::string_view key) {
    return numbers ? get_amount(*numbers, key) : std::nullopt;
  };
  std::optional<double> duration_ms = number("durationMs");
  // Outside Managed Instances runtimeDone closes the invocation; there, only the report exists.
  const bool closes = is_report == options_.managed_instances;

  Invocation* invocation = find(request_id);
  if (closes) {
    if (duration_ms) metrics.invoke_duration.add(*duration_ms / 1000, ev.time);
    metrics.count_status(status, true, ev.time);
    if (invocation == nullptr) {  // its platform.start was never seen
      invocation = &remember(request_id);
      if (auto trace = read_tracing(record, false)) invocation->trace = *trace;
      if (cold_start_pending_) {
        cold_start_pending_ = false;
        invocation->coldstart = true;
        metrics.coldstarts.add(1, ev.time);
      }
      release_for(*invocation, out);
    }
  }
  if (is_report) {
    if (auto billed = number("billedDurationMs"))
      metrics.billed_duration.add(*billed / 1000, ev.time);
    if (auto used = number("maxMemoryUsedMB")) metrics.mem_usage.add(*used * kMiB, ev.time);
    if (auto size = number("memorySizeMB")) {
      metrics.memory_size.set(static_cast<int64_t>(*size) * 1048576, ev.time);
    }
  }
  if (current_request_ == request_id) current_request_.clear();

  if (closes && invocation != nullptr && !invocation->span_emitted) {
    invocation->span_emitted = true;
    if (!invocation->trace.sampled) {
      ++counters_.unsampled;
    } else {
      const uint64_t end = ev.time;
      const uint64_t duration_ns = millis_to_nanos(duration_ms).value_or(0);
      uint64_t start = invocation->start_unix_nano;
      if (start == 0 || start > end) start = end >= duration_ns ? end - duration_ns : end;
      const std::string_view name = out.strings.copy(options_.function_name);
      Span& span = out.spans.emplace_back();
      span.trace_id = invocation->trace.trace_id;
      span.span_id = invocation->trace.span_id;
      span.parent_span_id = invocation->trace.parent_id;
      span.name = name;
      span.kind = Span::Kind::kServer;
      span.start_time_unix_nano = start;
      span.end_time_unix_nano = end;
      span.flags = 1;
      span.attributes.push_back(
          {"faas.invocation_id", AnyValue::string(out.strings.copy(request_id))});
      span.attributes.push_back({"faas.coldstart", AnyValue::boolean(invocation->coldstart)});
      if (is_failure(status)) {
        std::string_view error = out.strings.copy(error_type.empty() ? status : error_type);
        span.status = {SpanStatus::Code::kError, error};
        span.attributes.push_back({"error.type", AnyValue::string(error)});
      }
      const Span parent = span;  // out.spans may grow below
      dom::array children;
      if (record["spans"].get_array().get(children) == simdjson::SUCCESS) {
        size_t count = 0;
        for (dom::element element : children) {
          dom::object child;
          if (count == kMaxChildSpans) break;
          if (element.get_object().get(child) != simdjson::SUCCESS) continue;
          std::string_view child_name = get_string(child, "name");
          if (child_name.empty()) continue;
          ++count;
          Span& sub = out.spans.emplace_back();
          sub.trace_id = parent.trace_id;
          sub.span_id = random_span_id();
          sub.parent_span_id = parent.span_id;
          sub.name = out.strings.copy(child_name);
          sub.kind = Span::Kind::kInternal;
          sub.flags = 1;
          sub.start_time_unix_nano =
              parse_rfc3339_nanos(get_string(child, "start")).value_or(parent.start_time_unix_nano);
          sub.end_time_unix_nano = sub.start_time_unix_nano +
                                   millis_to_nanos(get_amount(child, "durationMs")).value_or(0);
        }
      }
    }
  }

  if (options_.platform_logs) {
    if (is_report) {
      text_.assign("REPORT RequestId: ").append(request_id);
      auto field = [&](std::string_view label, std::string_view key, int precision,
                       std::string_view unit) {
        if (auto value = number(key)) {
          text_.append(label);
          append_number(text_, *value, precision);
          text_.append(unit);
        }
      };
      field(" Duration: ", "durationMs", 2, " ms");
      field(" Billed Duration: ", "billedDurationMs", 0, " ms");
      field(" Memory Size: ", "memorySizeMB", 0, " MB");
      field(" Max Memory Used: ", "maxMemoryUsedMB", 0, " MB");
      field(" Init Duration: ", "initDurationMs", 2, " ms");
      field(" Restore Duration: ", "restoreDurationMs", 2, " ms");
    } else {
      text_.assign("END RequestId: ").append(request_id);
    }
    if (is_failure(status)) {
      text_.append(" Status: ").append(status);
      if (!error_type.empty()) text_.append(" Error Type: ").append(error_type);
    }
    platform_log(ev, out.strings.copy(text_), is_failure(status) ? kSeverityError : kSeverityInfo,
                 request_id, invocation, out);
  }
}

void LambdaMapping::on_init_start(const EventContext& ev, const dom::object& record) {
  init_ = InitPhase{};
  init_.started = true;
  init_.start_unix_nano = ev.time;
  init_.trace = read_tracing(record, false);
  // A suppressed init re-run inside an invoke (phase "invoke") does not make a cold invocation.
  if (get_string(record, "initializationType") == "on-demand" &&
      get_string(record, "phase") != "invoke") {
    cold_start_pending_ = true;
  }
}

void LambdaMapping::on_init_end(const EventContext& ev, const dom::object& record, bool is_report,
                                Metrics& metrics, MappingOutput& out) {
  std::string_view status = get_string(record, "status");
  std::string_view error_type = get_string(record, "errorType");
  if (!init_.trace) init_.trace = read_tracing(record, false);
  if (!is_report) {
    if (init_.span_emitted) return;
    if (init_.started) {
      init_.span_emitted = true;
      emit_init_span(init_.start_unix_nano, ev.time, status, error_type, out);
    } else {  // no initStart (a restart): the report's duration will give the start
      init_.runtime_done = true;
      init_.runtime_done_unix_nano = ev.time;
      init_.status.assign(status);
      init_.error_type.assign(error_type);
    }
    return;
  }
  std::optional<double> duration_ms;
  if (auto numbers = get_object(record, "metrics"))
    duration_ms = get_amount(*numbers, "durationMs");
  if (duration_ms) metrics.init_duration.add(*duration_ms / 1000, ev.time);
  metrics.count_status(status, false, ev.time);
  if (!init_.span_emitted && (init_.started || duration_ms)) {
    uint64_t end = init_.runtime_done ? init_.runtime_done_unix_nano : ev.time;
    uint64_t start = init_.start_unix_nano;
    if (!init_.started) {
      uint64_t duration_ns = millis_to_nanos(duration_ms).value_or(0);
      start = ev.time >= duration_ns ? ev.time - duration_ns : ev.time;
    }
    // The report's status is final; the runtime's own (initRuntimeDone) tells more on failure.
    if (!is_failure(status) && is_failure(init_.status)) {
      status = init_.status;
      error_type = init_.error_type;
    }
    emit_init_span(start, std::max(start, end), status, error_type, out);
  }
  init_ = InitPhase{};
}

void LambdaMapping::emit_init_span(uint64_t start, uint64_t end, std::string_view status,
                                   std::string_view error_type, MappingOutput& out) {
  TraceContext trace;
  if (init_.trace) {
    trace = *init_.trace;
  } else {
    trace.trace_id = random_trace_id();
    trace.span_id = random_span_id();
  }
  if (!trace.sampled) {
    ++counters_.unsampled;
    return;
  }
  Span& span = out.spans.emplace_back();
  span.trace_id = trace.trace_id;
  span.span_id = trace.span_id;
  span.parent_span_id = trace.parent_id;
  span.name = out.strings.keep("init " + options_.function_name);
  span.kind = Span::Kind::kInternal;
  span.start_time_unix_nano = start;
  span.end_time_unix_nano = end;
  span.flags = 1;
  span.attributes.push_back({"faas.coldstart", AnyValue::boolean(true)});
  if (is_failure(status)) {
    std::string_view error = out.strings.copy(error_type.empty() ? status : error_type);
    span.status = {SpanStatus::Code::kError, error};
    span.attributes.push_back({"error.type", AnyValue::string(error)});
  }
}

LambdaMapping::Invocation* LambdaMapping::find(std::string_view request_id) {
  const size_t n = invocations_.size();
  for (size_t k = 0; k < n; ++k) {  // newest first: usually the first one
    Invocation& invocation = invocations_[(next_invocation_ + n - 1 - k) % n];
    if (invocation.request_id == request_id) return &invocation;
  }
  return nullptr;
}

LambdaMapping::Invocation& LambdaMapping::remember(std::string_view request_id) {
  if (invocations_.size() < kRememberedInvocations) invocations_.emplace_back();
  Invocation& invocation = invocations_[next_invocation_];
  next_invocation_ = (next_invocation_ + 1) % kRememberedInvocations;
  invocation = Invocation{};
  invocation.request_id.assign(request_id);
  invocation.trace.trace_id = random_trace_id();  // until tracing says otherwise
  invocation.trace.span_id = random_span_id();
  return invocation;
}

void LambdaMapping::attach(LogRecord& record, const Invocation& invocation) {
  record.trace_id = invocation.trace.trace_id;
  record.span_id = invocation.trace.span_id;
  record.flags = invocation.trace.sampled ? 1 : 0;
}

void LambdaMapping::hold(LogRecord record, std::string_view request_id, uint64_t now,
                         MappingOutput& out) {
  HeldRecord& held = held_.emplace_back();
  held.record = std::move(record);
  rehome(held.record, held.strings);
  held.request_id.assign(request_id);
  held.held_since_unix_nano = now;
  while (held_.size() > options_.max_held_records) release_front(out);
}

void LambdaMapping::release_for(const Invocation& invocation, MappingOutput& out) {
  if (held_.empty()) return;
  std::deque<HeldRecord> waiting;
  for (HeldRecord& held : held_) {
    if (held.request_id != invocation.request_id) {
      waiting.push_back(std::move(held));
      continue;
    }
    rehome(held.record, out.strings);
    attach(held.record, invocation);
    out.logs.push_back(std::move(held.record));
  }
  held_ = std::move(waiting);
}

void LambdaMapping::release_front(MappingOutput& out) {
  HeldRecord& held = held_.front();
  rehome(held.record, out.strings);
  ++counters_.held_released_untraced;
  out.logs.push_back(std::move(held.record));
  held_.pop_front();
}

SpanId LambdaMapping::random_span_id() {
  SpanId id{};
  while (!is_set(id)) {
    uint64_t bits = random_();
    for (auto& byte : id) {
      byte = static_cast<uint8_t>(bits);
      bits >>= 8;
    }
  }
  return id;
}

TraceId LambdaMapping::random_trace_id() {
  TraceId id{};
  while (!is_set(id)) {
    for (size_t half = 0; half < 2; ++half) {
      uint64_t bits = random_();
      for (size_t i = 0; i < 8; ++i) {
        id[half * 8 + i] = static_cast<uint8_t>(bits);
        bits >>= 8;
      }
    }
  }
  return id;
}

}  // namespace relay::otlp
