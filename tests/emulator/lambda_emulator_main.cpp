// lambda-emulator: runs an extension binary under the emulated Lambda lifecycle and prints
// what happened. Exit code 0 when the extension ran every invocation and exited cleanly.

#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include "emulator.h"
#include "otlp_receiver.h"
#include "otlp_report.h"
#include "receiver.h"
#include "report.h"

namespace {

constexpr const char* kUsage = R"(usage: lambda-emulator --extension PATH [options]

  --extension PATH        extension executable (registers under its file name)
  --invocations N         invocations to run (default 3)
  --logs-per-invoke N     function log lines per invocation (default 5)
  --log-format F          text | json | mixed (default text)
  --event-style S         compact | pretty: pretty-printed events with reversed key order
                          (default compact, as Lambda writes them)
  --runtime-ms N          simulated handler duration (default 20)
  --gap-ms N              frozen time between invocations (default 0)
  --env KEY=VALUE         extra variable for the extension (repeatable)
  --receiver              start a local collector and point DISPATCH_POST_URI at it
                          (unless --env sets DISPATCH_POST_URI)
  --otlp-receiver [protobuf|json]
                          start a local OTLP/HTTP receiver (decoding with the official
                          OpenTelemetry schema) and run the otlp sink against it:
                          RELAY_SINKS=otlp, RELAY_OTLP_ENDPOINT, RELAY_OTLP_PROTOCOL
                          (http/protobuf by default; --env overrides each); prints what it
                          decoded: resource, first log records, spans per trace, metrics
  --shutdown-ms N         SHUTDOWN window before SIGKILL (default 2000)
  --init-timeout-ms N     (default 10000)
  --no-freeze             do not SIGSTOP the extension between invocations
  --managed-instances     Lambda Managed Instances: SHUTDOWN-only registration, schema
                          2025-01-29, concurrent invocations, no runtimeDone, no freeze
  --concurrency N         invocations in flight with --managed-instances (default 4)
  --tenant-id ID          tenantId on platform.start, JSON function logs and reports
  --stderr PATH           write the extension's stderr there instead of passing it through
  --stdout PATH           same for stdout
  --json                  print the summary as JSON instead of the table
  --quiet                 no table (exit code only, or JSON with --json)
)";

struct Cli {
  relay::emu::Options options;
  bool receiver = false;
  std::optional<std::string> otlp_protocol;  // --otlp-receiver: http/protobuf or http/json
  bool json = false;
  bool quiet = false;
};

int to_int(std::string_view flag, const std::string& value) {
  try {
    return std::stoi(value);
  } catch (const std::exception&) {
    throw std::invalid_argument(std::string(flag) + " needs a number, got '" + value + "'");
  }
}

Cli parse(int argc, char** argv) {
  Cli cli;
  relay::emu::Options& o = cli.options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(std::string(flag) + " needs a value");
      return argv[++i];
    };
    if (flag == "--extension") {
      o.extension_path = value();
    } else if (flag == "--invocations") {
      o.invocations = to_int(flag, value());
    } else if (flag == "--logs-per-invoke") {
      o.logs_per_invoke = to_int(flag, value());
    } else if (flag == "--log-format") {
      o.log_format = relay::emu::parse_log_format(value());
    } else if (flag == "--event-style") {
      o.event_style = relay::emu::parse_event_style(value());
    } else if (flag == "--runtime-ms") {
      o.runtime_ms = to_int(flag, value());
    } else if (flag == "--gap-ms") {
      o.gap_ms = to_int(flag, value());
    } else if (flag == "--env") {
      const std::string pair = value();
      const auto eq = pair.find('=');
      if (eq == std::string::npos || eq == 0) throw std::invalid_argument("--env needs KEY=VALUE");
      o.env[pair.substr(0, eq)] = pair.substr(eq + 1);
    } else if (flag == "--receiver") {
      cli.receiver = true;
    } else if (flag == "--otlp-receiver") {
      // The protocol is optional: take the next argument only when it names one.
      cli.otlp_protocol = "http/protobuf";
      if (i + 1 < argc) {
        const std::string_view next = argv[i + 1];
        if (next == "protobuf" || next == "http/protobuf" || next == "json" ||
            next == "http/json") {
          cli.otlp_protocol =
              next.starts_with("http/") ? std::string(next) : "http/" + std::string(next);
          ++i;
        }
      }
    } else if (flag == "--shutdown-ms") {
      o.shutdown_ms = to_int(flag, value());
    } else if (flag == "--init-timeout-ms") {
      o.init_timeout_ms = to_int(flag, value());
    } else if (flag == "--no-freeze") {
      o.freeze = false;
    } else if (flag == "--managed-instances") {
      o.managed_instances = true;
    } else if (flag == "--concurrency") {
      o.concurrency = to_int(flag, value());
    } else if (flag == "--tenant-id") {
      o.tenant_id = value();
    } else if (flag == "--stderr") {
      o.stderr_path = value();
    } else if (flag == "--stdout") {
      o.stdout_path = value();
    } else if (flag == "--json") {
      cli.json = true;
    } else if (flag == "--quiet") {
      cli.quiet = true;
    } else if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else {
      throw std::invalid_argument("unknown flag " + std::string(flag));
    }
  }
  if (o.extension_path.empty()) throw std::invalid_argument("--extension is required");
  if (o.concurrency < 1) throw std::invalid_argument("--concurrency must be at least 1");
  return cli;
}

}  // namespace

int main(int argc, char** argv) {
  Cli cli;
  try {
    cli = parse(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "lambda-emulator: " << e.what() << "\n\n" << kUsage;
    return 2;
  }

  std::optional<relay::emu::Receiver> receiver;
  if (cli.receiver) {
    receiver.emplace();
    receiver->start();
    cli.options.env.try_emplace("DISPATCH_POST_URI", receiver->url());
  }

  std::optional<relay::emu::OtlpReceiver> otlp;
  if (cli.otlp_protocol) {
    otlp.emplace();
    otlp->start();
    cli.options.env.try_emplace("RELAY_SINKS", cli.receiver ? "http,otlp" : "otlp");
    cli.options.env.try_emplace("RELAY_OTLP_ENDPOINT", otlp->url());
    cli.options.env.try_emplace("RELAY_OTLP_PROTOCOL", *cli.otlp_protocol);
  }

  relay::emu::Summary summary;
  try {
    relay::emu::Emulator emulator(cli.options);
    summary = emulator.run();
  } catch (const std::exception& e) {
    std::cerr << "lambda-emulator: " << e.what() << "\n";
    return 2;
  }

  std::optional<relay::emu::ReceiverReport> report;
  if (receiver) {
    report = relay::emu::receiver_report(*receiver, summary);
    receiver->stop();
  }
  // The extension has exited: whatever it sent has been answered.
  if (otlp) otlp->stop();
  const relay::emu::ReceiverReport* receiver_part = report ? &*report : nullptr;
  if (cli.json) {
    auto object = relay::emu::summary_object(summary, receiver_part);
    if (otlp) object->set("otlp_receiver", relay::emu::otlp_report_object(*otlp));
    std::cout << relay::emu::to_json(object) << "\n";
  } else if (!cli.quiet) {
    relay::emu::print_summary(std::cout, summary, receiver_part);
    if (otlp) relay::emu::print_otlp_report(std::cout, *otlp);
  }
  return summary.clean(cli.options.invocations) ? 0 : 1;
}
