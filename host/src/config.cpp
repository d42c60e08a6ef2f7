#include "config.h"

#include <Poco/AutoPtr.h>
#include <Poco/NumberParser.h>
#include <Poco/String.h>
#include <Poco/StringTokenizer.h>
#include <Poco/Util/LayeredConfiguration.h>
#include <Poco/Util/MapConfiguration.h>
#include <Poco/Util/PropertyFileConfiguration.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <system_error>

#include "config_table.h"
#include "logging.h"

extern char** environ;

namespace relay {
namespace {

using Poco::AutoPtr;
using Poco::Util::AbstractConfiguration;
using Poco::Util::MapConfiguration;

constexpr char kManagedInstancesType[] = "lambda-managed-instances";
constexpr char kManagedInstancesSchema[] = "2025-01-29";
// Lowest timeoutMs Lambda accepts: in end mode the wait for platform.runtimeDone is part of the
// invocation budget, and Lambda holds each event up to timeoutMs before it sends it.
constexpr uint32_t kEndModeTelemetryTimeoutMs = 25;

// The host reads RELAY_<SINK>_FLUSH itself; it is not handed to the plugin.
constexpr char kSinkFlushKey[] = "flush";

bool is_secret_key(const std::string& key);

// One value as set in the environment or the file (trimmed), and where.
struct Given {
  std::string key;       // the host key, or the sink's key (lower-case, without RELAY_<SINK>_)
  std::string value;     // trimmed
  std::string variable;  // the environment variable (or file key) it came from
  std::string source;    // "environment" or "file <path>"
};

// The layers below the defaults: the environment over the file.
class Layers {
 public:
  Layers(const AbstractConfiguration& environment, const AbstractConfiguration* file,
         std::string file_source)
      : environment_(environment), file_(file), file_source_(std::move(file_source)) {}

  // Set in the environment or the file (RELAY_CONFIG_FILE: in the environment only), trimmed.
  // An empty value means unset, as an empty environment variable does.
  std::optional<Given> get(const std::string& variable) const {
    const bool in_environment = environment_.hasProperty(variable);
    if (!in_environment &&
        (file_ == nullptr || variable == "RELAY_CONFIG_FILE" || !file_->hasProperty(variable))) {
      return std::nullopt;
    }
    const AbstractConfiguration& layer = in_environment ? environment_ : *file_;
    std::string value = Poco::trim(layer.getRawString(variable));
    if (value.empty()) return std::nullopt;
    return Given{variable, std::move(value), variable,
                 in_environment ? "environment" : file_source_};
  }

  // Every key set in either layer ("a.b=1" lists "a", which holds no value: left out).
  std::set<std::string> keys() const {
    std::set<std::string> all;
    for (const AbstractConfiguration* layer : {&environment_, file_}) {
      if (layer == nullptr) continue;
      std::vector<std::string> names;
      layer->keys(names);
      for (std::string& name : names) {
        if (layer->hasProperty(name)) all.insert(std::move(name));
      }
    }
    return all;
  }

 private:
  const AbstractConfiguration& environment_;
  const AbstractConfiguration* file_;
  std::string file_source_;
};

// What may be shown of a value: <redacted> for a declared secret, else printable_value.
std::string shown_value(const std::string& variable, const std::string& value, bool secret) {
  return secret && !value.empty() ? "<redacted>" : printable_value(variable, value);
}

class Reader {
 public:
  Reader(const Layers& layers, Config& config) : layers_(layers), config_(config) {}

  // Validates every host key against the table; the special rules then read value().
  void validate_host_keys() {
    std::vector<Given> given;
    for (const relay_config_key& k : host_config_keys()) {
      if (auto g = layers_.get(k.name)) given.push_back(std::move(*g));
    }
    std::vector<std::pair<std::string_view, std::string_view>> pairs;
    for (const Given& g : given) pairs.emplace_back(g.key, g.value);
    sdk::ValidatedConfig checked = sdk::validate(host_config_keys(), pairs);
    for (auto& [key, value] : checked.values) values_[key] = std::move(value);
    for (const sdk::KeyIssue& bad : checked.issues) {
      issue_shown(bad.key,
                  shown_value(bad.key, bad.value, sdk::is_secret(host_config_keys(), bad.key)),
                  bad.problem, bad.fallback.empty() ? "left unset" : "using " + bad.fallback);
    }
    for (Given& g : given) given_[g.key] = std::move(g);
  }

  // The validated value of a host key: as given when valid, else the table's default.
  const std::string& value(const std::string& key) const {
    static const std::string kUnset;
    const auto it = values_.find(key);
    return it == values_.end() ? kUnset : it->second;
  }
  // Set (non-empty) in the environment or the file, not just defaulted.
  bool is_explicit(const std::string& key) const { return given_.count(key) != 0; }
  const Given* given(const std::string& key) const {
    const auto it = given_.find(key);
    return it == given_.end() ? nullptr : &it->second;
  }
  const Layers& layers() const { return layers_; }

