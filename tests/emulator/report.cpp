#include "report.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>

namespace relay::emu {
namespace {

Poco::JSON::Object::Ptr ordered_object() {
  return new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
}

Poco::JSON::Object::Ptr counts_object(const std::map<std::string, uint64_t>& counts) {
  auto object = ordered_object();
  for (const auto& [type, count] : counts) object->set(type, count);
  return object;
}

std::string format_ms(double ms) {
  if (ms < 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f ms", ms);
  return buf;
}

std::string format_percentiles(const Percentiles& p) {
  if (p.count == 0) return "-";
  char buf[96];
  std::snprintf(buf, sizeof buf, "p50 %.2f ms  p99 %.2f ms  max %.2f ms  (n=%zu)", p.p50, p.p99,
                p.max, p.count);
  return buf;
}

}  // namespace

long median_kb(std::vector<long> samples) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

namespace {

std::string exit_status(const Summary& s) {
  if (!s.exited) return "still running";
  std::string text = s.exit_signal ? "killed by signal " + std::to_string(s.exit_signal)
                                   : "exit code " + std::to_string(s.exit_code);
  if (s.killed) text += " (SIGKILL by the emulator)";
  if (s.shutdown_sent) text += s.exited_before_deadline ? ", before the deadline" : ", late";
  return text;
}

void row(std::ostream& out, const std::string& label, const std::string& value) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "  %-34s ", label.c_str());
  out << buf << value << "\n";
}

}  // namespace

ReceiverReport receiver_report(const Receiver& receiver, const Summary& summary) {
  ReceiverReport report;
  report.requests = receiver.request_count();
  const auto received = receiver.event_texts();
  report.events = received.size();
  report.check = check_delivery(summary.subscriber_events, received);
  return report;
}

Poco::JSON::Object::Ptr percentiles_object(const Percentiles& p) {
  auto object = ordered_object();
  object->set("count", p.count);
  object->set("p50", p.p50);
  object->set("p99", p.p99);
  object->set("max", p.max);
  return object;
}

Poco::JSON::Object::Ptr summary_object(const Summary& s, const ReceiverReport* receiver) {
  auto root = ordered_object();
  auto init = ordered_object();
  init->set("ok", s.init_ok);
  init->set("error", s.init_error);
  init->set("registered", s.registered);
  init->set("extension_name", s.extension_name);
  init->set("subscribe_status", s.subscribe_status);
  init->set("schema_version", s.schema_version);
  Poco::JSON::Array types;
  for (const auto& type : s.subscribed_types) types.add(type);
  init->set("subscribed_types", types);
  init->set("register_ms", s.register_ms);
  init->set("init_ms", s.init_ms);
  root->set("init", init);

  auto invocations = ordered_object();
  invocations->set("managed_instances", s.managed_instances);
  invocations->set("completed", s.invocations_completed);
  invocations->set("max_in_flight", s.max_in_flight);
  invocations->set("fatal_error", s.fatal_error);
  invocations->set("freezes", s.freezes);
  invocations->set("invoke_to_next_ms", percentiles_object(s.invoke_to_next_ms));
  Poco::JSON::Array errors;
  for (const auto& call : s.error_calls) {
    auto entry = ordered_object();
    entry->set("path", call.path);
    entry->set("error_type", call.error_type);
    errors.add(entry);
  }
  invocations->set("error_calls", errors);
  root->set("invocations", invocations);

  auto telemetry = ordered_object();
  telemetry->set("generated", s.events_generated());
  telemetry->set("generated_by_type", counts_object(s.generated_by_type));
  telemetry->set("for_subscriber", s.events_for_subscriber);
  telemetry->set("delivered", s.events_delivered);
  telemetry->set("bytes_delivered", s.bytes_delivered);
  telemetry->set("delivered_by_type", counts_object(s.delivered_by_type));
  telemetry->set("posts_ok", s.posts_ok);
  telemetry->set("posts_failed", s.posts_failed);
  telemetry->set("retries", s.post_retries);
  telemetry->set("batches_dropped", s.batches_dropped);
  telemetry->set("events_dropped", s.events_dropped);
  telemetry->set("post_latency_ms", percentiles_object(s.post_latency_ms));
  root->set("telemetry", telemetry);

  if (receiver) {
    auto r = ordered_object();
    r->set("requests", receiver->requests);
    r->set("events", receiver->events);
    r->set("missing", receiver->check.missing);
    r->set("duplicates", receiver->check.duplicates);
    r->set("unexpected", receiver->check.unexpected);
    root->set("receiver", r);
  }

  auto exit = ordered_object();
  exit->set("shutdown_sent", s.shutdown_sent);
  exit->set("exited", s.exited);
  exit->set("exit_code", s.exit_code);
  exit->set("signal", s.exit_signal);
  exit->set("killed", s.killed);
  exit->set("before_deadline", s.exited_before_deadline);
  exit->set("shutdown_ms", s.shutdown_duration_ms);
  exit->set("cpu_user_ms", s.cpu_user_ms);
  exit->set("cpu_system_ms", s.cpu_system_ms);
  exit->set("max_rss_kb", static_cast<int64_t>(s.max_rss_kb));
  exit->set("rss_after_init_kb", static_cast<int64_t>(s.rss_after_init_kb));
  exit->set("rss_anon_after_init_kb", static_cast<int64_t>(s.rss_anon_after_init_kb));
  exit->set("idle_rss_kb", static_cast<int64_t>(median_kb(s.frozen_rss_kb)));
  exit->set("idle_rss_anon_kb", static_cast<int64_t>(median_kb(s.frozen_rss_anon_kb)));
  root->set("extension", exit);
  if (!s.extension_summary.empty()) {
    try {
      root->set("extension_summary", Poco::JSON::Parser().parse(s.extension_summary));
    } catch (const Poco::Exception&) {
      root->set("extension_summary", s.extension_summary);  // as written, if it is not JSON
    }
  }
  return root;
}

