#include "config.h"

#include <Poco/AutoPtr.h>
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
#include <charconv>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <system_error>

#include "logging.h"

extern char** environ;

namespace relay {
namespace {

using Poco::AutoPtr;
using Poco::Util::LayeredConfiguration;
using Poco::Util::MapConfiguration;

// Built-in defaults of every global key; the single source for --check and the README table.
const std::vector<std::pair<std::string, std::string>> kDefaults = {
    {"RELAY_LOG_LEVEL", "info"},
    {"RELAY_SINKS", "http"},
    {"RELAY_PLUGIN_DIR", RELAY_DEFAULT_PLUGIN_DIR},
    {"RELAY_STRICT", "false"},
    {"RELAY_LISTENER_PORT", "0"},
    {"RELAY_LISTENER_MAX_BODY_BYTES", "0"},
    {"RELAY_TELEMETRY_TYPES", "platform,function"},
    {"RELAY_TELEMETRY_SCHEMA", "2022-12-13"},
    {"RELAY_TELEMETRY_MAX_ITEMS", "1000"},
    {"RELAY_TELEMETRY_MAX_BYTES", "262144"},
    {"RELAY_TELEMETRY_TIMEOUT_MS", "100"},
    {"RELAY_BUFFER_MAX_BYTES", "4194304"},
    {"RELAY_BUFFER_FLUSH_BYTES", "1048576"},
    {"RELAY_DELIVERY_MAX_BYTES", "1048576"},
    {"RELAY_FLUSH", "next-invoke"},
    {"RELAY_INVOKE_BUDGET_MS", "100"},
    {"RELAY_SPOOL", "on"},
    {"RELAY_SPOOL_DIR", "/tmp/telemetry-relay-spool"},
    {"RELAY_SPOOL_MAX_BYTES", "16777216"},
    {"RELAY_SPOOL_MAX_FILES", "256"},
    {"RELAY_RETRY_MAX_ATTEMPTS", "10"},
    {"RELAY_RETRY_MAX_AGE_S", "3600"},
    {"RELAY_MANAGED_INSTANCES", "auto"},
    {"RELAY_SHUTDOWN_QUIET_MS", "250"},
    {"RELAY_SHUTDOWN_MARGIN_MS", "150"},
    {"DISPATCH_MIN_BATCH_SIZE", "0"},
    {"DISPATCH_POST_URI", ""},
};

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

std::string trim(const std::string& text) {
  const auto begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return {};
  const auto end = text.find_last_not_of(" \t\r\n");
  return text.substr(begin, end - begin + 1);
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    std::string item = trim(text.substr(start, comma - start));
    if (!item.empty()) items.push_back(item);
    start = comma + 1;
  }
  return items;
}

std::optional<int64_t> parse_int(const std::string& text) {
  const std::string value = trim(text);
  int64_t parsed = 0;
  const char* begin = value.data();
  if (!value.empty() && value[0] == '+') ++begin;
  const char* end = value.data() + value.size();
  const auto [ptr, ec] = std::from_chars(begin, end, parsed);
  if (value.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return parsed;
}

constexpr char kManagedInstancesType[] = "lambda-managed-instances";
constexpr char kManagedInstancesSchema[] = "2025-01-29";
// Lowest timeoutMs Lambda accepts: in end mode the wait for platform.runtimeDone is part of the
// invocation budget, and Lambda holds each event up to timeoutMs before it sends it.
constexpr uint32_t kEndModeTelemetryTimeoutMs = 25;

// RELAY_<SINK>_ with the sink name upper-cased and '-' turned into '_'.
std::string sink_prefix(const std::string& sink) {
  std::string prefix = "RELAY_" + sink + "_";
  std::transform(prefix.begin(), prefix.end(), prefix.begin(), [](unsigned char c) {
    return c == '-' ? '_' : static_cast<char>(std::toupper(c));
  });
  return prefix;
}

// The host reads RELAY_<SINK>_FLUSH itself; it is not handed to the plugin.
constexpr char kSinkFlushKey[] = "flush";

class Reader {
 public:
  Reader(LayeredConfiguration& layers, Config& config,
         std::function<bool(const std::string&)> is_explicit)
      : layers_(layers), config_(config), is_explicit_(std::move(is_explicit)) {}

  std::string raw(const std::string& key) const { return layers_.getRawString(key, ""); }
  // Set in the environment or the file, not just defaulted.
  bool is_explicit(const std::string& key) const { return is_explicit_(key); }

  // Each issue is a log line: a list of thousands of bad items must not become thousands.
  void issue(const std::string& key, const std::string& value, const std::string& what,
             const std::string& used) {
    if (config_.issues.size() >= kMaxIssues) {
      ++issues_not_shown_;
      return;
    }
    const std::string shown = printable_value(key, value);
    config_.issues.push_back(
        {key, shown, key + "=" + shown + ": " + what + "; using " + used + " instead"});
  }

  // One last issue that counts those left out.
  void finish() {
    if (issues_not_shown_ == 0) return;
    config_.issues.push_back({"", "",
                              std::to_string(issues_not_shown_) +
                                  " more configuration issues not shown (fix the ones above)"});
  }

  int64_t integer(const std::string& key, int64_t min, int64_t max, int64_t fallback) {
    const std::string value = raw(key);
    const auto parsed = parse_int(value);
    if (!parsed || *parsed < min || *parsed > max) {
      issue(key, value,
            "expected a whole number from " + std::to_string(min) + " to " + std::to_string(max),
            std::to_string(fallback));
      return fallback;
    }
    return *parsed;
  }

  bool boolean(const std::string& key, bool fallback, bool on_off = false) {
    const std::string value = lower(trim(raw(key)));
    if (value == "true" || value == "1" || value == "yes" || value == "on") return true;
    if (value == "false" || value == "0" || value == "no" || value == "off") return false;
    if (on_off) {
      issue(key, value, "expected on or off", fallback ? "on" : "off");
    } else {
      issue(key, value, "expected true or false", fallback ? "true" : "false");
    }
    return fallback;
  }

  // A flush policy; nullopt when the key is absent (per-sink keys have no default).
  std::optional<FlushPolicy> flush(const std::string& key, const FlushPolicy& fallback) {
    if (!layers_.has(key)) return std::nullopt;
    const std::string value = raw(key);
    if (auto policy = parse_flush_policy(value)) return policy;
    issue(key, value,
          "expected next-invoke, end, periodic:<ms> (ms from " + std::to_string(kMinFlushPeriodMs) +
              " to " + std::to_string(kMaxFlushPeriodMs) + ") or continuous",
          to_string(fallback));
    return fallback;
  }

  std::string choice(const std::string& key, const std::set<std::string>& allowed,
                     const std::string& fallback) {
    const std::string value = lower(trim(raw(key)));
    if (allowed.count(value) != 0) return value;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    issue(key, value, "expected one of " + list, fallback);
    return fallback;
  }

 private:
  LayeredConfiguration& layers_;
  Config& config_;
  std::function<bool(const std::string&)> is_explicit_;
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

void read_globals(Reader& in, Config& config) {
  config.log_level =
      in.choice("RELAY_LOG_LEVEL", {"error", "warn", "info", "debug", "trace"}, "info");
  config.strict = in.boolean("RELAY_STRICT", false);

  config.sinks.clear();
  std::set<std::string> seen;
  for (const std::string& name : split_list(in.raw("RELAY_SINKS"))) {
    if (!is_valid_sink_name(name)) {
      in.issue("RELAY_SINKS", name,
               "a sink name may only hold letters, digits, '-' and '_' (1-64 characters)",
               "the other sinks");
    } else if (seen.insert(lower(name)).second) {
      if (config.sinks.size() < kMaxSinks) {
        config.sinks.push_back(lower(name));
      } else if (seen.size() == kMaxSinks + 1) {  // said once
        in.issue("RELAY_SINKS", name, "at most " + std::to_string(kMaxSinks) + " sinks",
                 "the first " + std::to_string(kMaxSinks));
      }
    }
  }

  config.plugin_dir = trim(in.raw("RELAY_PLUGIN_DIR"));
  if (config.plugin_dir.empty() || config.plugin_dir[0] != '/') {
    in.issue("RELAY_PLUGIN_DIR", config.plugin_dir, "expected an absolute path",
             RELAY_DEFAULT_PLUGIN_DIR);
    config.plugin_dir = RELAY_DEFAULT_PLUGIN_DIR;
  }

  int64_t port = in.integer("RELAY_LISTENER_PORT", 0, 65535, 0);
  if (port == 9001) {  // reserved by Lambda for its own APIs
    in.issue("RELAY_LISTENER_PORT", "9001", "port 9001 is reserved by Lambda", "an ephemeral port");
    port = 0;
  }
  config.listener_port = static_cast<uint16_t>(port);

  SubscribeRequest& sub = config.subscription;
  sub.schema_version =
      in.choice("RELAY_TELEMETRY_SCHEMA", {"2022-07-01", "2022-12-13", "2025-01-29"}, "2022-12-13");
  sub.types.clear();
  for (const std::string& type : split_list(lower(in.raw("RELAY_TELEMETRY_TYPES")))) {
    if (type != "platform" && type != "function" && type != "extension") {
      in.issue("RELAY_TELEMETRY_TYPES", type, "expected platform, function or extension",
               "the other types");
    } else if (std::find(sub.types.begin(), sub.types.end(), type) == sub.types.end()) {
      sub.types.push_back(type);
    }
  }
  if (sub.types.empty()) {
    in.issue("RELAY_TELEMETRY_TYPES", in.raw("RELAY_TELEMETRY_TYPES"), "no valid type",
             "platform,function");
    sub.types = {"platform", "function"};
  }
  // Ranges documented by the Telemetry API; Lambda refuses a subscription outside them.
  sub.max_items = static_cast<uint32_t>(in.integer("RELAY_TELEMETRY_MAX_ITEMS", 1000, 10000, 1000));
  sub.max_bytes =
      static_cast<uint32_t>(in.integer("RELAY_TELEMETRY_MAX_BYTES", 262144, 1048576, 262144));
  sub.timeout_ms = static_cast<uint32_t>(in.integer("RELAY_TELEMETRY_TIMEOUT_MS", 25, 30000, 100));

  // Lambda may send up to 2 x maxBytes plus metadata in one POST; the default leaves room.
  const int64_t body_default = 4 * static_cast<int64_t>(sub.max_bytes);
  const int64_t body = in.integer("RELAY_LISTENER_MAX_BODY_BYTES", 0, 64 << 20, 0);
  if (body != 0 && body < 2 * static_cast<int64_t>(sub.max_bytes) + 65536) {
    in.issue("RELAY_LISTENER_MAX_BODY_BYTES", std::to_string(body),
             "must be at least 2 x RELAY_TELEMETRY_MAX_BYTES + 65536, or 0 for the default",
             std::to_string(body_default));
    config.listener_max_body_bytes = static_cast<size_t>(body_default);
  } else {
    config.listener_max_body_bytes = static_cast<size_t>(body == 0 ? body_default : body);
  }

  config.min_batch_size = in.integer("DISPATCH_MIN_BATCH_SIZE", 0, 1000000, 0);
  // At least one Telemetry API batch; 4 MiB keeps a 128 MB function healthy (see outlet.h).
  config.buffer_max_bytes =
      static_cast<size_t>(in.integer("RELAY_BUFFER_MAX_BYTES", 262144, int64_t{1} << 30, 4 << 20));
  config.delivery_max_bytes =
      static_cast<size_t>(in.integer("RELAY_DELIVERY_MAX_BYTES", 65536, 16 << 20, 1 << 20));
  // The high-water mark must leave room below the cap for what arrives while it is delivered.
  // Unset, it follows a smaller cap down (a quarter of it).
  const auto flush_max = static_cast<int64_t>(config.buffer_max_bytes / 2);
  const int64_t flush_fallback =
      std::min<int64_t>(1 << 20, static_cast<int64_t>(config.buffer_max_bytes / 4));
  if (!in.is_explicit("RELAY_BUFFER_FLUSH_BYTES")) {
    config.buffer_flush_bytes = static_cast<size_t>(flush_fallback);
  } else if (const int64_t flush =
                 in.integer("RELAY_BUFFER_FLUSH_BYTES", 4096, int64_t{1} << 30, flush_fallback);
             flush > flush_max) {
    in.issue("RELAY_BUFFER_FLUSH_BYTES", std::to_string(flush),
             "must be at most half of RELAY_BUFFER_MAX_BYTES (" +
                 std::to_string(config.buffer_max_bytes) + ")",
             std::to_string(flush_fallback));
    config.buffer_flush_bytes = static_cast<size_t>(flush_fallback);
  } else {
    config.buffer_flush_bytes = static_cast<size_t>(flush);
  }
  config.shutdown_quiet_ms =
      static_cast<uint32_t>(in.integer("RELAY_SHUTDOWN_QUIET_MS", 0, 1500, 250));
  config.shutdown_margin_ms =
      static_cast<uint32_t>(in.integer("RELAY_SHUTDOWN_MARGIN_MS", 50, 1000, 150));

  config.invoke_budget_ms =
      static_cast<uint32_t>(in.integer("RELAY_INVOKE_BUDGET_MS", 1, 60000, 100));
  config.spool = in.boolean("RELAY_SPOOL", true, /*on_off=*/true);
  config.spool_dir = trim(in.raw("RELAY_SPOOL_DIR"));
  if (!valid_spool_dir(config.spool_dir)) {
    in.issue("RELAY_SPOOL_DIR", config.spool_dir,
             "expected an absolute path without '..' or control characters (at most 512 "
             "characters)",
             "/tmp/telemetry-relay-spool");
    config.spool_dir = "/tmp/telemetry-relay-spool";
  }
  // Lambda's /tmp holds 512 MB to 10 GB and is shared with the function.
  config.spool_max_bytes = static_cast<uint64_t>(
      in.integer("RELAY_SPOOL_MAX_BYTES", 1 << 20, int64_t{10} << 30, 16 << 20));
  config.spool_max_files =
      static_cast<uint32_t>(in.integer("RELAY_SPOOL_MAX_FILES", 1, 100000, 256));
  // A poison's retry life: both must be reached (README "Poison deliveries").
  config.retry_max_attempts =
      static_cast<uint32_t>(in.integer("RELAY_RETRY_MAX_ATTEMPTS", 1, 1000, 10));
  config.retry_max_age_s =
      static_cast<uint32_t>(in.integer("RELAY_RETRY_MAX_AGE_S", 0, 7 * 24 * 3600, 3600));
}

bool managed_instances_detected(const std::map<std::string, std::string>& environment) {
  const auto type = environment.find("AWS_LAMBDA_INITIALIZATION_TYPE");
  return type != environment.end() && trim(type->second) == kManagedInstancesType;
}

// RELAY_MANAGED_INSTANCES, then what it implies: SHUTDOWN-only registration (main), schema
// 2025-01-29 and no flush mode that needs INVOKE events.
void resolve_managed_instances(Reader& in, Config& config,
                               const std::map<std::string, std::string>& environment) {
  config.managed_instances_setting =
      in.choice("RELAY_MANAGED_INSTANCES", {"auto", "on", "off"}, "auto");
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

void read_flush(Reader& in, Config& config, const LayeredConfiguration& layers) {
  const FlushPolicy global = in.flush("RELAY_FLUSH", FlushPolicy{}).value_or(FlushPolicy{});
  config.flush = adjust_flush(in, config, "RELAY_FLUSH", global, in.is_explicit("RELAY_FLUSH"));
  config.sink_flush.clear();
  for (const std::string& sink : config.sinks) {
    const std::string key = sink_prefix(sink) + "FLUSH";
    if (layers.has(key)) {
      const FlushPolicy own = in.flush(key, global).value_or(global);
      config.sink_flush[sink] = adjust_flush(in, config, key, own, true);
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

// RELAY_<SINK>_<KEY> -> key "<key>" for that sink; DISPATCH_POST_URI -> http's post_uri.
void read_sink_configs(const LayeredConfiguration& layers, Config& config) {
  std::set<std::string> global_keys;
  for (const auto& [key, value] : kDefaults) global_keys.insert(key);
  std::vector<std::string> keys;
  layers.keys(keys);
  for (const std::string& sink : config.sinks) {
    SinkConfig& out = config.sink_configs[sink];
    const std::string prefix = sink_prefix(sink);
    for (const std::string& key : keys) {
      if (!layers.hasProperty(key)) continue;  // "a.b=1" lists "a", which holds no value
      if (key.size() > prefix.size() && key.compare(0, prefix.size(), prefix) == 0 &&
          global_keys.count(key) == 0) {
        std::string sink_key = lower(key.substr(prefix.size()));
        if (sink_key != kSinkFlushKey)
          out.emplace_back(std::move(sink_key), layers.getRawString(key));
      }
    }
    if (sink == "http") {
      const bool has_own = std::any_of(out.begin(), out.end(),
                                       [](const auto& kv) { return kv.first == "post_uri"; });
      if (!has_own)
        out.emplace_back("post_uri", trim(layers.getRawString("DISPATCH_POST_URI", "")));
    }
    std::sort(out.begin(), out.end());
  }
}

// Keys whose values must never be printed: any name that hints at a credential ("pass" covers
// PASSWD and PASSWORD, "auth" AUTHORIZATION).
bool is_secret_key(const std::string& key) {
  const std::string k = lower(key);
  for (const char* word : {"auth", "bearer", "cookie", "credential", "header", "key", "pass", "pwd",
                           "secret", "session", "signature", "token"}) {
    if (k.find(word) != std::string::npos) return true;
  }
  return false;
}

// A key naming a uri or url, or any value that looks like one or like "user:password@host".
bool is_uri_value(const std::string& key, const std::string& value) {
  const std::string k = lower(key);
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
    const auto number = parse_int(std::string(*port));
    return number && *number >= 1 && *number <= 65535;
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
  const std::string value = lower(trim(text));
  if (value == "next-invoke") return FlushPolicy{FlushMode::kNextInvoke, 0};
  if (value == "end") return FlushPolicy{FlushMode::kEnd, 0};
  if (value == "continuous") return FlushPolicy{FlushMode::kContinuous, 0};
  constexpr std::string_view kPeriodic = "periodic:";
  if (value.rfind(kPeriodic, 0) == 0) {
    const auto ms = parse_int(value.substr(kPeriodic.size()));
    if (ms && *ms >= kMinFlushPeriodMs && *ms <= kMaxFlushPeriodMs) {
      return FlushPolicy{FlushMode::kPeriodic, static_cast<uint32_t>(*ms)};
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

std::string printable_value(const std::string& key, const std::string& value) {
  if (value.empty()) return value;
  if (is_secret_key(key)) return "<redacted>";
  if (is_uri_value(key, value)) {
    return escape_for_log(UriParts(trim(value)).printable(), kMaxShownValueBytes);
  }
  return escape_for_log(value, kMaxShownValueBytes);
}

std::string redact_config_values(std::string text, const SinkConfig& config) {
  // Shorter values would match ordinary words; they are no secret worth the name either.
  constexpr size_t kShortest = 4;
  for (const auto& [key, value] : config) {
    if (const std::string shown = printable_value(key, value);
        value.size() >= kShortest && shown != value) {
      replace_all(text, value, shown);
    }
    if (is_secret_key(key) || !is_uri_value(key, value)) continue;
    const std::string uri = trim(value);
    for (const std::string_view part : UriParts(uri).hidden_parts()) {
      if (part.size() >= kShortest) replace_all(text, part, "<redacted>");
    }
  }
  return text;
}

std::optional<bool> managed_instances_from_environment(
    const std::map<std::string, std::string>& environment) {
  if (auto file = environment.find("RELAY_CONFIG_FILE");
      file != environment.end() && !trim(file->second).empty()) {
    return std::nullopt;  // the file may set RELAY_MANAGED_INSTANCES
  }
  const auto setting = environment.find("RELAY_MANAGED_INSTANCES");
  const std::string value = setting == environment.end() ? "auto" : lower(trim(setting->second));
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

Config load_config(const std::map<std::string, std::string>& environment) {
  Config config;
  AutoPtr<LayeredConfiguration> layers(new LayeredConfiguration);

  AutoPtr<MapConfiguration> env_layer(new MapConfiguration);
  for (const auto& [name, value] : environment) {
    if (name.rfind("RELAY_", 0) == 0 || name.rfind("DISPATCH_", 0) == 0) {
      env_layer->setString(name, value);
    }
  }
  // Lower priority numbers are searched first: environment, then file, then defaults.
  layers->add(env_layer, 0);

  AutoPtr<Poco::Util::AbstractConfiguration> file_layer;
  if (auto it = environment.find("RELAY_CONFIG_FILE");
      it != environment.end() && !trim(it->second).empty()) {
    config.config_file = trim(it->second);
    FileText file = read_config_file(config.config_file);
    if (file.error.empty()) {
      try {
        std::istringstream text(std::move(file.text));
        file_layer = new Poco::Util::PropertyFileConfiguration(text);
        layers->add(file_layer, 10);
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

  AutoPtr<MapConfiguration> defaults(new MapConfiguration);
  for (const auto& [key, value] : kDefaults) defaults->setString(key, value);
  layers->add(defaults, 20);

  Reader reader(*layers, config, [&](const std::string& key) {
    return env_layer->has(key) || (file_layer && file_layer->has(key));
  });
  read_globals(reader, config);
  resolve_managed_instances(reader, config, environment);
  read_sink_configs(*layers, config);
  read_flush(reader, config, *layers);
  reader.finish();

  const bool timeout_lowered = any_sink_flushes(config, FlushMode::kEnd) &&
                               !reader.is_explicit("RELAY_TELEMETRY_TIMEOUT_MS");
  std::vector<std::string> keys;
  layers->keys(keys);
  for (const std::string& key : keys) {
    if (!layers->hasProperty(key)) continue;
    std::string source = "default";
    if (env_layer->has(key)) {
      source = "environment";
    } else if (file_layer && file_layer->has(key)) {
      source = "file " + printable_value("RELAY_CONFIG_FILE", config.config_file);
    }
    std::string value = layers->getRawString(key);
    // Values the extension derived rather than read: show what it uses.
    if (key == "RELAY_TELEMETRY_TIMEOUT_MS" && timeout_lowered) {
      value = std::to_string(config.subscription.timeout_ms);
      source += ", lowered for the end flush mode";
    } else if (key == "RELAY_TELEMETRY_SCHEMA" && config.managed_instances &&
               value != config.subscription.schema_version) {
      value = config.subscription.schema_version;
      source += ", required on Managed Instances";
    }
    config.entries.push_back({key, printable_value(key, value), source});
  }
  return config;
}

}  // namespace relay