  // Each issue is a log line: a list of thousands of bad items must not become thousands.
  // consequence: "using <x>" (then " instead" follows), "ignored", "left unset".
  void issue_shown(const std::string& key, const std::string& shown, const std::string& what,
                   const std::string& consequence) {
    add_issue({key, shown, issue_line(key, shown, what, consequence)});
  }
  void add_issue(ConfigIssue issue) {
    invalid_.insert(issue.key);
    if (config_.issues.size() >= kMaxIssues) {
      ++issues_not_shown_;
      return;
    }
    config_.issues.push_back(std::move(issue));
  }
  void issue(const std::string& key, const std::string& value, const std::string& what,
             const std::string& used) {
    issue_shown(key, printable_value(key, value), what, "using " + used);
  }
  bool had_issue(const std::string& key) const { return invalid_.count(key) != 0; }

  // One last issue that counts those left out.
  void finish() {
    if (issues_not_shown_ == 0) return;
    config_.issues.push_back({"", "",
                              std::to_string(issues_not_shown_) +
                                  " more configuration issues not shown (fix the ones above)"});
  }

  int64_t integer(const std::string& key) const {
    return Poco::NumberParser::parse64(value(key));  // validated against the table already
  }
  bool boolean(const std::string& key) const { return value(key) == "true"; }

  // A flush policy; the table checked the key's text, this its syntax.
  FlushPolicy flush(const std::string& key, const FlushPolicy& fallback) {
    const std::string& text = value(key);
    if (auto policy = parse_flush_policy(text)) return *policy;
    flush_issue(key, text, fallback);
    return fallback;
  }
  void flush_issue(const std::string& key, const std::string& text, const FlushPolicy& fallback) {
    issue(key, text,
          "expected next-invoke, end, periodic:<ms> (ms from " + std::to_string(kMinFlushPeriodMs) +
              " to " + std::to_string(kMaxFlushPeriodMs) + ") or continuous",
          to_string(fallback));
  }

