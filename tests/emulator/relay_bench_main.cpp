// relay-bench: end-to-end measurements of an extension under the emulator. It drives a load,
// collects the extension's CPU time, memory and latencies, its own loss accounting (the
// `summary` line telemetry-relay writes at shutdown) and what a local collector got.
// It measures only; it asserts nothing.

#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "emulator.h"
#include "otlp_receiver.h"
#include "receiver.h"
#include "report.h"
#include "test_certs.h"

namespace {

constexpr const char* kUsage = R"(usage: relay-bench --extension PATH [options]

  --extension PATH         extension executable
  --invocations N          per run (default 20)
  --events-per-invoke N    function log lines per invocation (default 1000)
  --batches N              the lines come in N bursts spread over --runtime-ms (default 1)
  --burst-events N         N more function log lines at once in invocation 0 (default 0)
  --burst-every K          ... and in every K-th invocation after it (default 0: only once)
  --platform-queue N       batches the platform may hold for the listener before it drops
                           (platform.logsDropped); default 1000000, i.e. it never drops
  --runtime-ms N           simulated handler duration (default 50)
  --repeat N               runs; medians are reported too (default 3)
  --log-format F           text | json | mixed (default mixed)
  --https                  the collector serves HTTPS with a throwaway CA; the extension gets
                           RELAY_HTTP_CA_FILE = the system bundle
                           (/etc/ssl/certs/ca-certificates.crt, if present) plus that CA, and
                           DISPATCH_POST_URI = https://127.0.0.1:<port>
  --sink http|otlp         the sink measured (default http). otlp: RELAY_SINKS=otlp against a
                           local OTLP/HTTP receiver that reads and discards each body and
                           answers 200 at once (no decoding, so it costs next to nothing);
                           compare with --sink http for the otlp sink's added CPU per event
  --otlp-protocol P        protobuf | json (RELAY_OTLP_PROTOCOL http/P; default protobuf)
  --otlp-compression C     gzip | none (RELAY_OTLP_COMPRESSION; default gzip)
  --env KEY=VALUE          extra variable for the extension (repeatable)
  --no-freeze              do not SIGSTOP the extension between invocations
  --stderr PATH            the extension's stderr (default /dev/null)
  --json                   JSON only, no table
)";

constexpr const char* kSystemBundle = "/etc/ssl/certs/ca-certificates.crt";

// Per-sink counters of the extension's summary line shown in the table (all are in the JSON).
constexpr const char* kSinkCounters[] = {
    "received",        "delivered",           "dropped_by_cap",
    "dropped_by_sink", "dropped_at_shutdown", "dropped_disabled",
    "dropped_corrupt", "still_spooled",       "spooled",
    "balanced"};

using Values = std::vector<std::pair<std::string, double>>;

struct Run {
  relay::emu::Summary summary;
  relay::emu::ReceiverReport receiver;
  bool otlp = false;  // the otlp sink against the discarding receiver: no event texts to compare
  size_t otlp_requests = 0;
  size_t otlp_wire_bytes = 0;
  Poco::JSON::Object::Ptr relay;  // the extension's summary line, null when it wrote none
  Values values;
};

double number(const Poco::JSON::Object::Ptr& object, const std::string& key) {
  if (!object || !object->has(key)) return 0;
  const Poco::Dynamic::Var value = object->get(key);
  if (value.isBoolean()) return value.extract<bool>() ? 1 : 0;
  return value.isNumeric() ? value.convert<double>() : 0;
}