std::string to_json(const Poco::JSON::Object::Ptr& object, unsigned indent) {
  std::ostringstream out;
  object->stringify(out, indent);
  return out.str();
}

void print_summary(std::ostream& out, const Summary& s, const ReceiverReport* receiver) {
  out << "Init\n";
  row(out, "registered as", s.registered ? s.extension_name : "(never registered)");
  row(out, "init", s.init_ok ? "ok" : "FAILED: " + s.init_error);
  row(out, "subscribe answer", s.subscribe_status ? std::to_string(s.subscribe_status) : "-");
  row(out, "process start -> register", format_ms(s.register_ms));
  row(out, "process start -> first next", format_ms(s.init_ms));

  out << (s.managed_instances ? "Invocations (Managed Instances)\n" : "Invocations\n");
  row(out, "completed",
      std::to_string(s.invocations_completed) +
          (s.fatal_error.empty() ? "" : "  (" + s.fatal_error + ")"));
  if (s.managed_instances) {
    row(out, "most in flight", std::to_string(s.max_in_flight));
  } else {
    row(out, "INVOKE -> next", format_percentiles(s.invoke_to_next_ms));
  }
  for (const auto& call : s.error_calls) row(out, call.path, call.error_type);

  out << "Telemetry (events)\n";
  std::set<std::string> types;
  for (const auto& [type, count] : s.generated_by_type) types.insert(type);
  char buf[96];
  std::snprintf(buf, sizeof buf, "  %-34s %10s %10s\n", "type", "generated", "delivered");
  out << buf;
  for (const auto& type : types) {
    const auto delivered = s.delivered_by_type.find(type);
    std::snprintf(buf, sizeof buf, "  %-34s %10llu %10llu\n", type.c_str(),
                  static_cast<unsigned long long>(s.generated_by_type.at(type)),
                  static_cast<unsigned long long>(
                      delivered == s.delivered_by_type.end() ? 0 : delivered->second));
    out << buf;
  }
  std::snprintf(buf, sizeof buf, "  %-34s %10llu %10llu\n", "total",
                static_cast<unsigned long long>(s.events_generated()),
                static_cast<unsigned long long>(s.events_delivered));
  out << buf;
  row(out, "for the subscriber", std::to_string(s.events_for_subscriber));
  row(out, "POSTs ok / failed / retries",
      std::to_string(s.posts_ok) + " / " + std::to_string(s.posts_failed) + " / " +
          std::to_string(s.post_retries));
  row(out, "dropped (batches / events)",
      std::to_string(s.batches_dropped) + " / " + std::to_string(s.events_dropped));
  row(out, "listener answer", format_percentiles(s.post_latency_ms));

  if (receiver) {
    out << "Receiver\n";
    row(out, "requests", std::to_string(receiver->requests));
    row(out, "events (accepted)", std::to_string(receiver->events));
    row(out, "missing / duplicates / unexpected",
        std::to_string(receiver->check.missing) + " / " +
            std::to_string(receiver->check.duplicates) + " / " +
            std::to_string(receiver->check.unexpected));
  }

  out << "Extension\n";
  row(out, "exit", exit_status(s));
  row(out, "SHUTDOWN -> exit", format_ms(s.shutdown_duration_ms));
  std::snprintf(buf, sizeof buf, "%.1f ms user, %.1f ms system, peak RSS %ld KiB", s.cpu_user_ms,
                s.cpu_system_ms, s.max_rss_kb);
  row(out, "resources", buf);
  std::snprintf(buf, sizeof buf, "after init %ld KiB (%ld anon), frozen median %ld KiB (%ld anon)",
                s.rss_after_init_kb, s.rss_anon_after_init_kb, median_kb(s.frozen_rss_kb),
                median_kb(s.frozen_rss_anon_kb));
  row(out, "resident memory", buf);
  if (!s.extension_summary.empty()) row(out, "extension summary", s.extension_summary);
}

}  // namespace relay::emu
