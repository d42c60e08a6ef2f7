#include "events.h"

#include <Poco/UUIDGenerator.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <stdexcept>
#include <utility>
#include <vector>

namespace relay::emu {
namespace {

std::string fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

std::string string_array(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';  // not `(i ? "," : "") + ...`: GCC 12 -O3 flags that with -Wrestrict
    out += json_quote(items[i]);
  }
  return out + "]";
}

Event make_event(SystemTime t, std::string_view type, std::string_view record) {
  std::string text;
  text.reserve(record.size() + type.size() + 48);
  text += R"({"time":")";
  text += iso_time(t);
  text += R"(","type":")";
  text += type;
  text += R"(","record":)";
  text += record;
  text += '}';
  return Event{std::string(type), std::move(text)};
}

Event make_event(std::string_view type, std::string_view record) {
  return make_event(std::chrono::system_clock::now(), type, record);
}

// Messages cycle through content a lossless forwarder must not damage.
std::string text_message(int invocation, int line) {
  std::string base =
      "line " + std::to_string(line) + " of invocation " + std::to_string(invocation);
  switch (line % 5) {
    case 1:
      return base + ": h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c\u8a9e \U0001F680";
    case 2:
      return base + R"(: say "hi" C:\path\to)";
    case 3:
      return base + ":\tcol2\tcol3\rcontinued";
    case 4:
      return base + R"(: {"looks":"like json","n":12345678901234567890123})";
    default:
      return base;
  }
}

std::string json_record(std::string_view time, std::string_view request_id,
                        std::string_view tenant_id, int invocation, int line) {
  std::string head = R"({"timestamp":")" + std::string(time) + R"(","level":")";
  std::string rid = R"(","requestId":")" + std::string(request_id) + "\"";
  if (!tenant_id.empty()) rid += R"(,"tenantId":)" + json_quote(tenant_id);
  rid += R"(,"message":)";
  switch (line % 4) {
    case 1:
      return head + "INFO" + rid + R"({"order":{"id":"o-)" + std::to_string(line) +
             R"(","items":[{"sku":"A","qty":2},{"sku":"\u00e9\"q\"","qty":-1}],"meta":null},)" +
             R"("big":123456789012345678901234567890,"ratio":1.5e-7,"ok":true}})";
    case 2:
      return head + "ERROR" + rid +
             R"({"errorType":"TypeError","errorMessage":"x is undefined","stackTrace":)" +
             R"js(["TypeError: x is undefined","    at handler (/var/task/index.js:3:9)"]}})js";
    case 3:
      return head + "WARN" + rid + json_quote(text_message(invocation, line)) + "}";
    default:
      return head + "INFO" + rid + json_quote(text_message(invocation, line)) + "}";
  }
}

// responseLatency then responseDuration, splitting `duration_ms` from `started` 90/10.
std::string response_spans(SystemTime started, double duration_ms) {
  const auto response_start =
      started + std::chrono::microseconds(static_cast<int64_t>(duration_ms * 1000.0 * 0.9));
  return R"([{"name":"responseLatency","start":")" + iso_time(started) + R"(","durationMs":)" +
         fixed(duration_ms * 0.9, 3) + R"(},{"name":"responseDuration","start":")" +
         iso_time(response_start) + R"(","durationMs":)" + fixed(duration_ms * 0.1, 3) + "}]";
}

std::string tenant_field(std::string_view tenant_id) {
  return tenant_id.empty() ? "" : R"(,"tenantId":)" + json_quote(tenant_id);
}

}  // namespace

std::string_view category_of(std::string_view type) {
  if (type == "function" || type == "extension") {
    return type;
  }
  return "platform";
}

