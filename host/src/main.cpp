// telemetry-relay: wiring only. The life of a batch is listener -> pipeline -> outlet -> sink.
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

// Exits without running destructors: a sink stuck in a call must not hold the process past
// Lambda's deadline, and every outlet has already settled its counts.
[[noreturn]] void finish(int code) {
  std::cerr.flush();
  std::fflush(nullptr);
  std::_Exit(code);
}

// Spawn to the first `next` is the function's init time, and Lambda starts the runtime only once
// every extension has registered. So register comes first: it needs only the name and the
// events, and while it waits for Lambda's answer the process is idle, leaving the CPU to Lambda
// (its API server shares the sandbox's CPUs). The configuration, the logging and the sinks
// follow, while the runtime starts too; then the listener and the subscription, which Lambda
// needs before the first `next`.
int run(const std::string& extension_name, const std::map<std::string, std::string>& environment) {
  std::unique_ptr<ExtensionsClient> api;
  std::string api_error;
  const auto runtime_api = environment.find("AWS_LAMBDA_RUNTIME_API");
  try {
    api = std::make_unique<ExtensionsClient>(runtime_api != environment.end() ? runtime_api->second
                                                                              : std::string());
  } catch (const std::exception& e) {
    api_error = e.what();
  }

  // The events depend on Managed Instances, which the environment decides unless a
  // configuration file may (then that file is read first).
  std::optional<bool> managed_instances = managed_instances_from_environment(environment);
  std::optional<Config> early_config;
  if (!managed_instances) {
    early_config = load_config(environment);
    managed_instances = early_config->managed_instances;
  }
  std::optional<Registration> registration;
  std::optional<LambdaApiError> refused;
  if (api) {
    try {
      registration =
          api->register_extension(extension_name, registration_events(*managed_instances));
    } catch (const LambdaApiError& e) {
      refused = e;
    }
  }

  const Config config = early_config ? std::move(*early_config) : load_config(environment);
  configure_logging(config.log_level);
  log_config_issues(config);
  Poco::Logger& log = logger("main");
  if (!api) {
    log.error("cannot reach the Extensions API: %s", api_error);
    return 1;
  }
  if (refused) {
    // Nothing to report to: Lambda sees the failed init when we exit.
    if (refused->status() == 0) {
      log.error("registration as '%s' failed: %s", extension_name, std::string(refused->what()));
    } else {
      log.error("registration as '%s' refused (status %d): %s", extension_name, refused->status(),
                one_line(refused->body()));
    }
    return 1;
  }
  log.information(
      "registered as %s for %s%s", extension_name, registration->function_name,
      std::string(config.managed_instances ? " (Lambda Managed Instances: SHUTDOWN only, " +
                                                 config.managed_instances_why + ")"
                                           : ""));

  auto init_failed = [&](const std::string& type, const std::string& message) {
    log.error(message);
    api->init_error(type, message);
    return 1;
  };
  if (config.strict && !config.issues.empty()) {
    return init_failed("Extension.ConfigInvalid",
                       "RELAY_STRICT: invalid configuration: " + config.issues.front().message);
  }

  std::vector<LoadResult> failures;
  Pipeline pipeline(load_outlets(config, failures), PipelineOptions{.drop_own_log_lines = true});
  if (config.strict && !failures.empty()) {
    return init_failed("Extension.PluginLoadFailed", "RELAY_STRICT: " + failures.front().message);
  }
  if (pipeline.outlets().empty()) {
    log.error("no sink could be loaded: telemetry is received and discarded");
  }

  ListenerOptions listener_options;
  listener_options.port = config.listener_port;
  listener_options.max_body_bytes = config.listener_max_body_bytes;
  TelemetryListener listener(pipeline, listener_options);
  pipeline.watch_listener(listener.stats());  // the summary's `listener` section
  try {
    listener.start();
  } catch (const std::exception& e) {
    return init_failed(
        "Extension.ListenerFailed",
        "cannot listen on port " + std::to_string(config.listener_port) + ": " + e.what());
  }

  SubscribeRequest subscription = config.subscription;
  subscription.destination_uri = "http://sandbox.localdomain:" + std::to_string(listener.port());
  bool telemetry_expected = false;
  try {
    const SubscribeResult result = subscribe_negotiating_schema(*api, subscription);
    switch (result.outcome) {
      case SubscribeResult::Outcome::kSubscribed:
        telemetry_expected = true;
        if (!result.refused_schema.empty()) {
          log.warning("subscribed with schema %s (Lambda refused %s)", result.schema_version,
                      result.refused_schema);
        } else {
          log.debug("subscribed to %s with schema %s", subscription.destination_uri,
                    result.schema_version);
        }
        break;
      case SubscribeResult::Outcome::kNotSupported:
        log.warning(
            "the Telemetry API is not supported here (status 202: %s); serving the "
            "lifecycle without telemetry",
            one_line(result.body));
        break;
      case SubscribeResult::Outcome::kRejected:
        if (config.strict) {
          return init_failed("Extension.SubscribeFailed",
                             "telemetry subscription refused (status " +
                                 std::to_string(result.status) + "): " + one_line(result.body));
        }
        log.error(
            "telemetry subscription refused (status %d): %s; serving the lifecycle without "
            "telemetry",
            result.status, one_line(result.body));
        break;
    }
  } catch (const LambdaApiError& e) {
    return init_failed("Extension.SubscribeFailed",
                       std::string("telemetry subscription failed: ") + e.what());
  }

  LifecycleOptions lifecycle_options;
  lifecycle_options.shutdown_quiet_ms = config.shutdown_quiet_ms;
  lifecycle_options.shutdown_margin_ms = config.shutdown_margin_ms;
  lifecycle_options.invoke_budget_ms = config.invoke_budget_ms;
  lifecycle_options.telemetry_expected = telemetry_expected;
  lifecycle_options.managed_instances = config.managed_instances;
  Lifecycle lifecycle(*api, pipeline, lifecycle_options);
  // The listener is left running: finish() ends the process without unwinding anything.
  finish(lifecycle.run());
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
  finish(run(extension_name, environment));
}