 private:
  const Layers& layers_;
  Config& config_;
  std::map<std::string, std::string> values_;
  std::map<std::string, Given> given_;
  std::set<std::string> invalid_;
  size_t issues_not_shown_ = 0;
};

bool valid_spool_dir(const std::string& dir) {
  if (dir.empty() || dir[0] != '/' || dir.size() > 512) return false;
  if (std::any_of(dir.begin(), dir.end(), [](unsigned char c) { return std::iscntrl(c); })) {
    return false;
  }
  for (const auto& part : std::filesystem::path(dir)) {
    if (part == "..") return false;
  }
  return true;
}

// Comma list items, trimmed, empty ones left out.
Poco::StringTokenizer list_items(const std::string& text) {
  return Poco::StringTokenizer(
      text, ",", Poco::StringTokenizer::TOK_TRIM | Poco::StringTokenizer::TOK_IGNORE_EMPTY);
}

void read_sinks(Reader& in, Config& config) {
  config.sinks.clear();
  std::set<std::string> seen;
  for (const std::string& name : list_items(in.value("RELAY_SINKS"))) {
    if (!is_valid_sink_name(name)) {
      in.issue("RELAY_SINKS", name,
               "a sink name may only hold letters, digits, '-' and '_' (1-64 characters)",
               "the other sinks");
    } else if (seen.insert(Poco::toLower(name)).second) {
      if (config.sinks.size() < kMaxSinks) {
        config.sinks.push_back(Poco::toLower(name));
      } else if (seen.size() == kMaxSinks + 1) {  // said once
        in.issue("RELAY_SINKS", name, "at most " + std::to_string(kMaxSinks) + " sinks",
                 "the first " + std::to_string(kMaxSinks));
      }
    }
  }
}

void read_subscription(Reader& in, Config& config) {
  SubscribeRequest& sub = config.subscription;
  sub.schema_version = in.value("RELAY_TELEMETRY_SCHEMA");
  sub.types.clear();
  for (const std::string& type : list_items(Poco::toLower(in.value("RELAY_TELEMETRY_TYPES")))) {
    if (type != "platform" && type != "function" && type != "extension") {
      in.issue("RELAY_TELEMETRY_TYPES", type, "expected platform, function or extension",
               "the other types");
    } else if (std::find(sub.types.begin(), sub.types.end(), type) == sub.types.end()) {
      sub.types.push_back(type);
    }
  }
  if (sub.types.empty()) {
    const std::string fallback = host_default("RELAY_TELEMETRY_TYPES");
    in.issue("RELAY_TELEMETRY_TYPES", in.value("RELAY_TELEMETRY_TYPES"), "no valid type", fallback);
    sub.types.clear();
    for (const std::string& type : list_items(fallback)) sub.types.push_back(type);
  }
  // Ranges documented by the Telemetry API (the table's); Lambda refuses others.
  sub.max_items = static_cast<uint32_t>(in.integer("RELAY_TELEMETRY_MAX_ITEMS"));
  sub.max_bytes = static_cast<uint32_t>(in.integer("RELAY_TELEMETRY_MAX_BYTES"));
  sub.timeout_ms = static_cast<uint32_t>(in.integer("RELAY_TELEMETRY_TIMEOUT_MS"));
}

void read_globals(Reader& in, Config& config) {
  config.log_level = in.value("RELAY_LOG_LEVEL");
  config.strict = in.boolean("RELAY_STRICT");
  read_sinks(in, config);

  config.plugin_dir = in.value("RELAY_PLUGIN_DIR");
  if (config.plugin_dir[0] != '/') {
    const std::string fallback = host_default("RELAY_PLUGIN_DIR");
    in.issue("RELAY_PLUGIN_DIR", config.plugin_dir, "expected an absolute path", fallback);
    config.plugin_dir = fallback;
  }

  int64_t port = in.integer("RELAY_LISTENER_PORT");
  if (port == 9001) {  // reserved by Lambda for its own APIs
    in.issue("RELAY_LISTENER_PORT", "9001", "port 9001 is reserved by Lambda", "an ephemeral port");
    port = Poco::NumberParser::parse64(host_default("RELAY_LISTENER_PORT"));
  }
  config.listener_port = static_cast<uint16_t>(port);

  read_subscription(in, config);
  const SubscribeRequest& sub = config.subscription;

  // Lambda may send up to 2 x maxBytes plus metadata in one POST; the default leaves room.
  const int64_t body_default = 4 * static_cast<int64_t>(sub.max_bytes);
  const int64_t body = in.integer("RELAY_LISTENER_MAX_BODY_BYTES");
  if (body != 0 && body < 2 * static_cast<int64_t>(sub.max_bytes) + 65536) {
    in.issue("RELAY_LISTENER_MAX_BODY_BYTES", std::to_string(body),
             "must be at least 2 x RELAY_TELEMETRY_MAX_BYTES + 65536, or 0 for the default",
             std::to_string(body_default));
    config.listener_max_body_bytes = static_cast<size_t>(body_default);
  } else {
    config.listener_max_body_bytes = static_cast<size_t>(body == 0 ? body_default : body);
  }

  config.min_batch_size = in.integer("DISPATCH_MIN_BATCH_SIZE");
  // At least one Telemetry API batch; 4 MiB keeps a 128 MB function healthy (see outlet.h).
  config.buffer_max_bytes = static_cast<size_t>(in.integer("RELAY_BUFFER_MAX_BYTES"));
  config.delivery_max_bytes = static_cast<size_t>(in.integer("RELAY_DELIVERY_MAX_BYTES"));
  // The high-water mark must leave room below the cap for what arrives while it is delivered.
  // Unset (or invalid), it follows a smaller cap down (a quarter of it).
  const auto flush_max = static_cast<int64_t>(config.buffer_max_bytes / 2);
  const int64_t flush_fallback =
      std::min(Poco::NumberParser::parse64(host_default("RELAY_BUFFER_FLUSH_BYTES")),
               static_cast<int64_t>(config.buffer_max_bytes / 4));
  const int64_t flush = in.integer("RELAY_BUFFER_FLUSH_BYTES");
  if (!in.is_explicit("RELAY_BUFFER_FLUSH_BYTES") || in.had_issue("RELAY_BUFFER_FLUSH_BYTES")) {
    config.buffer_flush_bytes = static_cast<size_t>(flush_fallback);
  } else if (flush > flush_max) {
    in.issue("RELAY_BUFFER_FLUSH_BYTES", std::to_string(flush),
             "must be at most half of RELAY_BUFFER_MAX_BYTES (" +
                 std::to_string(config.buffer_max_bytes) + ")",
             std::to_string(flush_fallback));
    config.buffer_flush_bytes = static_cast<size_t>(flush_fallback);
  } else {
    config.buffer_flush_bytes = static_cast<size_t>(flush);
  }
  config.shutdown_quiet_ms = static_cast<uint32_t>(in.integer("RELAY_SHUTDOWN_QUIET_MS"));
  config.shutdown_margin_ms = static_cast<uint32_t>(in.integer("RELAY_SHUTDOWN_MARGIN_MS"));

  config.invoke_budget_ms = static_cast<uint32_t>(in.integer("RELAY_INVOKE_BUDGET_MS"));
  config.spool = in.boolean("RELAY_SPOOL");
  config.spool_dir = in.value("RELAY_SPOOL_DIR");
  if (!valid_spool_dir(config.spool_dir)) {
    const std::string fallback = host_default("RELAY_SPOOL_DIR");
    in.issue("RELAY_SPOOL_DIR", config.spool_dir,
             "expected an absolute path without '..' or control characters (at most 512 "
             "characters)",
             fallback);
    config.spool_dir = fallback;
  }
  // Lambda's /tmp holds 512 MB to 10 GB and is shared with the function.
  config.spool_max_bytes = static_cast<uint64_t>(in.integer("RELAY_SPOOL_MAX_BYTES"));
  config.spool_max_files = static_cast<uint32_t>(in.integer("RELAY_SPOOL_MAX_FILES"));
  // A poison's retry life: both must be reached (README "Poison deliveries").
  config.retry_max_attempts = static_cast<uint32_t>(in.integer("RELAY_RETRY_MAX_ATTEMPTS"));
  config.retry_max_age_s = static_cast<uint32_t>(in.integer("RELAY_RETRY_MAX_AGE_S"));
}

bool managed_instances_detected(const std::map<std::string, std::string>& environment) {
  const auto type = environment.find("AWS_LAMBDA_INITIALIZATION_TYPE");
  return type != environment.end() && Poco::trim(type->second) == kManagedInstancesType;
}

// RELAY_MANAGED_INSTANCES, then what it implies: SHUTDOWN-only registration (main), schema
// 2025-01-29 and no flush mode that needs INVOKE events.
void resolve_managed_instances(Reader& in, Config& config,
                               const std::map<std::string, std::string>& environment) {
  config.managed_instances_setting = in.value("RELAY_MANAGED_INSTANCES");
  const bool detected = managed_instances_detected(environment);
  if (config.managed_instances_setting == "on") {
    config.managed_instances = true;
    config.managed_instances_why = "forced by RELAY_MANAGED_INSTANCES=on";
  } else if (config.managed_instances_setting == "off") {
    config.managed_instances = false;
    config.managed_instances_why = "disabled by RELAY_MANAGED_INSTANCES=off";
  } else {
    config.managed_instances = detected;
    config.managed_instances_why =
        detected ? std::string("AWS_LAMBDA_INITIALIZATION_TYPE=") + kManagedInstancesType
                 : "not detected";
  }
  if (!config.managed_instances) return;
  SubscribeRequest& sub = config.subscription;
  if (sub.schema_version != kManagedInstancesSchema) {
    if (in.is_explicit("RELAY_TELEMETRY_SCHEMA")) {
      config.warnings.push_back("RELAY_TELEMETRY_SCHEMA=" + sub.schema_version +
                                ": Lambda Managed Instances requires " + kManagedInstancesSchema +
                                "; using " + kManagedInstancesSchema + " instead");
    }
    sub.schema_version = kManagedInstancesSchema;
  }
}

// A policy that needs INVOKE events cannot work on Managed Instances; one that needs
// platform.runtimeDone cannot work without platform telemetry. `key` names where it came from.
FlushPolicy adjust_flush(Reader& in, Config& config, const std::string& key, FlushPolicy policy,
                         bool explicit_value) {
  const bool needs_invoke = policy.mode == FlushMode::kNextInvoke || policy.mode == FlushMode::kEnd;
  if (config.managed_instances && needs_invoke) {
    if (explicit_value) {
      config.warnings.push_back(key + "=" + to_string(policy) +
                                ": not possible on Lambda Managed Instances (there are no INVOKE "
                                "events); using continuous instead");
    }
    return FlushPolicy{FlushMode::kContinuous, 0};
  }
  const auto& types = config.subscription.types;
  if (policy.mode == FlushMode::kEnd &&
      std::find(types.begin(), types.end(), "platform") == types.end()) {
    in.issue(key, to_string(policy),
             "end needs platform in RELAY_TELEMETRY_TYPES to see platform.runtimeDone",
             "next-invoke");
    return FlushPolicy{};
  }
  return policy;
}

void read_flush(Reader& in, Config& config) {
  // The table's default is a valid policy (a test holds it to that).
  const FlushPolicy table_default =
      parse_flush_policy(host_default("RELAY_FLUSH")).value_or(FlushPolicy{});
  const FlushPolicy global = in.flush("RELAY_FLUSH", table_default);
  config.flush = adjust_flush(in, config, "RELAY_FLUSH", global,
                              in.is_explicit("RELAY_FLUSH") && !in.had_issue("RELAY_FLUSH"));
  config.sink_flush.clear();
  for (const std::string& sink : config.sinks) {
    const std::string key = sink_variable(sink, kSinkFlushKey);
    if (const std::optional<Given> own = in.layers().get(key)) {
      std::optional<FlushPolicy> policy = parse_flush_policy(own->value);
      if (!policy) in.flush_issue(key, own->value, global);
      config.sink_flush[sink] = adjust_flush(in, config, key, policy.value_or(global), true);
    } else {
      config.sink_flush[sink] = config.flush;
    }
  }
  // Lambda holds each event up to timeoutMs before it sends it, and in end mode that wait is
  // part of the invocation budget: ask for the shortest one unless it was set.
  if (any_sink_flushes(config, FlushMode::kEnd) && !in.is_explicit("RELAY_TELEMETRY_TIMEOUT_MS")) {
    config.subscription.timeout_ms = kEndModeTelemetryTimeoutMs;
  }
}

// The names a sink's keys do not list, for an unknown key's issue (bounded: a line, not a page).
std::string declared_names(std::span<const relay_config_key> keys) {
  std::string names;
  for (const relay_config_key& k : keys) {
    const std::string name = std::string(k.name) + ((k.flags & RELAY_KEY_PREFIX) ? "*" : "");
    if (names.size() + name.size() > 200) return names + ", ...";
    names += (names.empty() ? "" : ", ") + name;
  }
  return names;
}

const Given* find_given(const std::vector<Given>& given, std::string_view key) {
  const auto it =
      std::find_if(given.begin(), given.end(), [&](const Given& g) { return g.key == key; });
  return it == given.end() ? nullptr : &*it;
}

// What is set for sink `sink`: RELAY_<SINK>_<KEY> as key "<key>" (not RELAY_<SINK>_FLUSH, the
// host's), then a declared key's seed variable (DISPATCH_POST_URI for http's post_uri) when its
// own is unset.
std::vector<Given> sink_given(const Reader& in, const std::set<std::string>& layer_keys,
                              const std::string& sink, const SinkKeyTable& keys) {
  const std::string prefix = sink_variable(sink, "");
  std::vector<Given> given;
  for (const std::string& variable : layer_keys) {
    if (variable.size() <= prefix.size() || variable.compare(0, prefix.size(), prefix) != 0 ||
        host_config_key(variable) != nullptr) {
      continue;
    }
    const std::string key = Poco::toLower(variable.substr(prefix.size()));
    if (key == kSinkFlushKey) continue;
    if (std::optional<Given> g = in.layers().get(variable)) {
      given.push_back({key, std::move(g->value), variable, std::move(g->source)});
    }
  }
  for (const relay_config_key& k : keys) {
    const std::string_view alias = sink_key_alias(sink, k.name);
    if (alias.empty() || find_given(given, k.name) != nullptr) continue;
    if (const Given* seed = in.given(std::string(alias))) {
      given.push_back({k.name, seed->value, seed->variable, seed->source});
    }
  }
  return given;
}

// A sink that declares its keys: validated, one issue per bad key naming its variable; create()
// gets the validated values; --check every declared key with its effective value and source,
// then the prefix keys given.
void read_declared_keys(Reader& in, Config& config, const std::string& sink,
                        const SinkKeyTable& keys, const std::vector<Given>& given) {
  auto variable_of = [&](const std::string& key) {
    const Given* g = find_given(given, key);
    return g != nullptr ? g->variable : sink_variable(sink, key);
  };
  std::vector<std::pair<std::string_view, std::string_view>> pairs;
  for (const Given& g : given) pairs.emplace_back(g.key, g.value);
  const sdk::ValidatedConfig checked = sdk::validate(keys, pairs);
  std::set<std::string> invalid;
  for (const sdk::KeyIssue& bad : checked.issues) {
    invalid.insert(bad.key);
    const SinkKeyIssue text = sink_key_issue(sink, keys, bad, variable_of(bad.key));
    in.add_issue({text.variable, text.shown, text.message});
  }
  config.sinks_with_keys.insert(sink);
  const SinkConfig& out = config.sink_configs[sink] = checked.values;
  std::vector<ConfigEntry>& entries = config.sink_entries[sink];
  auto add_entry = [&](const std::string& key, const std::string& value) {
    const Given* g = find_given(given, key);
    std::string source = g == nullptr ? "default" : g->source;
    if (invalid.count(key) != 0) source = "default, " + source + " value invalid";
    const bool secret = sdk::is_secret(keys, key) || is_secret_key(key);
    entries.push_back({variable_of(key), shown_value(key, value, secret), source});
  };
  for (const relay_config_key& k : keys) {
    if ((k.flags & RELAY_KEY_PREFIX) != 0) continue;
    const auto it =
        std::find_if(out.begin(), out.end(), [&](const auto& kv) { return kv.first == k.name; });
    add_entry(k.name, it != out.end() ? it->second : std::string());
  }
  for (const auto& entry : out) {
    const bool declared = std::any_of(
        keys.begin(), keys.end(), [&](const relay_config_key& k) { return entry.first == k.name; });
    if (!declared) add_entry(entry.first, entry.second);
  }
}

// Each requested sink's configuration. With the keys its plugin declares (ABI 1.3) it is
// validated here; without, it passes unchecked as before 1.3, plus http's seed URI.
void read_sink_configs(Reader& in, Config& config, const SinkKeySource& sink_keys) {
  const std::set<std::string> layer_keys = in.layers().keys();
  for (const std::string& sink : config.sinks) {
    std::optional<SinkKeyTable> keys =
        sink_keys ? sink_keys(config.plugin_dir, sink) : std::nullopt;
    if (keys && keys->empty()) keys.reset();
    const std::vector<Given> given =
        sink_given(in, layer_keys, sink, keys.value_or(SinkKeyTable{}));
    if (keys) {
      read_declared_keys(in, config, sink, *keys, given);
      continue;
    }
    SinkConfig& out = config.sink_configs[sink];
    std::vector<ConfigEntry>& entries = config.sink_entries[sink];
    for (const Given& g : given) {
      out.emplace_back(g.key, g.value);
      entries.push_back({g.variable, printable_value(g.key, g.value), g.source});
    }
    if (sink == "http" && find_given(given, "post_uri") == nullptr) {
      out.emplace_back("post_uri", in.value("DISPATCH_POST_URI"));
    }
    std::sort(out.begin(), out.end());
  }
}

}  // namespace

namespace {

// Keys whose values must never be printed: any name that hints at a credential ("pass" covers
// PASSWD and PASSWORD, "auth" AUTHORIZATION).
bool is_secret_key(const std::string& key) {
  const std::string k = Poco::toLower(key);
  for (const char* word : {"auth", "bearer", "cookie", "credential", "header", "key", "pass", "pwd",
                           "secret", "session", "signature", "token"}) {
    if (k.find(word) != std::string::npos) return true;
  }
  return false;
}

// A key naming a uri or url, or any value that looks like one or like "user:password@host".
bool is_uri_value(const std::string& key, const std::string& value) {
  const std::string k = Poco::toLower(key);
  const size_t at = value.find('@');
  return k.find("uri") != std::string::npos || k.find("url") != std::string::npos ||
         value.find("://") != std::string::npos ||
         (at != std::string::npos && value.find(':') < at);
}

void replace_all(std::string& text, std::string_view what, std::string_view with) {
  if (what.empty()) return;
  for (size_t at = text.find(what); at != std::string::npos;
       at = text.find(what, at + with.size())) {
    text.replace(at, what.size(), with);
  }
}

bool all_of_chars(std::string_view text, const std::function<bool(char)>& allowed) {
  return std::all_of(text.begin(), text.end(), allowed);
}

bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// A URI taken apart leniently, so that even a malformed one shows nothing secret. The user info
// ends at the last '@' before the query: a '/' in a password must not expose it.
struct UriParts {
  std::string_view scheme;  // empty without "://"
  std::optional<std::string_view> user_info;
  std::string_view host;
  std::optional<std::string_view> port;
  std::string_view path;
  std::optional<std::string_view> query;
  std::optional<std::string_view> fragment;