std::string json_quote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string iso_time(SystemTime t) {
  const auto ms = epoch_ms(t);
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

int64_t epoch_ms(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string new_uuid() { return Poco::UUIDGenerator::defaultGenerator().createRandom().toString(); }

EventStyle parse_event_style(std::string_view name) {
  if (name == "compact") return EventStyle::kCompact;
  if (name == "pretty") return EventStyle::kPrettyReordered;
  throw std::invalid_argument("event style must be compact or pretty: " + std::string(name));
}

namespace {

// A recursive-descent reader over JSON text that keeps every scalar token's bytes and writes the
// value back pretty-printed with each object's members reversed. Emulator-side only: its inputs
// are the factory's own events.
class PrettyReordered {
 public:
  explicit PrettyReordered(std::string_view json) : in_(json) {}

  std::string run() {
    std::string out;
    value(out, 0);
    skip_space();
    if (at_ != in_.size()) fail("content after the value");
    return out;
  }

 private:
  static constexpr int kMaxDepth = 64;

  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument("pretty_reordered: " + what + " at byte " + std::to_string(at_));
  }

  void skip_space() {
    while (at_ < in_.size() &&
           (in_[at_] == ' ' || in_[at_] == '\n' || in_[at_] == '\r' || in_[at_] == '\t')) {
      ++at_;
    }
  }

  char peek() {
    skip_space();
    if (at_ >= in_.size()) fail("unexpected end");
    return in_[at_];
  }

  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++at_;
  }

  // A string token's exact bytes, quotes included.
  std::string_view string_token() {
    if (peek() != '"') fail("expected a string");
    const size_t begin = at_++;
    while (at_ < in_.size() && in_[at_] != '"') at_ += in_[at_] == '\\' ? 2 : 1;
    if (at_ >= in_.size()) fail("unterminated string");
    ++at_;
    return in_.substr(begin, at_ - begin);
  }

  // A number, true, false or null: its bytes up to the next delimiter.
  std::string_view scalar_token() {
    const size_t begin = at_;
    while (at_ < in_.size() &&
           std::string_view(",}] \n\r\t").find(in_[at_]) == std::string_view::npos) {
      ++at_;
    }
    if (at_ == begin) fail("expected a value");
    return in_.substr(begin, at_ - begin);
  }

  static void indent(std::string& out, int depth) { out.append(size_t(depth) * 2, ' '); }

  void value(std::string& out, int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than 64");
    const char c = peek();
    if (c == '{') {
      object(out, depth);
    } else if (c == '[') {
      array(out, depth);
    } else if (c == '"') {
      out += string_token();
    } else {
      out += scalar_token();
    }
  }

  void object(std::string& out, int depth) {
    expect('{');
    std::vector<std::pair<std::string_view, std::string>> members;
    if (peek() != '}') {
      for (;;) {
        const std::string_view key = string_token();
        expect(':');
        std::string member;
        value(member, depth + 1);
        members.emplace_back(key, std::move(member));
        if (peek() == ',') {
          ++at_;
          continue;
        }
        break;
      }
    }
    expect('}');
    if (members.empty()) {
      out += "{}";
      return;
    }
    out += "{\n";
    for (size_t i = members.size(); i-- > 0;) {
      indent(out, depth + 1);
      out.append(members[i].first).append(" : ").append(members[i].second);
      out += i > 0 ? ",\n" : "\n";
    }
    indent(out, depth);
    out += '}';
  }

  void array(std::string& out, int depth) {
    expect('[');
    std::vector<std::string> items;
    if (peek() != ']') {
      for (;;) {
        std::string item;
        value(item, depth + 1);
        items.push_back(std::move(item));
        if (peek() == ',') {
          ++at_;
          continue;
        }
        break;
      }
    }
    expect(']');
    if (items.empty()) {
      out += "[]";
      return;
    }
    out += "[\n";
    for (size_t i = 0; i < items.size(); ++i) {
      indent(out, depth + 1);
      out += items[i];
      out += i + 1 < items.size() ? ",\n" : "\n";
    }
    indent(out, depth);
    out += ']';
  }

  std::string_view in_;
  size_t at_ = 0;
};

}  // namespace

std::string pretty_reordered(std::string_view json) { return PrettyReordered(json).run(); }

