#include "otlp_report.h"

#include <Poco/JSON/Array.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "events.h"

namespace relay::emu {
namespace {

namespace logs_pb = opentelemetry::proto::logs::v1;
namespace metrics_pb = opentelemetry::proto::metrics::v1;

constexpr size_t kBodyChars = 100;

std::string without_prefix(const std::string& name, std::string_view prefix) {
  return name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
}

std::string time_text(uint64_t unix_nano) {
  if (unix_nano == 0) return "-";
  return iso_time(SystemTime(std::chrono::duration_cast<SystemTime::duration>(
      std::chrono::nanoseconds(static_cast<int64_t>(unix_nano)))));
}

double ms_between(uint64_t start, uint64_t end) {
  return end >= start ? static_cast<double>(end - start) / 1e6 : -1;
}

std::string fixed(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

std::string shortened(std::string text, size_t chars) {
  for (char& c : text) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  if (text.size() > chars) text = text.substr(0, chars) + "...";
  return text;
}

std::string severity_of(const otlp_pb::LogRecord& record) {
  if (!record.severity_text().empty()) return record.severity_text();
  const std::string name = logs_pb::SeverityNumber_Name(record.severity_number());
  return name.empty() ? std::to_string(record.severity_number())
                      : without_prefix(name, "SEVERITY_NUMBER_");
}

std::string attribute_text(const google::protobuf::RepeatedPtrField<otlp_pb::KeyValue>& attributes,
                           std::string_view key) {
  const otlp_pb::AnyValue* value = find_attribute(attributes, key);
  return value ? any_value_text(*value) : "";
}

Poco::JSON::Object::Ptr attributes_object(
    const google::protobuf::RepeatedPtrField<otlp_pb::KeyValue>& attributes) {
  Poco::JSON::Object::Ptr object = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  for (const auto& kv : attributes) object->set(kv.key(), any_value_text(kv.value()));
  return object;
}

std::string attributes_line(
    const google::protobuf::RepeatedPtrField<otlp_pb::KeyValue>& attributes) {
  std::string out;
  for (const auto& kv : attributes) {
    if (!out.empty()) out += ", ";
    out += kv.key() + "=" + any_value_text(kv.value());
  }
  return out;
}

// One span in a trace's tree, depth-first.
struct TreeSpan {
  const otlp_pb::Span* span;
  int depth;
};

struct Trace {
  std::string trace_id;
  std::vector<TreeSpan> spans;
};

// Traces in first-seen order, each as its spans depth-first from the roots (a span whose parent
// is not in the trace, e.g. the invocation span under X-Ray's Parent, is a root).
std::vector<Trace> trace_trees(const std::vector<OtlpSpan>& spans, size_t max_traces) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<const otlp_pb::Span*>> by_trace;
  for (const auto& item : spans) {
    const std::string id = hex_id(item.item.trace_id());
    if (!by_trace.contains(id)) order.push_back(id);
    by_trace[id].push_back(&item.item);
  }
  std::vector<Trace> traces;
  for (const std::string& id : order) {
    if (traces.size() >= max_traces) break;
    const auto& members = by_trace[id];
    Trace trace{id, {}};
    auto has_span = [&](const std::string& span_id) {
      return std::any_of(members.begin(), members.end(),
                         [&](const otlp_pb::Span* s) { return s->span_id() == span_id; });
    };
    auto add = [&](auto&& self, const otlp_pb::Span* span, int depth) -> void {
      trace.spans.push_back(TreeSpan{span, depth});
      if (depth > 16) return;  // a cycle in bad input must not recurse forever
      for (const otlp_pb::Span* child : members) {
        if (child != span && child->parent_span_id() == span->span_id())
          self(self, child, depth + 1);
      }
    };
    for (const otlp_pb::Span* span : members) {
      if (span->parent_span_id().empty() || !has_span(span->parent_span_id())) add(add, span, 0);
    }
    traces.push_back(std::move(trace));
  }
  return traces;
}

std::string kind_of(const otlp_pb::Span& span) {
  return without_prefix(otlp_pb::Span::SpanKind_Name(span.kind()), "SPAN_KIND_");
}

std::string status_of(const otlp_pb::Span& span) {
  std::string status =
      without_prefix(opentelemetry::proto::trace::v1::Status::StatusCode_Name(span.status().code()),
                     "STATUS_CODE_");
  if (!span.status().message().empty()) status += " (" + span.status().message() + ")";
  return status;
}

// One metric's data points in a line: Sum and Gauge values, Histogram count/sum/min/max.
struct MetricSummary {
  std::string kind;
  std::string temporality;
  size_t points = 0;
  double value = 0;  // Sum: total; Gauge: last
  uint64_t count = 0;
  double sum = 0;
  double min = 0;
  double max = 0;
  bool has_min_max = false;
  std::string attributes;  // of the first point
};

double number_of(const metrics_pb::NumberDataPoint& point) {
  return point.value_case() == metrics_pb::NumberDataPoint::kAsInt
             ? static_cast<double>(point.as_int())
             : point.as_double();
}

std::string temporality_of(metrics_pb::AggregationTemporality temporality) {
  return without_prefix(metrics_pb::AggregationTemporality_Name(temporality),
                        "AGGREGATION_TEMPORALITY_");
}

// Metrics by name in first-seen order, their points summed over every request.
std::vector<std::pair<std::string, MetricSummary>> metric_summaries(
    const std::vector<OtlpMetric>& metrics, std::map<std::string, std::string>& units) {
  std::vector<std::pair<std::string, MetricSummary>> out;
  for (const auto& item : metrics) {
    const otlp_pb::Metric& metric = item.item;
    auto it =
        std::find_if(out.begin(), out.end(), [&](auto& p) { return p.first == metric.name(); });
    if (it == out.end()) {
      out.emplace_back(metric.name(), MetricSummary{});
      it = std::prev(out.end());
      units[metric.name()] = metric.unit();
    }
    MetricSummary& s = it->second;
    auto first_attributes = [&](const auto& points) {
      if (s.points == 0 && !points.empty()) s.attributes = attributes_line(points[0].attributes());
    };
    if (metric.has_sum()) {
      s.kind = "Sum";
      s.temporality = temporality_of(metric.sum().aggregation_temporality());
      first_attributes(metric.sum().data_points());
      for (const auto& point : metric.sum().data_points()) s.value += number_of(point);
      s.points += static_cast<size_t>(metric.sum().data_points_size());
    } else if (metric.has_gauge()) {
      s.kind = "Gauge";
      first_attributes(metric.gauge().data_points());
      for (const auto& point : metric.gauge().data_points()) s.value = number_of(point);
      s.points += static_cast<size_t>(metric.gauge().data_points_size());
    } else if (metric.has_histogram()) {
      s.kind = "Histogram";
      s.temporality = temporality_of(metric.histogram().aggregation_temporality());
      first_attributes(metric.histogram().data_points());
      for (const auto& point : metric.histogram().data_points()) {
        s.count += point.count();
        s.sum += point.sum();
        if (point.has_min() && point.has_max()) {
          s.min = s.has_min_max ? std::min(s.min, point.min()) : point.min();
          s.max = s.has_min_max ? std::max(s.max, point.max()) : point.max();
          s.has_min_max = true;
        }
      }
      s.points += static_cast<size_t>(metric.histogram().data_points_size());
    } else {
      s.kind = "other";
    }
  }
  return out;
}

std::string value_line(const MetricSummary& s) {
  if (s.kind == "Histogram") {
    std::string line = "count " + std::to_string(s.count) + ", sum " + fixed(s.sum, 4);
    if (s.has_min_max) line += ", min " + fixed(s.min, 4) + ", max " + fixed(s.max, 4);
    return line;
  }
  return fixed(s.value, s.value == static_cast<double>(static_cast<int64_t>(s.value)) ? 0 : 4);
}

struct SignalCounts {
  size_t requests = 0;
  size_t accepted = 0;
  size_t items = 0;
  size_t wire_bytes = 0;
};

std::map<OtlpSignal, SignalCounts> signal_counts(const OtlpReceiver& receiver) {
  std::map<OtlpSignal, SignalCounts> counts;
  for (const auto& request : receiver.requests()) {
    if (!request.signal) continue;
    SignalCounts& c = counts[*request.signal];
    c.requests++;
    c.wire_bytes += request.wire_bytes;
    if (request.status >= 200 && request.status < 300) {
      c.accepted++;
      c.items += request.items;
    }
  }
  return counts;
}

// The resource and scope to show once: of the last item of each signal, the one with the most
// resource attributes (cloud.account.id, for one, is known only after the first INVOKE).
std::optional<OtlpLogRecord> first_resource(const std::vector<OtlpLogRecord>& logs,
                                            const std::vector<OtlpSpan>& spans,
                                            const std::vector<OtlpMetric>& metrics) {
  std::optional<OtlpLogRecord> best;
  auto consider = [&](const otlp_pb::Resource& resource,
                      const otlp_pb::InstrumentationScope& scope) {
    if (!best || resource.attributes_size() > best->resource.attributes_size()) {
      best = OtlpLogRecord{resource, scope, {}};
    }
  };
  if (!logs.empty()) consider(logs.back().resource, logs.back().scope);
  if (!spans.empty()) consider(spans.back().resource, spans.back().scope);
  if (!metrics.empty()) consider(metrics.back().resource, metrics.back().scope);
  return best;
}

}  // namespace

Poco::JSON::Object::Ptr otlp_report_object(const OtlpReceiver& receiver,
                                           const OtlpReportOptions& options) {
  const auto logs = receiver.log_records();
  const auto spans = receiver.spans();
  const auto metrics = receiver.metrics();
  Poco::JSON::Object::Ptr root = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  root->set("endpoint", receiver.url());

  Poco::JSON::Object::Ptr signals = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  const auto counts = signal_counts(receiver);
  for (const OtlpSignal signal : kOtlpSignals) {
    const auto it = counts.find(signal);
    const SignalCounts c = it == counts.end() ? SignalCounts{} : it->second;
    Poco::JSON::Object::Ptr entry = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    entry->set("requests", c.requests);
    entry->set("accepted", c.accepted);
    entry->set("items", c.items);
    entry->set("wire_bytes", c.wire_bytes);
    signals->set(std::string(signal_name(signal)), entry);
  }
  root->set("signals", signals);

  if (const auto first = first_resource(logs, spans, metrics)) {
    root->set("resource", attributes_object(first->resource.attributes()));
    Poco::JSON::Object::Ptr scope = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    scope->set("name", first->scope.name());
    scope->set("version", first->scope.version());
    root->set("scope", scope);
  }

  Poco::JSON::Array::Ptr log_array = new Poco::JSON::Array;
  for (size_t i = 0; i < logs.size() && i < options.log_records; ++i) {
    const otlp_pb::LogRecord& r = logs[i].item;
    Poco::JSON::Object::Ptr entry = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    entry->set("time", time_text(r.time_unix_nano()));
    entry->set("severity", severity_of(r));
    entry->set("body", any_value_text(r.body()));
    entry->set("trace_id", hex_id(r.trace_id()));
    entry->set("span_id", hex_id(r.span_id()));
    entry->set("attributes", attributes_object(r.attributes()));
    log_array->add(entry);
  }
  root->set("log_records", log_array);

  Poco::JSON::Array::Ptr trace_array = new Poco::JSON::Array;
  for (const Trace& trace : trace_trees(spans, options.traces)) {
    Poco::JSON::Object::Ptr entry = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    entry->set("trace_id", trace.trace_id);
    Poco::JSON::Array::Ptr tree = new Poco::JSON::Array;
    for (const TreeSpan& t : trace.spans) {
      Poco::JSON::Object::Ptr span = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
      span->set("depth", t.depth);
      span->set("name", t.span->name());
      span->set("kind", kind_of(*t.span));
      span->set("span_id", hex_id(t.span->span_id()));
      span->set("parent_span_id", hex_id(t.span->parent_span_id()));
      span->set("duration_ms",
                ms_between(t.span->start_time_unix_nano(), t.span->end_time_unix_nano()));
      span->set("status", status_of(*t.span));
      span->set("attributes", attributes_object(t.span->attributes()));
      tree->add(span);
    }
    entry->set("spans", tree);
    trace_array->add(entry);
  }
  root->set("traces", trace_array);

  std::map<std::string, std::string> units;
  Poco::JSON::Array::Ptr metric_array = new Poco::JSON::Array;
  for (const auto& [name, s] : metric_summaries(metrics, units)) {
    Poco::JSON::Object::Ptr entry = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    entry->set("name", name);
    entry->set("kind", s.kind);
    entry->set("unit", units[name]);
    entry->set("temporality", s.temporality);
    entry->set("points", s.points);
    if (s.kind == "Histogram") {
      entry->set("count", s.count);
      entry->set("sum", s.sum);
      if (s.has_min_max) {
        entry->set("min", s.min);
        entry->set("max", s.max);
      }
    } else {
      entry->set("value", s.value);
    }
    entry->set("attributes", s.attributes);
    metric_array->add(entry);
  }
  root->set("metrics", metric_array);
  return root;
}

void print_otlp_report(std::ostream& out, const OtlpReceiver& receiver,
                       const OtlpReportOptions& options) {
  const auto logs = receiver.log_records();
  const auto spans = receiver.spans();
  const auto metrics = receiver.metrics();
  char line[256];

  out << "\nOTLP receiver " << receiver.url() << "\n";
  std::snprintf(line, sizeof line, "  %-8s %9s %9s %9s %12s\n", "signal", "requests", "accepted",
                "items", "wire bytes");
  out << line;
  const auto counts = signal_counts(receiver);
  for (const OtlpSignal signal : kOtlpSignals) {
    const auto it = counts.find(signal);
    const SignalCounts c = it == counts.end() ? SignalCounts{} : it->second;
    std::snprintf(line, sizeof line, "  %-8s %9zu %9zu %9zu %12zu\n",
                  std::string(signal_name(signal)).c_str(), c.requests, c.accepted, c.items,
                  c.wire_bytes);
    out << line;
  }
  for (const auto& request : receiver.requests()) {
    if (!request.error.empty()) {
      out << "  refused " << request.uri << ": " << request.status << " " << request.error << "\n";
    }
  }

  if (const auto first = first_resource(logs, spans, metrics)) {
    out << "resource:\n";
    for (const auto& kv : first->resource.attributes()) {
      out << "  " << kv.key() << " = " << any_value_text(kv.value()) << "\n";
    }
    out << "scope: " << first->scope.name() << " " << first->scope.version() << "\n";
  }

  out << "log records (" << std::min(options.log_records, logs.size()) << " of " << logs.size()
      << "):\n";
  for (size_t i = 0; i < logs.size() && i < options.log_records; ++i) {
    const otlp_pb::LogRecord& r = logs[i].item;
    const std::string invocation = attribute_text(r.attributes(), "faas.invocation_id");
    const std::string trace = hex_id(r.trace_id());
    out << "  " << time_text(r.time_unix_nano()) << " " << severity_of(r)
        << (invocation.empty() ? "" : " invocation " + invocation)
        << (trace.empty() ? "" : " trace " + trace) << "\n      "
        << shortened(any_value_text(r.body()), kBodyChars) << "\n";
  }

  const auto traces = trace_trees(spans, options.traces);
  out << "traces (" << traces.size() << " shown, " << spans.size() << " spans in all):\n";
  for (const Trace& trace : traces) {
    out << "  trace " << trace.trace_id << "\n";
    for (const TreeSpan& t : trace.spans) {
      const otlp_pb::Span& s = *t.span;
      out << "    " << std::string(static_cast<size_t>(t.depth) * 2, ' ') << s.name() << "  "
          << kind_of(s) << "  "
          << fixed(ms_between(s.start_time_unix_nano(), s.end_time_unix_nano()), 3) << " ms  "
          << status_of(s);
      const std::string attributes = attributes_line(s.attributes());
      if (!attributes.empty()) out << "  [" << attributes << "]";
      out << "\n";
    }
  }

  std::map<std::string, std::string> units;
  const auto summaries = metric_summaries(metrics, units);
  out << "metrics (" << summaries.size() << "):\n";
  for (const auto& [name, s] : summaries) {
    out << "  " << name << "  " << s.kind << (s.temporality.empty() ? "" : " " + s.temporality)
        << (units[name].empty() ? "" : " " + units[name]) << ": " << value_line(s) << " ("
        << s.points << " point" << (s.points == 1 ? "" : "s") << ")"
        << (s.attributes.empty() ? "" : "  [" + s.attributes + "]") << "\n";
  }
}

}  // namespace relay::emu
