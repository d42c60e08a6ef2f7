// Effective configuration: built-in defaults (config_table.h), then an optional properties file
// (RELAY_CONFIG_FILE), then the environment on top. Every key is validated here, host keys against
// the host's table and a sink's keys against the table its plugin declares (ABI 1.3), by the same
// relay::sdk::validate(); a bad value becomes one ConfigIssue naming the variable, the value
// (secrets redacted) and what is used instead.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "extensions_api.h"
#include "outlet.h"
#include "plugin_loader.h"
#include "telemetry_relay/config_keys.hpp"

namespace relay {

struct ConfigIssue {
  std::string key;
  std::string value;
  std::string message;  // "<key>=<value>: <what is wrong>; using <fallback>"
};

// One effective key for --check, with where its value came from.
struct ConfigEntry {
  std::string key;
  std::string value;   // secrets already masked
  std::string source;  // "default", "file <path>" or "environment"
};

// Bounds on what comes from outside: the configuration file (read before the extension
// registers, so a huge or endless one would stall init), the number of sinks, how much of a
// value is ever shown and how many issues are.
inline constexpr size_t kMaxConfigFileBytes = 1u << 20;
inline constexpr size_t kMaxSinks = 16;
inline constexpr size_t kMaxShownValueBytes = 256;
inline constexpr size_t kMaxIssues = 32;  // then one issue counts the rest

// The member initialisers equal the table's defaults (config_test holds them to it).
struct Config {
  std::string log_level = "info";
  std::vector<std::string> sinks = {"http"};
  std::string plugin_dir = RELAY_DEFAULT_PLUGIN_DIR;
  bool strict = false;

  uint16_t listener_port = 0;
  size_t listener_max_body_bytes = 0;  // 0 until resolved: 4 x subscription max_bytes
  SubscribeRequest subscription;       // destination filled in once the listener is bound

  int64_t min_batch_size = 0;            // DISPATCH_MIN_BATCH_SIZE
  size_t buffer_max_bytes = 4u << 20;    // per outlet, in memory
  size_t buffer_flush_bytes = 1u << 20;  // held this much, an outlet delivers whatever the mode
  size_t delivery_max_bytes = 1u << 20;
  uint32_t shutdown_quiet_ms = 250;
  uint32_t shutdown_margin_ms = 150;

  // RELAY_FLUSH as resolved (Managed Instances rule applied), and the effective policy of each
  // sink (RELAY_<SINK>_FLUSH overrides it): one entry per name in sinks.
  FlushPolicy flush;
  std::map<std::string, FlushPolicy> sink_flush;
  uint32_t invoke_budget_ms = 100;  // the longest an invocation is held (end mode)

  bool spool = true;
  std::string spool_dir = "/tmp/telemetry-relay-spool";  // one folder per sink below it
  uint64_t spool_max_bytes = 16u << 20;                  // per sink
  uint32_t spool_max_files = 256;                        // per sink
  uint32_t retry_max_attempts = 10;  // failures while other deliveries succeed, for a poison
  uint32_t retry_max_age_s = 3600;   // since its first failure, for a poison

  std::string managed_instances_setting = "auto";  // RELAY_MANAGED_INSTANCES: auto, on, off
  bool managed_instances = false;                  // as resolved
  std::string managed_instances_why;               // for --check and the start line