Event EventFactory::styled(Event event) const {
  if (style_ == EventStyle::kPrettyReordered) event.text = pretty_reordered(event.text);
  return event;
}

LogFormat parse_log_format(std::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  if (name == "mixed") return LogFormat::kMixed;
  throw std::invalid_argument("log format must be text, json or mixed: " + std::string(name));
}

std::string FunctionInfo::arn() const {
  return "arn:aws:lambda:" + region + ":" + account_id + ":function:" + name;
}

std::string make_trace_header() {
  std::string hex = new_uuid();
  std::erase(hex, '-');
  return "Root=1-" + hex.substr(0, 8) + "-" + hex.substr(8, 24) +
         ";Parent=" + new_uuid().substr(0, 8) + hex.substr(24, 8) + ";Sampled=1";
}

std::string make_log_stream(std::string_view version, SystemTime now) {
  std::string hex = new_uuid();
  std::erase(hex, '-');
  return iso_time(now).substr(0, 10).replace(4, 1, "/").replace(7, 1, "/") + "/[" +
         std::string(version) + "]" + hex;
}

Event EventFactory::init_start() const {
  return styled(make_event(
      "platform.initStart",
      R"({"initializationType":)" + json_quote(initialization_type()) +
          R"(,"phase":"init","runtimeVersion":"provided:al2023.v1","functionName":)" +
          json_quote(function_.name) + R"(,"functionVersion":)" + json_quote(function_.version) +
          R"(,"instanceMaxMemory":)" + std::to_string(function_.memory_mb) + "}"));
}

Event EventFactory::telemetry_subscription(std::string_view extension,
                                           const std::vector<std::string>& types) const {
  return styled(make_event("platform.telemetrySubscription",
                           R"({"name":)" + json_quote(extension) +
                               R"(,"state":"Subscribed","types":)" + string_array(types) + "}"));
}

Event EventFactory::init_runtime_done(std::string_view status, std::string_view error_type) const {
  std::string record = R"({"initializationType":)" + json_quote(initialization_type()) +
                       R"(,"phase":"init","status":)" + json_quote(status);
  if (!error_type.empty()) record += R"(,"errorType":)" + json_quote(error_type);
  return styled(make_event("platform.initRuntimeDone", record + "}"));
}

Event EventFactory::extension(std::string_view name, std::string_view state,
                              const std::vector<std::string>& events) const {
  return styled(make_event("platform.extension", R"({"name":)" + json_quote(name) + R"(,"state":)" +
                                                     json_quote(state) + R"(,"events":)" +
                                                     string_array(events) + "}"));
}

Event EventFactory::init_report(std::string_view status, std::string_view error_type,
                                double duration_ms) const {
  std::string record = R"({"initializationType":)" + json_quote(initialization_type()) +
                       R"(,"phase":"init","status":)" + json_quote(status);
  if (!error_type.empty()) record += R"(,"errorType":)" + json_quote(error_type);
  record += R"(,"metrics":{"durationMs":)" + fixed(duration_ms, 3) + "}}";
  return styled(make_event("platform.initReport", record));
}

Event EventFactory::start(std::string_view request_id, std::string_view trace,
                          std::string_view tenant_id) const {
  std::string record = R"({"requestId":)" + json_quote(request_id) + R"(,"version":)" +
                       json_quote(function_.version);
  // RIE-LMI's InvokeStartData: requestId, version, functionArn, tracing.
  if (managed_instances_) record += R"(,"functionArn":)" + json_quote(function_.arn());
  record += R"(,"tracing":{"type":"X-Amzn-Trace-Id","value":)" + json_quote(trace) + "}";
  return styled(make_event("platform.start", record + tenant_field(tenant_id) + "}"));
}