  explicit UriParts(std::string_view uri) {
    if (const size_t colon_slashes = uri.find("://"); colon_slashes != std::string_view::npos) {
      scheme = uri.substr(0, colon_slashes);
      uri.remove_prefix(colon_slashes + 3);
    }
    if (const size_t hash = uri.find('#'); hash != std::string_view::npos) {
      fragment = uri.substr(hash + 1);
      uri = uri.substr(0, hash);
    }
    if (const size_t question = uri.find('?'); question != std::string_view::npos) {
      query = uri.substr(question + 1);
      uri = uri.substr(0, question);
    }
    if (const size_t at = uri.rfind('@'); at != std::string_view::npos) {
      user_info = uri.substr(0, at);
      uri.remove_prefix(at + 1);
    }
    const size_t slash = std::min(uri.find('/'), uri.size());
    path = uri.substr(slash);
    std::string_view host_port = uri.substr(0, slash);
    // A bracketed IPv6 address holds colons of its own.
    const size_t host_end = host_port.rfind(']');
    const size_t colon = host_port.find(':', host_end == std::string_view::npos ? 0 : host_end);
    host = host_port.substr(0, colon);
    if (colon != std::string_view::npos) port = host_port.substr(colon + 1);
  }

  // What printable() hides, for finding it in text built by others.
  std::vector<std::string_view> hidden_parts() const {
    std::vector<std::string_view> parts;
    for (const auto& part : {user_info, query, fragment}) {
      if (part) parts.push_back(*part);
    }
    if (!valid()) parts.push_back(path);
    return parts;
  }