  // One entry (maybe empty) per name in sinks: what create() receives. For a sink that declares
  // its keys, the validated values (every declared key that has one, then its prefix keys).
  std::map<std::string, SinkConfig> sink_configs;
  std::set<std::string> sinks_with_keys;  // their configuration was validated against them
  // Per sink, for --check: every declared key (or, without declared keys, every key given) as
  // RELAY_<SINK>_<KEY> with its effective value and source, secrets redacted.
  std::map<std::string, std::vector<ConfigEntry>> sink_entries;
  std::vector<ConfigIssue> issues;
  // Valid settings adjusted to where the extension runs (e.g. next-invoke on Managed
  // Instances): logged as warnings, never an init error.
  std::vector<std::string> warnings;
  std::vector<ConfigEntry> entries;
  std::string config_file;  // empty when none
};

// The keys a sink declares, given the plugin folder and the sink's name; nullopt when it declares
// none or its plugin cannot be read (its configuration then passes unchecked, as before 1.3, and
// loading it reports why). The entries must stay valid while the process runs.
using SinkKeySource = std::function<std::optional<SinkKeyTable>(const std::string& plugin_dir,
                                                                const std::string& sink)>;

// environment: the process environment as NAME -> value (DISPATCH_* and RELAY_* are read, and
// AWS_LAMBDA_INITIALIZATION_TYPE to detect Managed Instances). sink_keys: by default each
// requested sink's plugin is opened (its descriptor only, no instance) for its declared keys.
Config load_config(const std::map<std::string, std::string>& environment,
                   const SinkKeySource& sink_keys = read_sink_keys);

// Whether load_config(environment) will resolve to Lambda Managed Instances, decided from the
// environment alone and cheaply, so the extension can register before it reads the rest of its
// configuration; nullopt when RELAY_CONFIG_FILE is set (the file may decide it).
std::optional<bool> managed_instances_from_environment(
    const std::map<std::string, std::string>& environment);

// "next-invoke", "end", "periodic:<ms>" or "continuous"; nullopt when text is none of them or the
// period is outside kMinFlushPeriodMs..kMaxFlushPeriodMs.
inline constexpr uint32_t kMinFlushPeriodMs = 10;
inline constexpr uint32_t kMaxFlushPeriodMs = 600000;
std::optional<FlushPolicy> parse_flush_policy(const std::string& text);
std::string to_string(const FlushPolicy& policy);

// True when at least one sink flushes in `mode`.
bool any_sink_flushes(const Config& config, FlushMode mode);

// The outlet options of one sink: its flush policy, the memory and delivery bounds, and its own
// spool folder <RELAY_SPOOL_DIR>/<sink>.
OutletOptions outlet_options(const Config& config, const std::string& sink);

std::map<std::string, std::string> process_environment();

// One configuration issue as a line: "<variable>=<shown>: <what>; <consequence>", with " instead"
// after a consequence "using <x>".
std::string issue_line(const std::string& variable, const std::string& shown,
                       const std::string& what, const std::string& consequence);

// An issue validate() found in sink `sink`'s declared keys, as load_config and the loader report
// it: the variable (RELAY_<SINK>_<KEY> unless given, e.g. DISPATCH_POST_URI), the value shown
// (secrets redacted) and the line.
struct SinkKeyIssue {
  std::string variable;
  std::string shown;
  std::string message;
};
SinkKeyIssue sink_key_issue(const std::string& sink, std::span<const relay_config_key> keys,
                            const sdk::KeyIssue& issue, std::string variable = {});

// What may be shown of a value (--check, log lines, init/error): secrets become <redacted>
// (keys naming a header, key, token, secret, password, credential, auth...). URI values (keys
// naming a uri or url, or values holding "://") keep scheme, host, port and path, with the user
// info, query and fragment redacted; of a URI that does not parse only scheme, host and port are
// shown. Control characters are escaped and at most kMaxShownValueBytes kept.
std::string printable_value(const std::string& key, const std::string& value);

// text (a plugin's error or log message) with whatever printable_value hides of one sink's
// configuration hidden too: a value it would change becomes what it shows, and the user info,
// query and fragment of a URI value (what it does not show) become <redacted>. So a plugin that
// quotes its configuration leaks no secret through log lines, --check or init/error. Values
// shorter than 4 bytes are left alone. keys: the sink's declared keys, whose secrets are hidden
// whatever their names.
std::string redact_config_values(std::string text, const SinkConfig& config,
                                 std::span<const relay_config_key> keys = {});

}  // namespace relay
