// telemetry-relay: wiring only. Telemetry goes listener -> pipeline -> outlet -> sink: a POST
// from Lambda is fanned out to one outlet per sink, which hands the sink batches (deliveries).
//
// Exit policy. Whatever starts a thread ends the process with leave(code): stdout and stderr are
// flushed (every log line is written), then _Exit, without destructors or atexit handlers, so
// that no sink call, listener connection or plugin static can hold or crash the exit:
//   - SHUTDOWN, exit 0: the lifecycle has delivered within the budget, spooled what is left,
//     flushed and destroyed every sink not stuck in a call, and written the summary.
//   - the shutdown watchdog, exit 0: at deadlineMs minus the margin, from its own thread, after
//     the summary (a sink stuck in a call is neither flushed nor destroyed).
//   - Lambda's API failing after registration (`next`: exit 1 after exit/error) or an init
//     failure (exit 1 after init/error): nothing is flushed or destroyed; what outlets hold in
//     memory is lost, what is spooled stays for the next process.
//   - registration refused, or the API unreachable: exit 1 (no sink was loaded yet).
// --version, --help, --check and a bad option return from main(): no outlet or listener runs.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "config.h"
#include "extensions_client.h"
#include "lifecycle.h"
#include "logging.h"
#include "pipeline.h"
#include "plugin_loader.h"
#include "telemetry_listener.h"
#include "telemetry_relay/sink_abi.h"
#include "version.h"