  bool scheme_valid() const {
    return !scheme.empty() && std::isalpha(static_cast<unsigned char>(scheme[0])) != 0 &&
           all_of_chars(scheme,
                        [](char c) { return is_alnum(c) || c == '+' || c == '-' || c == '.'; });
  }
  bool host_valid() const {
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
      return all_of_chars(host.substr(1, host.size() - 2), [](char c) {
        return std::isxdigit(static_cast<unsigned char>(c)) != 0 || c == ':' || c == '.';
      });
    }
    return !host.empty() && host.size() <= 253 && all_of_chars(host, [](char c) {
      return is_alnum(c) || c == '-' || c == '.' || c == '_';
    });
  }
  bool port_digits() const {
    return port && !port->empty() && port->size() <= 5 &&
           all_of_chars(*port, [](char c) { return c >= '0' && c <= '9'; });
  }
  bool port_valid() const {
    if (!port) return true;
    if (!port_digits()) return false;
    int number = 0;
    return Poco::NumberParser::tryParse(std::string(*port), number) && number >= 1 &&
           number <= 65535;
  }
  bool path_valid() const {
    return all_of_chars(path, [](char c) {
      const auto u = static_cast<unsigned char>(c);
      return u > 0x20 && u < 0x7f;
    });
  }
  bool valid() const {
    // A '/' in the user info is a password cut loose from it (or a path holding '@').
    const bool user_info_valid = !user_info || user_info->find('/') == std::string_view::npos;
    return scheme_valid() && user_info_valid && host_valid() && port_valid() && path_valid();
  }

