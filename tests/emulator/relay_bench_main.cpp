// relay-bench: end-to-end measurements of an extension under the emulator. It drives a load,
// collects the extension's CPU time, peak RSS and latencies, and what a local collector got.
// It measures only; it asserts nothing.

#include <Poco/JSON/Array.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "emulator.h"
#include "receiver.h"
#include "report.h"

namespace {

constexpr const char* kUsage = R"(usage: relay-bench --extension PATH [options]

  --extension PATH         extension executable
  --invocations N          per run (default 20)
  --events-per-invoke N    function log lines per invocation (default 1000)
  --batches N              the lines come in N bursts spread over --runtime-ms (default 1)
  --runtime-ms N           simulated handler duration (default 50)
  --repeat N               runs; medians are reported too (default 3)
  --log-format F           text | json | mixed (default mixed)
  --env KEY=VALUE          extra variable for the extension (repeatable)
  --no-freeze              do not SIGSTOP the extension between invocations
  --stderr PATH            the extension's stderr (default /dev/null)
  --json                   JSON only, no table
)";

struct Run {
  relay::emu::Summary summary;
  relay::emu::ReceiverReport receiver;

  double cpu_ms() const { return summary.cpu_user_ms + summary.cpu_system_ms; }
  double cpu_us_per_event() const {
    const auto events = summary.events_delivered;
    return events ? cpu_ms() * 1000.0 / static_cast<double>(events) : 0;
  }
};

struct Metric {
  const char* name;
  double (*value)(const Run&);
};

const std::vector<Metric>& metrics() {
  static const std::vector<Metric> all{
      {"events_to_listener", [](const Run& r) { return double(r.summary.events_delivered); }},
      {"cpu_ms", [](const Run& r) { return r.cpu_ms(); }},
      {"cpu_us_per_event", [](const Run& r) { return r.cpu_us_per_event(); }},
      {"peak_rss_kb", [](const Run& r) { return double(r.summary.max_rss_kb); }},
      {"init_ms", [](const Run& r) { return r.summary.init_ms; }},
      {"listener_p50_ms", [](const Run& r) { return r.summary.post_latency_ms.p50; }},
      {"listener_p99_ms", [](const Run& r) { return r.summary.post_latency_ms.p99; }},
      {"invoke_to_next_p50_ms", [](const Run& r) { return r.summary.invoke_to_next_ms.p50; }},
      {"invoke_to_next_p99_ms", [](const Run& r) { return r.summary.invoke_to_next_ms.p99; }},
      {"shutdown_ms", [](const Run& r) { return r.summary.shutdown_duration_ms; }},
      {"receiver_events", [](const Run& r) { return double(r.receiver.events); }},
      {"lost", [](const Run& r) { return double(r.receiver.check.missing); }},
      {"duplicated", [](const Run& r) { return double(r.receiver.check.duplicates); }},
  };
  return all;
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  relay::emu::Options options;
  options.invocations = 20;
  options.logs_per_invoke = 1000;
  options.runtime_ms = 50;
  options.log_format = relay::emu::LogFormat::kMixed;
  options.stderr_path = "/dev/null";
  int repeat = 3;
  bool json_only = false;
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
      } else if (flag == "--runtime-ms") {
        options.runtime_ms = std::stoi(value());
      } else if (flag == "--repeat") {
        repeat = std::stoi(value());
      } else if (flag == "--log-format") {
        options.log_format = relay::emu::parse_log_format(value());
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
  } catch (const std::exception& e) {
    std::cerr << "relay-bench: " << e.what() << "\n\n" << kUsage;
    return 2;
  }

  std::vector<Run> runs;
  for (int r = 0; r < repeat; ++r) {
    relay::emu::Receiver receiver;
    receiver.start();
    relay::emu::Options run_options = options;
    run_options.env.try_emplace("DISPATCH_POST_URI", receiver.url());
    Run run;
    try {
      run.summary = relay::emu::Emulator(run_options).run();
    } catch (const std::exception& e) {
      std::cerr << "relay-bench: " << e.what() << "\n";
      return 2;
    }
    run.receiver = relay::emu::receiver_report(receiver, run.summary);
    receiver.stop();
    if (!run.summary.clean(options.invocations)) {
      std::cerr << "relay-bench: run " << r
                << " was not clean (init: " << (run.summary.init_ok ? "ok" : run.summary.init_error)
                << ", fatal: " << run.summary.fatal_error << ", exit " << run.summary.exit_code
                << ")\n";
    }
    runs.push_back(std::move(run));
  }

  Poco::JSON::Object::Ptr root = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  Poco::JSON::Object::Ptr config = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  config->set("extension", options.extension_path);
  config->set("invocations", options.invocations);
  config->set("events_per_invoke", options.logs_per_invoke);
  config->set("batches", options.log_bursts);
  config->set("runtime_ms", options.runtime_ms);
  config->set("freeze", options.freeze);
  config->set("repeat", repeat);
  root->set("config", config);
  Poco::JSON::Array json_runs;
  for (const Run& run : runs) {
    Poco::JSON::Object::Ptr entry = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    for (const Metric& metric : metrics()) entry->set(metric.name, metric.value(run));
    entry->set("clean", run.summary.clean(options.invocations));
    json_runs.add(entry);
  }
  root->set("runs", json_runs);
  Poco::JSON::Object::Ptr medians = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  for (const Metric& metric : metrics()) {
    std::vector<double> values;
    for (const Run& run : runs) values.push_back(metric.value(run));
    medians->set(metric.name, median(values));
  }
  root->set("median", medians);
  std::cout << relay::emu::to_json(root) << "\n";

  if (!json_only) {
    std::printf("\n%-24s", "metric");
    for (size_t r = 0; r < runs.size(); ++r)
      std::printf(" %12s", ("run " + std::to_string(r)).c_str());
    std::printf(" %12s\n", "median");
    for (const Metric& metric : metrics()) {
      std::printf("%-24s", metric.name);
      std::vector<double> values;
      for (const Run& run : runs) {
        values.push_back(metric.value(run));
        std::printf(" %12.2f", values.back());
      }
      std::printf(" %12.2f\n", median(values));
    }
  }
  return 0;
}
