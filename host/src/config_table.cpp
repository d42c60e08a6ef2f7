#include "config_table.h"

#include <Poco/String.h>

#include <stdexcept>
#include <vector>

namespace relay {
namespace {

namespace key = relay::sdk::key;

// The special rules (sink list, flush policy syntax, paths, cross-key bounds, Managed Instances)
// live in config.cpp; each applies to the value this table has already validated, and falls back
// to this table's default.
constexpr HostKey kHostKeys[] = {
    {key::string(
         "RELAY_SINKS", "http",
         "Comma list of sink names (letters, digits, '-', '_'; 1-64 characters; at most "
         "16; case-insensitive); sink <name> is <RELAY_PLUGIN_DIR>/librelay-sink-<name>.so"),
     KeyUse::kFile, "Sinks and plugins", "comma list of sink names"},
    {key::string("RELAY_PLUGIN_DIR", RELAY_DEFAULT_PLUGIN_DIR,
                 "Absolute path of the folder sink plugins are loaded from"),
     KeyUse::kFile, nullptr, "absolute path"},
    {key::boolean("RELAY_STRICT", "false",
                  "Invalid configuration, a sink that cannot load and a refused subscription "
                  "fail the init instead of being logged")},
    {key::choice("RELAY_LOG_LEVEL", "info", "error|warn|info|debug|trace",
                 "Log level; info logs start, problems, shutdown and the summary, nothing per "
                 "batch")},
    {key::string("RELAY_CONFIG_FILE", "",
                 "Properties file holding these keys (below the environment, above the "
                 "defaults); a regular file of at most 1 MiB"),
     KeyUse::kEnvironment, nullptr, "path"},
    {key::string("RELAY_TELEMETRY_TYPES", "platform,function",
                 "Comma list of Telemetry API streams: platform, function, extension"),
     KeyUse::kFile, "Telemetry API subscription (ranges are Lambda's own)",
     "comma list of platform, function, extension"},
    {key::choice("RELAY_TELEMETRY_SCHEMA", "2022-12-13", "2022-07-01|2022-12-13|2025-01-29",
                 "Telemetry API schema version; always 2025-01-29 on Managed Instances"),
     KeyUse::kAdapts},
    {key::integer("RELAY_TELEMETRY_MAX_ITEMS", "1000", 1000, 10000,
                  "Events Lambda buffers before it POSTs them")},
    {key::integer("RELAY_TELEMETRY_MAX_BYTES", "262144", 262144, 1048576,
                  "Bytes Lambda buffers before it POSTs them")},
    {key::integer("RELAY_TELEMETRY_TIMEOUT_MS", "100", 25, 30000,
                  "How long Lambda buffers an event before it POSTs it; 25 when unset and a sink "
                  "flushes in end mode"),
     KeyUse::kAdapts},
    {key::integer("RELAY_LISTENER_PORT", "0", 0, 65535,
                  "Port the telemetry listener binds (not 9001, Lambda's own); 0 picks a free one"),
     KeyUse::kFile, "Listener", "0 to 65535, not 9001"},
    {key::integer("RELAY_LISTENER_MAX_BODY_BYTES", "0", 0, 64 << 20,
                  "Largest POST body accepted (413 above); 0 means 4 x RELAY_TELEMETRY_MAX_BYTES, "
                  "else at least 2 x that + 65536"),
     KeyUse::kFile, nullptr, "0, or 2 x RELAY_TELEMETRY_MAX_BYTES + 65536 to 67108864"},
    {key::integer("RELAY_BUFFER_MAX_BYTES", "4194304", 262144, int64_t{1} << 30,
                  "Telemetry held in memory per sink; beyond it the oldest is spooled, or dropped "
                  "and counted"),
     KeyUse::kFile, "Memory and deliveries"},
    {key::integer("RELAY_BUFFER_FLUSH_BYTES", "1048576", 4096, int64_t{1} << 30,
                  "Holding this much, a sink delivers all of it whatever the flush mode; at most "
                  "half of RELAY_BUFFER_MAX_BYTES (unset: a quarter of a smaller cap)"),
     KeyUse::kFile, nullptr, "4096 to half of RELAY_BUFFER_MAX_BYTES"},
    {key::integer("RELAY_DELIVERY_MAX_BYTES", "1048576", 65536, 16 << 20,
                  "Largest single delivery; more is split into several, in order")},
    {key::integer("DISPATCH_MIN_BATCH_SIZE", "0", 0, 1000000,
                  "At INVOKE, deliver only when more events than this wait (0: any); SHUTDOWN "
                  "delivers everything")},
    {key::string("RELAY_FLUSH", "next-invoke",
                 "When telemetry is delivered: next-invoke, end, periodic:<ms> (10 to 600000) or "
                 "continuous; RELAY_<SINK>_FLUSH sets it for one sink"),
     KeyUse::kAdapts, "Flushing", "next-invoke, end, periodic:<ms>, continuous"},
    {key::integer("RELAY_INVOKE_BUDGET_MS", "100", 1, 60000,
                  "The longest end mode holds an invocation, the wait for platform.runtimeDone "
                  "included")},
    {key::boolean("RELAY_SPOOL", "on",
                  "On-disk spool for telemetry not delivered yet (one folder per sink)"),
     KeyUse::kFile, "Spool (limits are per sink; /tmp is shared with the function)"},
    {key::string("RELAY_SPOOL_DIR", "/tmp/telemetry-relay-spool",
                 "Absolute path without '..' (at most 512 characters); sink <name> spools in "
                 "<dir>/<name>"),
     KeyUse::kFile, nullptr, "absolute path"},
    {key::integer("RELAY_SPOOL_MAX_BYTES", "16777216", 1 << 20, int64_t{10} << 30,
                  "Bytes spooled per sink")},
    {key::integer("RELAY_SPOOL_MAX_FILES", "256", 1, 100000, "Files spooled per sink")},
    {key::integer("RELAY_RETRY_MAX_ATTEMPTS", "10", 1, 1000,
                  "A poison (failing while other deliveries to its sink succeed) moves to "
                  "dead-letter/ once it failed this many times and RELAY_RETRY_MAX_AGE_S passed"),
     KeyUse::kFile, "Poison deliveries"},
    {key::integer("RELAY_RETRY_MAX_AGE_S", "3600", 0, 7 * 24 * 3600,
                  "Seconds since a poison's first failure before it may move to dead-letter/")},
    {key::choice("RELAY_MANAGED_INSTANCES", "auto", "auto|on|off",
                 "Lambda Managed Instances: auto (AWS_LAMBDA_INITIALIZATION_TYPE), on or off; "
                 "there: SHUTDOWN only, schema 2025-01-29, continuous flushing unless periodic"),
     KeyUse::kFile, "Lambda Managed Instances"},
    {key::integer("RELAY_SHUTDOWN_QUIET_MS", "250", 0, 1500,
                  "At SHUTDOWN, stop waiting for late telemetry after this long without any"),
     KeyUse::kFile, "Shutdown"},
    {key::integer("RELAY_SHUTDOWN_MARGIN_MS", "150", 50, 1000,
                  "Exit this long before SHUTDOWN's deadline")},
    {key::string("DISPATCH_POST_URI", "",
                 "Where the http sink POSTs (its post_uri; RELAY_HTTP_POST_URI wins); validated "
                 "by the http sink's keys"),
     KeyUse::kFile, "The http sink (DISPATCH_* are the AWS Go sample's names)",
     "as the http sink's post_uri"},
};

constexpr relay_config_key kPatternKeys[] = {
    key::string("RELAY_<SINK>_FLUSH", "",
                "RELAY_FLUSH for one sink (its name upper-cased, '-' as '_'), e.g. "
                "RELAY_HTTP_FLUSH=end; read by the host, not passed to the plugin"),
    key::string("RELAY_<SINK>_<KEY>", "",
                "Key <key> (lower-cased) of sink <sink>, e.g. RELAY_HTTP_CONNECT_TIMEOUT_MS; "
                "checked against the keys the sink declares"),
};

}  // namespace

std::span<const HostKey> host_keys() { return kHostKeys; }

std::span<const relay_config_key> host_config_keys() {
  static const std::vector<relay_config_key> keys = [] {
    std::vector<relay_config_key> out;
    for (const HostKey& k : kHostKeys) out.push_back(k.key);
    return out;
  }();
  return keys;
}

const relay_config_key* host_config_key(std::string_view name) {
  for (const relay_config_key& k : host_config_keys()) {
    if (name == k.name) return &k;
  }
  return nullptr;
}

std::string host_default(std::string_view name) {
  const relay_config_key* k = host_config_key(name);
  if (k == nullptr) throw std::out_of_range("no host configuration key " + std::string(name));
  return k->default_value != nullptr ? k->default_value : "";
}

std::span<const relay_config_key> host_pattern_keys() { return kPatternKeys; }

std::string host_key_accepts(const HostKey& key) {
  return key.accepts != nullptr ? key.accepts : sdk::describe(key.key);
}

std::string sink_variable(std::string_view sink, std::string_view key) {
  std::string name = Poco::toUpper("RELAY_" + std::string(sink) + "_" + std::string(key));
  Poco::replaceInPlace(name, "-", "_");
  return name;
}

std::string_view sink_key_alias(std::string_view sink, std::string_view key) {
  return sink == "http" && key == "post_uri" ? "DISPATCH_POST_URI" : "";
}

}  // namespace relay