  std::string printable() const {
    std::string shown = scheme_valid() ? std::string(scheme) + "://" : std::string();
    if (!valid()) {
      // Only the parts that cannot hide a secret; the rest may be a password cut loose.
      shown += host.empty() ? "<no host>" : host_valid() ? std::string(host) : "<invalid host>";
      if (port) shown += ":" + (port_digits() ? std::string(*port) : std::string("<invalid port>"));
      return shown + " (not a valid URI: the rest is not shown)";
    }
    if (user_info) shown += "<redacted>@";
    shown += std::string(host);
    if (port) shown += ":" + std::string(*port);
    shown += std::string(path);
    if (query) shown += "?<redacted>";
    if (fragment) shown += "#<redacted>";
    return shown;
  }
};

struct FileText {
  std::string text;
  std::string error;  // empty when the file was read
};

std::string file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "a special file";
}

// The configuration file is read before the extension registers, so whatever it names must not
// block, spin or grow: only a regular file (checked on what was opened, so no swap in between)
// of at most kMaxConfigFileBytes. O_NONBLOCK keeps a FIFO from waiting for a writer.
FileText read_config_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    return {{}, "cannot open the file (" + std::generic_category().message(errno) + ")"};
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } const closer{fd};
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    return {{}, "cannot inspect the file (" + std::generic_category().message(errno) + ")"};
  }
  if (!S_ISREG(info.st_mode)) return {{}, file_kind(info.st_mode) + ", not a regular file"};
  const std::string too_large =
      "the file is larger than " + std::to_string(kMaxConfigFileBytes) + " bytes";
  if (static_cast<uint64_t>(info.st_size) > kMaxConfigFileBytes) return {{}, too_large};
  FileText file;
  std::array<char, 16384> chunk{};
  // One byte past the limit tells a file that grew since fstat.
  while (file.text.size() <= kMaxConfigFileBytes) {
    const ssize_t got = ::read(fd, chunk.data(), chunk.size());
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      return {{}, "cannot read the file (" + std::generic_category().message(errno) + ")"};
    }
    if (got == 0) return file;
    file.text.append(chunk.data(), static_cast<size_t>(got));
  }
  return {{}, too_large};
}

}  // namespace

