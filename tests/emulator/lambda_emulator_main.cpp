// lambda-emulator: runs an extension binary under the emulated Lambda lifecycle and prints
// what happened. Exit code 0 when the extension ran every invocation and exited cleanly.

#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include "emulator.h"
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
  const relay::emu::ReceiverReport* receiver_part = report ? &*report : nullptr;
  if (cli.json) {
    std::cout << relay::emu::to_json(relay::emu::summary_object(summary, receiver_part)) << "\n";
  } else if (!cli.quiet) {
    relay::emu::print_summary(std::cout, summary, receiver_part);
  }
  return summary.clean(cli.options.invocations) ? 0 : 1;
}