Event EventFactory::function_log(std::string_view request_id, int invocation, int line,
                                 LogFormat format, std::string_view tenant_id) const {
  const auto now = std::chrono::system_clock::now();
  const std::string time = iso_time(now);
  const bool as_json = format == LogFormat::kJson || (format == LogFormat::kMixed && line % 2 == 1);
  if (as_json) {
    return styled(
        make_event(now, "function", json_record(time, request_id, tenant_id, invocation, line)));
  }
  const char* level = line % 7 == 6 ? "ERROR" : "INFO";
  return styled(make_event(now, "function",
                           json_quote(time + "\t" + std::string(request_id) + "\t" + level + "\t" +
                                      text_message(invocation, line))));
}

Event EventFactory::extension_log(std::string_view line) const {
  return styled(make_event("extension", json_quote(line)));
}

Event EventFactory::runtime_done(std::string_view request_id, std::string_view status,
                                 SystemTime started, double duration_ms,
                                 std::string_view tenant_id) const {
  return styled(make_event(
      "platform.runtimeDone",
      R"({"requestId":)" + json_quote(request_id) + R"(,"status":)" + json_quote(status) +
          R"(,"spans":)" + response_spans(started, duration_ms) + R"(,"metrics":{"durationMs":)" +
          fixed(duration_ms, 3) + R"(,"producedBytes":8})" + tenant_field(tenant_id) + "}"));
}

Event EventFactory::report(std::string_view request_id, std::string_view status,
                           std::string_view error_type, double duration_ms, double init_duration_ms,
                           std::string_view tenant_id) const {
  std::string record =
      R"({"requestId":)" + json_quote(request_id) + R"(,"status":)" + json_quote(status);
  if (!error_type.empty()) record += R"(,"errorType":)" + json_quote(error_type);
  record += R"(,"metrics":{"durationMs":)" + fixed(duration_ms, 3) + R"(,"billedDurationMs":)" +
            std::to_string(static_cast<int64_t>(std::ceil(duration_ms))) + R"(,"memorySizeMB":)" +
            std::to_string(function_.memory_mb) + R"(,"maxMemoryUsedMB":)" +
            std::to_string(std::min(function_.memory_mb, 64));
  if (init_duration_ms > 0) record += R"(,"initDurationMs":)" + fixed(init_duration_ms, 3);
  record += "}" + tenant_field(tenant_id) + "}";
  return styled(make_event("platform.report", record));
}

Event EventFactory::managed_report(std::string_view request_id, std::string_view status,
                                   SystemTime started, double duration_ms,
                                   std::string_view tenant_id) const {
  // Key order of RIE-LMI's ReportData and of the production fixture in lambda-protocol.md §4.7.
  return styled(make_event(
      "platform.report", R"({"requestId":)" + json_quote(request_id) + R"(,"status":)" +
                             json_quote(status) + R"(,"metrics":{"durationMs":)" +
                             fixed(duration_ms, 3) + R"(},"spans":)" +
                             response_spans(started, duration_ms) + tenant_field(tenant_id) + "}"));
}

Event EventFactory::logs_dropped(uint64_t records, uint64_t bytes, std::string_view reason) const {
  return styled(make_event("platform.logsDropped", R"({"droppedBytes":)" + std::to_string(bytes) +
                                                       R"(,"droppedRecords":)" +
                                                       std::to_string(records) + R"(,"reason":)" +
                                                       json_quote(reason) + "}"));
}

void EventLog::generated(const Event& event) {
  std::lock_guard lock(mu_);
  ++generated_by_type_[event.type];
}

void EventLog::queued(const Event& event) {
  std::lock_guard lock(mu_);
  ++queued_;
  if (keep_texts_) queued_texts_.push_back(event.text);
}

std::map<std::string, uint64_t> EventLog::generated_by_type() const {
  std::lock_guard lock(mu_);
  return generated_by_type_;
}

uint64_t EventLog::queued_count() const {
  std::lock_guard lock(mu_);
  return queued_;
}

std::vector<std::string> EventLog::queued_texts() const {
  std::lock_guard lock(mu_);
  return queued_texts_;
}

}  // namespace relay::emu