std::optional<FlushPolicy> parse_flush_policy(const std::string& text) {
  const std::string value = Poco::toLower(Poco::trim(text));
  if (value == "next-invoke") return FlushPolicy{FlushMode::kNextInvoke, 0};
  if (value == "end") return FlushPolicy{FlushMode::kEnd, 0};
  if (value == "continuous") return FlushPolicy{FlushMode::kContinuous, 0};
  constexpr std::string_view kPeriodic = "periodic:";
  if (value.rfind(kPeriodic, 0) == 0) {
    const std::string digits = value.substr(kPeriodic.size());
    int64_t ms = 0;
    // Digits only: NumberParser alone would take "+10" and " 10".
    if (!digits.empty() && std::all_of(digits.begin(), digits.end(), ::isdigit) &&
        digits.size() <= 9 && Poco::NumberParser::tryParse64(digits, ms) &&
        ms >= kMinFlushPeriodMs && ms <= kMaxFlushPeriodMs) {
      return FlushPolicy{FlushMode::kPeriodic, static_cast<uint32_t>(ms)};
    }
  }
  return std::nullopt;
}

std::string to_string(const FlushPolicy& policy) {
  switch (policy.mode) {
    case FlushMode::kNextInvoke:
      return "next-invoke";
    case FlushMode::kEnd:
      return "end";
    case FlushMode::kPeriodic:
      return "periodic:" + std::to_string(policy.period_ms);
    case FlushMode::kContinuous:
      return "continuous";
  }
  return "next-invoke";
}

bool any_sink_flushes(const Config& config, FlushMode mode) {
  return std::any_of(config.sink_flush.begin(), config.sink_flush.end(),
                     [mode](const auto& entry) { return entry.second.mode == mode; });
}

OutletOptions outlet_options(const Config& config, const std::string& sink) {
  OutletOptions options;
  options.min_batch_size = config.min_batch_size;
  const auto flush = config.sink_flush.find(sink);
  options.flush = flush != config.sink_flush.end() ? flush->second : config.flush;
  options.buffer_max_bytes = config.buffer_max_bytes;
  options.flush_high_water_bytes = config.buffer_flush_bytes;
  options.delivery_max_bytes = config.delivery_max_bytes;
  options.spool.enabled = config.spool;
  options.spool.dir = (std::filesystem::path(config.spool_dir) / sink).string();
  options.spool.max_bytes = config.spool_max_bytes;
  options.spool.max_files = config.spool_max_files;
  options.retry_max_attempts = config.retry_max_attempts;
  options.retry_max_age_ms = uint64_t{config.retry_max_age_s} * 1000;
  return options;
}

std::string issue_line(const std::string& variable, const std::string& shown,
                       const std::string& what, const std::string& consequence) {
  const bool instead = consequence.rfind("using ", 0) == 0;
  // An undeclared key's name comes from outside (a file's key may hold anything): one bounded line.
  return escape_for_log(variable, kMaxShownValueBytes) + "=" + shown + ": " + what + "; " +
         consequence + (instead ? " instead" : "");
}

SinkKeyIssue sink_key_issue(const std::string& sink, std::span<const relay_config_key> keys,
                            const sdk::KeyIssue& issue, std::string variable) {
  if (variable.empty()) variable = sink_variable(sink, issue.key);
  // The key decides, not the variable: RELAY_KEYED_* would look like a "key" to is_secret_key.
  const bool secret = sdk::is_secret(keys, issue.key) || is_secret_key(issue.key);
  SinkKeyIssue out{variable, shown_value(issue.key, issue.value, secret), {}};
  if (issue.unknown) {
    out.message = issue_line(
        variable, out.shown,
        "not a key of the " + sink + " sink (it reads " + declared_names(keys) + ")", "ignored");
  } else {
    out.message = issue_line(variable, out.shown, issue.problem,
                             issue.fallback.empty()
                                 ? "left unset"
                                 : "using " + shown_value(issue.key, issue.fallback, secret));
  }
  return out;
}

std::string printable_value(const std::string& key, const std::string& value) {
  if (value.empty()) return value;
  if (is_secret_key(key)) return "<redacted>";
  if (is_uri_value(key, value)) {
    return escape_for_log(UriParts(Poco::trim(value)).printable(), kMaxShownValueBytes);
  }
  return escape_for_log(value, kMaxShownValueBytes);
}

std::string redact_config_values(std::string text, const SinkConfig& config,
                                 std::span<const relay_config_key> keys) {
  // Shorter values would match ordinary words; they are no secret worth the name either.
  constexpr size_t kShortest = 4;
  for (const auto& [key, value] : config) {
    const bool secret = sdk::is_secret(keys, key) || is_secret_key(key);
    if (const std::string shown = shown_value(key, value, secret);
        value.size() >= kShortest && shown != value) {
      replace_all(text, value, shown);
    }
    if (secret || !is_uri_value(key, value)) continue;
    const std::string uri = Poco::trim(value);
    for (const std::string_view part : UriParts(uri).hidden_parts()) {
      if (part.size() >= kShortest) replace_all(text, part, "<redacted>");
    }
  }
  return text;
}

