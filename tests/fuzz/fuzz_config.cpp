// libFuzzer target: configuration parsing through load_config, the way the extension reads it.
// Input: optional environment lines (NAME=value, one per line) and a properties file body,
// separated by a line "---"; without that line the whole input is the file body. The file is
// named by RELAY_CONFIG_FILE, as in production. Sinks "http" and "keyed" declare keys of every
// kind (from this file: no plugin folder is ever opened), so their validation is fuzzed too.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "config.h"

namespace {

constexpr relay_config_key kSinkKeys[] = {
    relay::sdk::key::uri("post_uri", "", "https|http", "Where to POST"),
    relay::sdk::key::integer("timeout_ms", "1000", 1, 60000, "A bounded number"),
    relay::sdk::key::boolean("gzip", "false", "A switch"),
    relay::sdk::key::choice("level", "info", "debug|info", "One of two"),
    relay::sdk::key::string("dsn", "", "A secret", RELAY_KEY_SECRET),
    relay::sdk::key::prefix("header_", "Secret headers", RELAY_KEY_SECRET),
};

std::optional<relay::SinkKeyTable> sink_keys(const std::string&, const std::string& sink) {
  if (sink != "http" && sink != "keyed") return std::nullopt;
  return relay::SinkKeyTable(std::begin(kSinkKeys), std::end(kSinkKeys));
}

// The properties file lives in memory (memfd), named through /proc, so a crashing input leaves
// no scratch file behind.
int file_fd() {
  static const int fd = [] {
    const int created = memfd_create("relay-fuzz-config", 0);
    if (created < 0) std::abort();
    return created;
  }();
  return fd;
}

bool has_control_character(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// A shown value stays on its line, is bounded, and the user info of a URI is redacted.
void check_shown(std::string_view shown) {
  if (has_control_character(shown) || shown.size() > relay::kMaxShownValueBytes + 32) {
    __builtin_trap();
  }
  if (shown.find("://") == std::string_view::npos) return;
  constexpr std::string_view kRedacted = "<redacted>";
  for (size_t at = shown.find('@'); at != std::string_view::npos; at = shown.find('@', at + 1)) {
    if (at < kRedacted.size() ||
        shown.substr(at - kRedacted.size(), kRedacted.size()) != kRedacted) {
      __builtin_trap();
    }
  }
}

// A plugin message quoting a secret value shows it no more than --check does. Values that
// appear inside what is shown anyway (or inside "<redacted>") are no secret to look for.
void check_redacted(const relay::SinkConfig& sink_config) {
  std::string shown_anyway = "<redacted>";
  for (const auto& [key, value] : sink_config) shown_anyway += relay::printable_value(key, value);
  for (const auto& [key, value] : sink_config) {
    if (value.size() < 4 || relay::printable_value(key, value) != "<redacted>") continue;
    if (shown_anyway.find(value) != std::string::npos) continue;
    const std::string text = relay::redact_config_values("create failed: " + value, sink_config);
    if (text.find(value) != std::string::npos) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view env_text;
  std::string_view file_text = input;
  if (const size_t sep = input.find("\n---\n"); sep != std::string_view::npos) {
    env_text = input.substr(0, sep);
    file_text = input.substr(sep + 5);
  }

  std::map<std::string, std::string> environment;
  while (!env_text.empty()) {
    const size_t eol = std::min(env_text.find('\n'), env_text.size());
    const std::string_view line = env_text.substr(0, eol);
    env_text.remove_prefix(std::min(eol + 1, env_text.size()));
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    environment[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
  }
  if (ftruncate(file_fd(), 0) != 0 || pwrite(file_fd(), file_text.data(), file_text.size(), 0) !=
                                          static_cast<ssize_t>(file_text.size())) {
    std::abort();
  }
  // The input's own RELAY_CONFIG_FILE line (if any) would read an arbitrary path; keep ours.
  environment["RELAY_CONFIG_FILE"] = "/proc/self/fd/" + std::to_string(file_fd());

  const relay::Config config = relay::load_config(environment, sink_keys);
  // What --check prints and what log lines quote: one bounded line, no credential.
  for (const relay::ConfigEntry& entry : config.entries) check_shown(entry.value);
  for (const auto& [sink, entries] : config.sink_entries) {
    for (const relay::ConfigEntry& entry : entries) check_shown(entry.value);
  }
  // A declared secret's value is never shown, whatever it is: its issue and its --check entry
  // show <redacted> (or nothing, unset).
  auto secret = [](const std::string& variable) {
    return variable == "RELAY_KEYED_DSN" || variable.rfind("RELAY_KEYED_HEADER_", 0) == 0;
  };
  for (const relay::ConfigIssue& issue : config.issues) {
    if (secret(issue.key) && issue.value != "<redacted>") __builtin_trap();
  }
  if (const auto keyed = config.sink_entries.find("keyed"); keyed != config.sink_entries.end()) {
    for (const relay::ConfigEntry& entry : keyed->second) {
      if (secret(entry.key) && !entry.value.empty() && entry.value != "<redacted>") {
        __builtin_trap();
      }
    }
  }
  for (const auto& [name, value] : environment) check_shown(relay::printable_value(name, value));
  for (const relay::ConfigIssue& issue : config.issues) {
    if (issue.message.empty()) __builtin_trap();  // every issue names what was wrong
    if (issue.message.size() > 4096 || has_control_character(issue.message)) __builtin_trap();
  }
  for (const std::string& sink : config.sinks) {
    if (config.sink_configs.count(sink) == 0) __builtin_trap();  // one entry per requested sink
    check_redacted(config.sink_configs.at(sink));
  }
  if (config.sinks.size() > relay::kMaxSinks) __builtin_trap();
  return 0;
}