Values measure(const Run& r) {
  const relay::emu::Summary& s = r.summary;
  const double cpu_ms = s.cpu_user_ms + s.cpu_system_ms;
  const auto events = s.events_delivered;
  Values v{
      {"events_generated", double(s.events_generated())},
      {"events_to_listener", double(events)},
      {"mb_to_listener", double(s.bytes_delivered) / 1e6},
      {"platform_dropped", double(s.events_dropped)},
      {"cpu_ms", cpu_ms},
      {"cpu_us_per_event", events ? cpu_ms * 1000.0 / double(events) : 0},
      {"peak_rss_kb", double(s.max_rss_kb)},
      {"rss_after_init_kb", double(s.rss_after_init_kb)},
      {"idle_rss_kb", double(relay::emu::median_kb(s.frozen_rss_kb))},
      {"idle_rss_anon_kb", double(relay::emu::median_kb(s.frozen_rss_anon_kb))},
      {"register_ms", s.register_ms},
      {"init_ms", s.init_ms},
      {"listener_p50_ms", s.post_latency_ms.p50},
      {"listener_p99_ms", s.post_latency_ms.p99},
      {"invocations_measured", double(s.invoke_to_next_ms.count)},
      {"invoke_to_next_p50_ms", s.invoke_to_next_ms.p50},
      {"invoke_to_next_p99_ms", s.invoke_to_next_ms.p99},
      {"invoke_to_next_max_ms", s.invoke_to_next_ms.max},
  };
  v.emplace_back("shutdown_ms", s.shutdown_duration_ms);
  if (r.otlp) {
    // What reached the collector is counted by the extension's own accounting below.
    v.emplace_back("otlp_requests", double(r.otlp_requests));
    v.emplace_back("otlp_mb_sent", double(r.otlp_wire_bytes) / 1e6);
  } else {
    v.emplace_back("receiver_events", double(r.receiver.events));
    v.emplace_back("lost", double(r.receiver.check.missing));
    v.emplace_back("duplicated", double(r.receiver.check.duplicates));
  }

  // The extension's own accounting: dropped_* summed over its sinks, then each sink.
  v.emplace_back("relay_summary_seen", r.relay ? 1 : 0);
  v.emplace_back("relay_received_events", number(r.relay, "received_events"));
  v.emplace_back("relay_platform_logs_dropped", number(r.relay, "platform_logs_dropped"));
  Poco::JSON::Object::Ptr sinks = r.relay ? r.relay->getObject("sinks") : nullptr;
  double dropped = 0;
  Values per_sink;
  if (sinks) {
    for (const auto& [name, value] : *sinks) {
      Poco::JSON::Object::Ptr sink = sinks->getObject(name);
      for (const auto& [key, ignored] : *sink) {
        if (key.rfind("dropped_", 0) == 0) dropped += number(sink, key);
      }
      for (const char* counter : kSinkCounters) {
        per_sink.emplace_back(name + "." + counter, number(sink, counter));
      }
    }
  }
  v.emplace_back("relay_dropped", dropped);
  v.insert(v.end(), per_sink.begin(), per_sink.end());
  return v;
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// Metric names in first-seen order over every run (runs may differ in their sinks).
std::vector<std::string> metric_names(const std::vector<Run>& runs) {
  std::vector<std::string> names;
  for (const Run& run : runs) {
    for (const auto& [name, value] : run.values) {
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
  }
  return names;
}

double value_of(const Run& run, const std::string& name) {
  for (const auto& [key, value] : run.values) {
    if (key == name) return value;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  relay::emu::Options options;
  options.invocations = 20;
  options.logs_per_invoke = 1000;
  options.runtime_ms = 50;
  options.log_format = relay::emu::LogFormat::kMixed;
  options.stderr_path = "/dev/null";
  // The bench measures the extension: the platform holds whatever it has not sent yet.
  options.max_queued_batches = 1000000;
  int repeat = 3;
  bool json_only = false;
  bool https = false;
  std::string sink = "http";
  std::string otlp_protocol = "protobuf";
  std::string otlp_compression = "gzip";
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string_view flag = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(std::string(flag) + " needs a value");
        return argv[++i];
      };
      if (flag == "--extension") {
        options.extension_path = value();
      } else if (flag == "--invocations") {
        options.invocations = std::stoi(value());
      } else if (flag == "--events-per-invoke") {
        options.logs_per_invoke = std::stoi(value());
      } else if (flag == "--batches") {
        options.log_bursts = std::stoi(value());
      } else if (flag == "--burst-events") {
        options.burst_events = std::stoi(value());
      } else if (flag == "--burst-every") {
        options.burst_every = std::stoi(value());
      } else if (flag == "--platform-queue") {
        options.max_queued_batches = std::stoul(value());
      } else if (flag == "--runtime-ms") {
        options.runtime_ms = std::stoi(value());
      } else if (flag == "--repeat") {
        repeat = std::stoi(value());
      } else if (flag == "--log-format") {
        options.log_format = relay::emu::parse_log_format(value());
      } else if (flag == "--https") {
        https = true;
      } else if (flag == "--sink") {
        sink = value();
        if (sink != "http" && sink != "otlp") throw std::invalid_argument("--sink is http or otlp");
      } else if (flag == "--otlp-protocol") {
        otlp_protocol = value();
        if (otlp_protocol != "protobuf" && otlp_protocol != "json") {
          throw std::invalid_argument("--otlp-protocol is protobuf or json");
        }
      } else if (flag == "--otlp-compression") {
        otlp_compression = value();
        if (otlp_compression != "gzip" && otlp_compression != "none") {
          throw std::invalid_argument("--otlp-compression is gzip or none");
        }
      } else if (flag == "--env") {
        const std::string pair = value();
        const auto eq = pair.find('=');
        if (eq == std::string::npos) throw std::invalid_argument("--env needs KEY=VALUE");
        options.env[pair.substr(0, eq)] = pair.substr(eq + 1);
      } else if (flag == "--no-freeze") {
        options.freeze = false;
      } else if (flag == "--stderr") {
        options.stderr_path = value();
      } else if (flag == "--json") {
        json_only = true;
      } else {
        throw std::invalid_argument("unknown flag " + std::string(flag));
      }
    }
    if (options.extension_path.empty()) throw std::invalid_argument("--extension is required");
    if (https && sink == "otlp") throw std::invalid_argument("--https is for --sink http only");
  } catch (const std::exception& e) {
    std::cerr << "relay-bench: " << e.what() << "\n\n" << kUsage;
    return 2;
  }

  std::string cert_dir;
  relay::emu::Receiver::Options receiver_options;
  if (https) {
    char dir_template[] = "/tmp/relay-bench-tls-XXXXXX";
    if (::mkdtemp(dir_template) == nullptr) {
      std::cerr << "relay-bench: cannot create a folder for the test certificates\n";
      return 2;
    }
    cert_dir = dir_template;
    try {
      const relay::emu::TestCerts certs = relay::emu::make_test_certs(cert_dir);
      receiver_options.cert_path = certs.server_cert;
      receiver_options.key_path = certs.server_key;
      // The system bundle plus the throwaway CA: the extension loads what a real bundle holds
      // (~140 certificates), not just one.
      const std::string bundle = cert_dir + "/bundle.pem";
      {
        std::ofstream out(bundle);
        for (const std::string& part : {std::string(kSystemBundle), certs.ca_cert}) {
          std::ifstream in(part);
          out << in.rdbuf() << "\n";
        }
      }
      options.env.try_emplace("RELAY_HTTP_CA_FILE", bundle);
    } catch (const std::exception& e) {
      std::cerr << "relay-bench: " << e.what() << "\n";
      return 2;
    }
  }

  std::vector<Run> runs;
  for (int r = 0; r < repeat; ++r) {
    relay::emu::Receiver receiver(receiver_options);
    relay::emu::OtlpReceiver::Options otlp_options;
    otlp_options.decode = false;
    relay::emu::OtlpReceiver otlp(otlp_options);
    relay::emu::Options run_options = options;
    Run run;
    run.otlp = sink == "otlp";
    if (run.otlp) {
      otlp.start();
      run_options.env.try_emplace("RELAY_SINKS", "otlp");
      run_options.env.try_emplace("RELAY_OTLP_ENDPOINT", otlp.url());
      run_options.env.try_emplace("RELAY_OTLP_PROTOCOL", "http/" + otlp_protocol);
      run_options.env.try_emplace("RELAY_OTLP_COMPRESSION", otlp_compression);
    } else {
      receiver.start();
      run_options.env.try_emplace("DISPATCH_POST_URI", receiver.url());
    }
    try {
      run.summary = relay::emu::Emulator(run_options).run();
    } catch (const std::exception& e) {
      std::cerr << "relay-bench: " << e.what() << "\n";
      return 2;
    }
    if (run.otlp) {
      otlp.stop();
      run.otlp_requests = otlp.request_count();
      run.otlp_wire_bytes = otlp.wire_bytes();
    } else {
      run.receiver = relay::emu::receiver_report(receiver, run.summary);
      receiver.stop();
    }
    if (!run.summary.extension_summary.empty()) {
      try {
        run.relay = Poco::JSON::Parser()
                        .parse(run.summary.extension_summary)
                        .extract<Poco::JSON::Object::Ptr>();
      } catch (const Poco::Exception& e) {
        std::cerr << "relay-bench: run " << r << ": unreadable summary line (" << e.displayText()
                  << ")\n";
      }
    }
    if (!run.summary.clean(options.invocations)) {
      std::cerr << "relay-bench: run " << r
                << " was not clean (init: " << (run.summary.init_ok ? "ok" : run.summary.init_error)
                << ", fatal: " << run.summary.fatal_error << ", exit " << run.summary.exit_code
                << ")\n";
    }
    run.values = measure(run);
    runs.push_back(std::move(run));
  }
  if (!cert_dir.empty()) std::filesystem::remove_all(cert_dir);

  const std::vector<std::string> names = metric_names(runs);
  Poco::JSON::Object::Ptr root = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  Poco::JSON::Object::Ptr config = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  config->set("extension", options.extension_path);
  config->set("invocations", options.invocations);
  config->set("events_per_invoke", options.logs_per_invoke);
  config->set("batches", options.log_bursts);
  config->set("burst_events", options.burst_events);
  config->set("burst_every", options.burst_every);
  config->set("platform_queue", options.max_queued_batches);
  config->set("runtime_ms", options.runtime_ms);
  config->set("https", https);
  config->set("sink", sink);
  if (sink == "otlp") {
    config->set("otlp_protocol", otlp_protocol);
    config->set("otlp_compression", otlp_compression);
  }
  config->set("freeze", options.freeze);
  config->set("repeat", repeat);
  root->set("config", config);
  Poco::JSON::Array json_runs;
  for (const Run& run : runs) {
    Poco::JSON::Object::Ptr entry = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    for (const auto& [name, value] : run.values) entry->set(name, value);
    entry->set("clean", run.summary.clean(options.invocations));
    if (run.relay) entry->set("extension_summary", run.relay);
    json_runs.add(entry);
  }
  root->set("runs", json_runs);
  Poco::JSON::Object::Ptr medians = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  for (const std::string& name : names) {
    std::vector<double> values;
    for (const Run& run : runs) values.push_back(value_of(run, name));
    medians->set(name, median(values));
  }
  root->set("median", medians);
  std::cout << relay::emu::to_json(root) << "\n";

  if (!json_only) {
    std::printf("\n%-36s", "metric");
    for (size_t r = 0; r < runs.size(); ++r)
      std::printf(" %12s", ("run " + std::to_string(r)).c_str());
    std::printf(" %12s\n", "median");
    for (const std::string& name : names) {
      std::printf("%-36s", name.c_str());
      std::vector<double> values;
      for (const Run& run : runs) {
        values.push_back(value_of(run, name));
        std::printf(" %12.2f", values.back());
      }
      std::printf(" %12.2f\n", median(values));
    }
  }
  return 0;
}