std::optional<bool> managed_instances_from_environment(
    const std::map<std::string, std::string>& environment) {
  if (auto file = environment.find("RELAY_CONFIG_FILE");
      file != environment.end() && !Poco::trim(file->second).empty()) {
    return std::nullopt;  // the file may set RELAY_MANAGED_INSTANCES
  }
  const auto setting = environment.find("RELAY_MANAGED_INSTANCES");
  const std::string value =
      setting == environment.end() ? "auto" : Poco::toLower(Poco::trim(setting->second));
  if (value == "on") return true;
  if (value == "off") return false;
  // "auto", and anything invalid, which load_config reports and reads as auto.
  return managed_instances_detected(environment);
}

std::map<std::string, std::string> process_environment() {
  std::map<std::string, std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string text(*entry);
    const size_t eq = text.find('=');
    if (eq != std::string::npos) env.emplace(text.substr(0, eq), text.substr(eq + 1));
  }
  return env;
}

Config load_config(const std::map<std::string, std::string>& environment,
                   const SinkKeySource& sink_keys) {
  Config config;
  AutoPtr<MapConfiguration> env_layer(new MapConfiguration);
  for (const auto& [name, value] : environment) {
    if (name.rfind("RELAY_", 0) == 0 || name.rfind("DISPATCH_", 0) == 0) {
      env_layer->setString(name, value);
    }
  }

  AutoPtr<AbstractConfiguration> file_layer;
  if (auto it = environment.find("RELAY_CONFIG_FILE");
      it != environment.end() && !Poco::trim(it->second).empty()) {
    config.config_file = Poco::trim(it->second);
    FileText file = read_config_file(config.config_file);
    if (file.error.empty()) {
      try {
        std::istringstream text(std::move(file.text));
        file_layer = new Poco::Util::PropertyFileConfiguration(text);
      } catch (const std::exception& e) {
        file.error = std::string("cannot parse the file (") + e.what() + ")";
      }
    }
    if (!file.error.empty()) {
      const std::string shown = printable_value("RELAY_CONFIG_FILE", config.config_file);
      config.issues.push_back({"RELAY_CONFIG_FILE", shown,
                               "RELAY_CONFIG_FILE=" + shown + ": " + escape_for_log(file.error) +
                                   "; using the environment and defaults only"});
      file_layer = nullptr;
    }
  }

  const Layers layers(*env_layer, file_layer.get(),
                      "file " + printable_value("RELAY_CONFIG_FILE", config.config_file));
  Reader reader(layers, config);
  reader.validate_host_keys();
  read_globals(reader, config);
  resolve_managed_instances(reader, config, environment);
  read_sink_configs(reader, config, sink_keys);
  read_flush(reader, config);
  reader.finish();

  // --check: every host key with its effective value and where it came from.
  const bool timeout_lowered = any_sink_flushes(config, FlushMode::kEnd) &&
                               !reader.is_explicit("RELAY_TELEMETRY_TIMEOUT_MS");
  for (const relay_config_key& k : host_config_keys()) {
    const std::string key = k.name;
    const Given* given = reader.given(key);
    std::string source = given != nullptr ? given->source : "default";
    std::string value = reader.value(key);
    if (given != nullptr && reader.had_issue(key)) source += ", invalid: see below";
    // Values the extension derived rather than read: show what it uses.
    if (key == "RELAY_TELEMETRY_TIMEOUT_MS" && timeout_lowered) {
      value = std::to_string(config.subscription.timeout_ms);
      source += ", lowered for the end flush mode";
    } else if (key == "RELAY_TELEMETRY_SCHEMA" && config.managed_instances &&
               value != config.subscription.schema_version) {
      value = config.subscription.schema_version;
      source += ", required on Managed Instances";
    }
    config.entries.push_back(
        {key, shown_value(key, value, (k.flags & RELAY_KEY_SECRET) != 0), source});
  }
  // Then whatever else was set: a requested sink's RELAY_<SINK>_FLUSH, or a key nothing reads.
  std::set<std::string> shown;
  for (const auto& [sink, entries] : config.sink_entries) {
    for (const ConfigEntry& e : entries) shown.insert(e.key);
  }
  auto sink_key = [&](const std::string& key) {  // passed to a sink, or an issue of its own
    return std::any_of(config.sinks.begin(), config.sinks.end(), [&](const std::string& sink) {
      const std::string prefix = sink_variable(sink, "");
      return key.size() > prefix.size() && key.compare(0, prefix.size(), prefix) == 0 &&
             key != sink_variable(sink, kSinkFlushKey);
    });
  };
  for (const std::string& key : layers.keys()) {
    if (host_config_key(key) != nullptr || shown.count(key) != 0 || sink_key(key)) continue;
    const std::optional<Given> given = layers.get(key);
    if (!given) continue;
    bool read = false;
    for (const std::string& sink : config.sinks)
      read = read || key == sink_variable(sink, kSinkFlushKey);
    config.entries.push_back({key, printable_value(key, given->value),
                              given->source + (read ? "" : ", not read by the host or a sink")});
  }
  return config;
}

}  // namespace relay
