// Effective configuration: built-in defaults, then an optional properties file
// (RELAY_CONFIG_FILE), then the environment on top. Every key is validated here; a bad value
// becomes one ConfigIssue naming the key, the value and what is used instead.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "extensions_api.h"
#include "plugin_loader.h"

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

struct Config {
  std::string log_level = "info";
  std::vector<std::string> sinks = {"http"};
  std::string plugin_dir = RELAY_DEFAULT_PLUGIN_DIR;
  bool strict = false;

  uint16_t listener_port = 0;
  size_t listener_max_body_bytes = 0;  // 0 until resolved: 4 x subscription max_bytes
  SubscribeRequest subscription;       // destination filled in once the listener is bound

  int64_t min_batch_size = 0;         // DISPATCH_MIN_BATCH_SIZE
  size_t queue_max_bytes = 8u << 20;  // per outlet, in memory
  size_t delivery_max_bytes = 1u << 20;
  uint32_t shutdown_quiet_ms = 250;
  uint32_t shutdown_margin_ms = 150;

  std::map<std::string, SinkConfig> sink_configs;  // one entry (maybe empty) per name in sinks
  std::vector<ConfigIssue> issues;
  std::vector<ConfigEntry> entries;
  std::string config_file;  // empty when none
};

// environment: the process environment as NAME -> value (only DISPATCH_* and RELAY_* are read).
Config load_config(const std::map<std::string, std::string>& environment);

std::map<std::string, std::string> process_environment();

// What may be shown of a value: secrets become <redacted>; for URI-valued keys the password in
// the user info and the query string (which often carries tokens) are redacted.
std::string printable_value(const std::string& key, const std::string& value);

}  // namespace relay