namespace {

using namespace relay;

#if defined(__x86_64__)
constexpr const char* kArch = "x86_64";
#elif defined(__aarch64__)
constexpr const char* kArch = "arm64";
#else
constexpr const char* kArch = "unknown";
#endif

void print_help(const std::string& name) {
  std::cout << "Usage: " << name << " [--check | --version | --help]\n\n"
            << "An AWS Lambda external extension: subscribes to the Telemetry API and delivers\n"
            << "telemetry to the sink plugins named in RELAY_SINKS (default: http, which POSTs\n"
            << "to DISPATCH_POST_URI). Lambda starts it from /opt/extensions/; configure it\n"
            << "with environment variables (see README.md, 'Configuration').\n\n"
            << "  --check    print the effective configuration: every host key and every key of\n"
            << "             each requested sink, with where its value came from (secrets\n"
            << "             redacted), each invalid value, and the plugin table; then exit,\n"
            << "             non-zero if a value is invalid or a requested sink cannot work.\n"
            << "             Does not contact Lambda.\n"
            << "  --version  print version, commit and architecture\n"
            << "  --help     this text\n";
}

void log_config_issues(const Config& config) {
  for (const ConfigIssue& issue : config.issues) logger("config").error(issue.message);
  for (const std::string& warning : config.warnings) logger("config").warning(warning);
}

std::vector<std::unique_ptr<Outlet>> load_outlets(const Config& config,
                                                  std::vector<LoadResult>& failures) {
  std::vector<std::unique_ptr<Outlet>> outlets;
  for (const std::string& name : config.sinks) {
    LoadResult result = load_sink(config.plugin_dir, name, config.sink_configs.at(name));
    if (result.stage != LoadStage::kLoaded) {
      logger("loader").error("sink %s is disabled: %s", name, result.message);
      failures.push_back(std::move(result));
      continue;
    }
    logger("loader").debug(result.message);
    outlets.push_back(
        std::make_unique<Outlet>(std::move(result.sink), outlet_options(config, name)));
  }
  return outlets;
}

int check(const Config& config) {
  std::cout << "telemetry-relay " << RELAY_VERSION << " (" << RELAY_GIT_COMMIT << ", " << kArch
            << ")\n\nConfiguration:\n";
  for (const ConfigEntry& entry : config.entries) {
    std::cout << "  " << entry.key << "=" << entry.value << "    [" << entry.source << "]\n";
  }
  if (!config.config_file.empty()) {
    std::cout << "  (config file: " << printable_value("RELAY_CONFIG_FILE", config.config_file)
              << ")\n";
  }
  bool ok = config.issues.empty();
  for (const ConfigIssue& issue : config.issues) std::cout << "  INVALID " << issue.message << "\n";
  for (const std::string& warning : config.warnings) std::cout << "  NOTE " << warning << "\n";
  std::cout << "\nLambda Managed Instances: " << (config.managed_instances ? "yes" : "no") << " ("
            << config.managed_instances_why << ")\n";

  std::cout << "\nPlugins (" << config.plugin_dir << "):\n";
  if (config.sinks.empty()) {
    std::cout << "  (no sink requested: telemetry would be discarded)\n";
    ok = false;
  }
  for (const std::string& name : config.sinks) {
    LoadResult result = load_sink(config.plugin_dir, name, config.sink_configs.at(name));
    const bool loaded = result.stage == LoadStage::kLoaded;
    ok = ok && loaded;
    std::cout << "  " << name << "  " << (loaded ? "OK" : "FAILED") << "  version "
              << (result.plugin_version.empty() ? "-" : result.plugin_version) << "  "
              << result.message << "\n";
    std::cout << "      flush " << to_string(config.sink_flush.at(name)) << ", spool "
              << (config.spool ? outlet_options(config, name).spool.dir : std::string("off"))
              << "\n";
    // Every key of the sink: declared ones with their effective values (config issues are the
    // INVALID lines above), or without declared keys what is passed unchecked.
    if (loaded && config.sinks_with_keys.count(name) == 0) {
      std::cout << "      (declares no configuration keys: passed unchecked)\n";
    }
    for (const ConfigEntry& entry : config.sink_entries.at(name)) {
      std::cout << "      " << entry.key << "=" << entry.value << "    [" << entry.source << "]\n";
    }
    for (const std::string& issue : result.config_issues) {
      std::cout << "      INVALID " << issue << "\n";
    }
  }
  std::cout << "\n" << (ok ? "OK" : "PROBLEMS FOUND") << "\n";
  return ok ? 0 : 1;
}

// Every exit once threads may run (see the exit policy above).
[[noreturn]] void leave(int code) {
  std::cerr.flush();
  std::fflush(nullptr);
  std::_Exit(code);
}

// An init failure after registration: logged, reported to Lambda with init/error, exit 1.
[[noreturn]] void fail_init(ExtensionsApi& api, const std::string& type,
                            const std::string& message) {
  logger("main").error(message);
  api.init_error(type, message);
  leave(1);
}

// Step 1: register. Spawn to the first `next` is the function's init time, and Lambda starts the
// runtime only once every extension has registered. So register comes first: it needs only the
// name and the events, and while it waits for Lambda's answer the process is idle, leaving the
// CPU to Lambda (its API server shares the sandbox's CPUs). The configuration, the logging and
// the sinks follow, while the runtime starts too; then the listener and the subscription, which
// Lambda needs before the first `next`. Nothing is logged before the configuration says how.
struct Registered {
  std::unique_ptr<ExtensionsClient> api;  // null when the API cannot be reached (api_error)
  std::string api_error;
  std::optional<Registration> registration;
  std::optional<LambdaApiError> refused;
  std::optional<Config> config;  // read first when a configuration file may decide the events
};

Registered register_first(const std::string& extension_name,
                          const std::map<std::string, std::string>& environment) {
  Registered out;
  const auto runtime_api = environment.find("AWS_LAMBDA_RUNTIME_API");
  try {
    out.api = std::make_unique<ExtensionsClient>(
        runtime_api != environment.end() ? runtime_api->second : std::string());
  } catch (const std::exception& e) {
    out.api_error = e.what();
  }
  // The events depend on Managed Instances, which the environment decides unless a
  // configuration file may (then that file is read first).
  std::optional<bool> managed_instances = managed_instances_from_environment(environment);
  if (!managed_instances) {
    out.config = load_config(environment);
    managed_instances = out.config->managed_instances;
  }
  if (!out.api) return out;
  try {
    out.registration =
        out.api->register_extension(extension_name, registration_events(*managed_instances));
  } catch (const LambdaApiError& e) {
    out.refused = e;
  }
  return out;
}

// Step 2, once logging is configured: says how registration went; exits when it failed.
void check_registered(const Registered& r, const std::string& extension_name,
                      const Config& config) {
  Poco::Logger& log = logger("main");
  if (!r.api) {
    log.error("cannot reach the Extensions API: %s", r.api_error);
    leave(1);
  }
  if (r.refused) {
    // Nothing to report to: Lambda sees the failed init when we exit.
    if (r.refused->status() == 0) {
      log.error("registration as '%s' failed: %s", extension_name, std::string(r.refused->what()));
    } else {
      log.error("registration as '%s' refused (status %d): %s", extension_name, r.refused->status(),
                one_line(r.refused->body()));
    }
    leave(1);
  }
  log.information(
      "registered as %s for %s%s", extension_name, r.registration->function_name,
      std::string(config.managed_instances ? " (Lambda Managed Instances: SHUTDOWN only, " +
                                                 config.managed_instances_why + ")"
                                           : ""));
  if (config.strict && !config.issues.empty()) {
    fail_init(*r.api, "Extension.ConfigInvalid",
              "RELAY_STRICT: invalid configuration: " + config.issues.front().message);
  }
}

// Step 3: the sinks, each behind its outlet, in one pipeline.
std::unique_ptr<Pipeline> load_sinks(ExtensionsApi& api, const Config& config) {
  std::vector<LoadResult> failures;
  auto pipeline = std::make_unique<Pipeline>(load_outlets(config, failures),
                                             PipelineOptions{.drop_own_log_lines = true});
  if (config.strict && !failures.empty()) {
    fail_init(api, "Extension.PluginLoadFailed", "RELAY_STRICT: " + failures.front().message);
  }
  if (pipeline->outlets().empty()) {
    logger("main").error("no sink could be loaded: telemetry is received and discarded");
  }
  return pipeline;
}

// Step 4: the listener, then the subscription that points Lambda at it. Returns whether
// telemetry can arrive (a refused or unsupported subscription still serves the lifecycle).
bool listen_and_subscribe(ExtensionsApi& api, const Config& config, Pipeline& pipeline,
                          TelemetryListener& listener) {
  Poco::Logger& log = logger("main");
  pipeline.watch_listener(listener.stats());  // the summary's `listener` section
  try {
    listener.start();
  } catch (const std::exception& e) {
    fail_init(api, "Extension.ListenerFailed",
              "cannot listen on port " + std::to_string(config.listener_port) + ": " + e.what());
  }
  SubscribeRequest subscription = config.subscription;
  subscription.destination_uri = "http://sandbox.localdomain:" + std::to_string(listener.port());
  SubscribeResult result;
  try {
    result = subscribe_negotiating_schema(api, subscription);
  } catch (const LambdaApiError& e) {
    fail_init(api, "Extension.SubscribeFailed",
              std::string("telemetry subscription failed: ") + e.what());
  }
  switch (result.outcome) {
    case SubscribeResult::Outcome::kSubscribed:
      if (!result.refused_schema.empty()) {
        log.warning("subscribed with schema %s (Lambda refused %s)", result.schema_version,
                    result.refused_schema);
      } else {
        log.debug("subscribed to %s with schema %s", subscription.destination_uri,
                  result.schema_version);
      }
      return true;
    case SubscribeResult::Outcome::kNotSupported:
      log.warning(
          "the Telemetry API is not supported here (status 202: %s); serving the lifecycle "
          "without telemetry",
          one_line(result.body));
      return false;
    case SubscribeResult::Outcome::kRejected:
      if (config.strict) {
        fail_init(api, "Extension.SubscribeFailed",
                  "telemetry subscription refused (status " + std::to_string(result.status) +
                      "): " + one_line(result.body));
      }
      log.error(
          "telemetry subscription refused (status %d): %s; serving the lifecycle without "
          "telemetry",
          result.status, one_line(result.body));
      return false;
  }
  return false;
}

// Step 5: the lifecycle until SHUTDOWN (which flushes and destroys the sinks) or an API failure.
int serve_lifecycle(ExtensionsApi& api, const Config& config, Pipeline& pipeline,
                    bool telemetry_expected) {
  LifecycleOptions options;
  options.shutdown_quiet_ms = config.shutdown_quiet_ms;
  options.shutdown_margin_ms = config.shutdown_margin_ms;
  options.invoke_budget_ms = config.invoke_budget_ms;
  options.telemetry_expected = telemetry_expected;
  options.managed_instances = config.managed_instances;
  return Lifecycle(api, pipeline, options).run();
}

// The extension: the steps above in order. Never returns: every path ends in leave() within
// this scope, so nothing built here is torn down (see the exit policy).
[[noreturn]] void run(const std::string& extension_name,
                      const std::map<std::string, std::string>& environment) {
  Registered r = register_first(extension_name, environment);
  const Config config = r.config ? std::move(*r.config) : load_config(environment);
  configure_logging(config.log_level);
  log_config_issues(config);
  check_registered(r, extension_name, config);
  const std::unique_ptr<Pipeline> pipeline = load_sinks(*r.api, config);
  ListenerOptions listener_options;
  listener_options.port = config.listener_port;
  listener_options.max_body_bytes = config.listener_max_body_bytes;
  TelemetryListener listener(*pipeline, listener_options);
  const bool telemetry_expected = listen_and_subscribe(*r.api, config, *pipeline, listener);
  leave(serve_lifecycle(*r.api, config, *pipeline, telemetry_expected));
}

}  // namespace

int main(int argc, char** argv) {
  const std::string extension_name =
      std::filesystem::path(argc > 0 ? argv[0] : "telemetry-relay").filename().string();
  const std::string option = argc > 1 ? argv[1] : "";
  if (option == "--version") {
    std::cout << "telemetry-relay " << RELAY_VERSION << " (commit " << RELAY_GIT_COMMIT << ", "
              << kArch << ", sink ABI " << RELAY_ABI_MAJOR << "." << RELAY_ABI_MINOR << ")\n";
    return 0;
  }
  if (option == "--help" || option == "-h") {
    print_help(extension_name);
    return 0;
  }
  if (!option.empty() && option != "--check") {
    std::cerr << extension_name << ": unknown option '" << option << "' (try --help)\n";
    return 2;
  }

  // A peer closing a TLS connection must be an error on that delivery, not the process's end.
  signal(SIGPIPE, SIG_IGN);
  const std::map<std::string, std::string> environment = process_environment();
  if (option == "--check") {
    const Config config = load_config(environment);
    configure_logging(config.log_level);
    return check(config);
  }
  run(extension_name, environment);
}
