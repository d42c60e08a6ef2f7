// telemetry_relay/config_keys.hpp: a sink's configuration keys, declared once (ABI 1.3).
//
// A sink lists what it reads as a static member, and RELAY_SINK_PLUGIN publishes it:
//
//   class MySink final : public relay::sdk::Sink {
//    public:
//     static constexpr relay_config_key kConfigKeys[] = {
//         relay::sdk::key::uri("endpoint", "", "https|http", "Where batches go; unset: discard"),
//         relay::sdk::key::integer("timeout_ms", "2000", 1, 60000, "Request timeout"),
//         relay::sdk::key::string("api_key", "", "Sent as x-api-key", RELAY_KEY_SECRET),
//     };
//     ...
//   };
//
// The host validates the sink's configuration against the table before create() (one error line
// per bad key, naming key, value and the default used instead) and shows it in --check, secrets
// redacted. validate() below is that one machinery: the host calls it, and so does the SDK's
// create() when an older host did not (so a sink sees the same effective values on any host).
// Header-only, standard library only, like sink.hpp.
#pragma once

#include <telemetry_relay/sink_abi.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace relay::sdk {

namespace key {

constexpr relay_config_key string(const char* name, const char* default_value, const char* help,
                                  uint32_t flags = 0) noexcept {
  return {name, RELAY_KEY_STRING, flags, default_value, 0, 0, nullptr, help};
}
constexpr relay_config_key integer(const char* name, const char* default_value, int64_t min,
                                   int64_t max, const char* help) noexcept {
  return {name, RELAY_KEY_INTEGER, 0, default_value, min, max, nullptr, help};
}
constexpr relay_config_key boolean(const char* name, const char* default_value,
                                   const char* help) noexcept {
  return {name, RELAY_KEY_BOOLEAN, 0, default_value, 0, 0, nullptr, help};
}
// choices: "a|b|c"
constexpr relay_config_key choice(const char* name, const char* default_value, const char* choices,
                                  const char* help) noexcept {
  return {name, RELAY_KEY_CHOICE, 0, default_value, 0, 0, choices, help};
}
// schemes: "https|http"
constexpr relay_config_key uri(const char* name, const char* default_value, const char* schemes,
                               const char* help, uint32_t flags = 0) noexcept {
  return {name, RELAY_KEY_URI, flags, default_value, 0, 0, schemes, help};
}
// Every key starting with prefix (e.g. "header_" for header_authorization), as text.
constexpr relay_config_key prefix(const char* prefix, const char* help,
                                  uint32_t flags = 0) noexcept {
  return {prefix, RELAY_KEY_STRING, flags | RELAY_KEY_PREFIX, nullptr, 0, 0, nullptr, help};
}

}  // namespace key

// One key whose value was not used, and why.
struct KeyIssue {
  std::string key;       // the key as given (lower-case, without RELAY_<SINK>_)
  std::string value;     // as given: may be secret, show it only through shown_value()
  std::string problem;   // e.g. "not an integer in [1, 60000]"; never quotes the value
  std::string fallback;  // what is used instead ("" when unset); may be secret too
  bool unknown = false;  // no declared key matches
};

// A sink's configuration after validation: every declared key that has a value (the given one
// when valid, else the default), in declaration order, then the prefix keys as given.
struct ValidatedConfig {
  std::vector<std::pair<std::string, std::string>> values;
  std::vector<KeyIssue> issues;
};

namespace detail {

constexpr std::string_view text(const char* s) noexcept {
  return s == nullptr ? std::string_view() : std::string_view(s);
}

inline std::string ascii_lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  });
  return out;
}

// The declared spelling of value among "a|b|c" (any case), or nullopt-like empty + false.
inline bool match_choice(std::string_view choices, std::string_view value, std::string& out) {
  const std::string wanted = ascii_lower(value);
  while (!choices.empty()) {
    const size_t bar = choices.find('|');
    const std::string_view option = choices.substr(0, bar);
    if (ascii_lower(option) == wanted) {
      out = std::string(option);
      return true;
    }
    if (bar == std::string_view::npos) break;
    choices.remove_prefix(bar + 1);
  }
  return false;
}

inline std::string choices_text(std::string_view choices) {
  std::string out;
  for (char c : choices) out += c == '|' ? std::string(", ") : std::string(1, c);
  return out;
}

// Normalises value for key into out; on failure returns the problem (never quoting the value).
inline std::string check_value(const relay_config_key& k, std::string_view value,
                               std::string& out) {
  switch (k.type) {
    case RELAY_KEY_INTEGER: {
      int64_t parsed = 0;
      const char* end = value.data() + value.size();
      const auto [ptr, ec] = std::from_chars(value.data(), end, parsed);
      if (ec == std::errc() && ptr == end && parsed >= k.min && parsed <= k.max) {
        out = std::to_string(parsed);
        return {};
      }
      return "not an integer in [" + std::to_string(k.min) + ", " + std::to_string(k.max) + "]";
    }
    case RELAY_KEY_BOOLEAN: {
      const std::string v = ascii_lower(value);
      if (v == "true" || v == "on" || v == "yes" || v == "1") return out = "true", std::string();
      if (v == "false" || v == "off" || v == "no" || v == "0") return out = "false", std::string();
      return "not a boolean (true/false, on/off, yes/no, 1/0)";
    }
    case RELAY_KEY_CHOICE:
      if (match_choice(text(k.choices), value, out)) return {};
      return "not one of " + choices_text(text(k.choices));
    case RELAY_KEY_URI: {
      const size_t colon = value.find("://");
      std::string scheme;
      if (colon == std::string_view::npos ||
          !match_choice(text(k.choices), value.substr(0, colon), scheme)) {
        return "not an absolute URI with scheme " + choices_text(text(k.choices));
      }
      const std::string_view rest = value.substr(colon + 3);
      if (rest.empty() || rest.front() == '/' || rest.front() == ':' || rest.front() == '?') {
        return "a URI without a host";
      }
      if (std::any_of(value.begin(), value.end(),
                      [](unsigned char c) { return c <= 0x20 || c == 0x7f; })) {
        return "a URI with spaces or control characters";
      }
      out = scheme + std::string(value.substr(colon));
      return {};
    }
    default:
      if (std::any_of(value.begin(), value.end(),
                      [](unsigned char c) { return c < 0x20 && c != '\t'; })) {
        return "text with control characters";
      }
      out = std::string(value);
      return {};
  }
}

}  // namespace detail

// What a key accepts, in words, for --check, documentation and error lines: "1 to 60000",
// "true or false", "error, warn, info", "https or http URI", "text" (", secret" appended).
inline std::string describe(const relay_config_key& k) {
  std::string out;
  switch (k.type) {
    case RELAY_KEY_INTEGER:
      out = std::to_string(k.min) + " to " + std::to_string(k.max);
      break;
    case RELAY_KEY_BOOLEAN:
      out = "true or false (on/off, yes/no, 1/0)";
      break;
    case RELAY_KEY_CHOICE:
      out = detail::choices_text(detail::text(k.choices));
      break;
    case RELAY_KEY_URI:
      for (char c : detail::text(k.choices))
        out += c == '|' ? std::string(" or ") : std::string(1, c);
      out = "absolute " + out + " URI";
      break;
    default:
      out = "text";
      break;
  }
  if ((k.flags & RELAY_KEY_SECRET) != 0) out += ", secret";
  return out;
}

// Whether key names a secret of this table (secret keys, and keys under a secret prefix).
inline bool is_secret(std::span<const relay_config_key> keys, std::string_view name) noexcept {
  for (const relay_config_key& k : keys) {
    const std::string_view declared = detail::text(k.name);
    const bool match = (k.flags & RELAY_KEY_PREFIX) != 0
                           ? name.substr(0, declared.size()) == declared
                           : name == declared;
    if (match) return (k.flags & RELAY_KEY_SECRET) != 0;
  }
  return false;
}

// Validates the given entries (the last of a repeated key wins) against keys. Empty values mean
// "unset" (an empty environment variable), so the default applies without an issue.
inline ValidatedConfig validate(
    std::span<const relay_config_key> keys,
    std::span<const std::pair<std::string_view, std::string_view>> given) {
  ValidatedConfig result;
  auto last_value = [&](std::string_view name, std::string_view& out) {
    bool found = false;
    for (const auto& [k, v] : given) {
      if (k == name) out = v, found = true;
    }
    return found;
  };
  for (const relay_config_key& k : keys) {
    if ((k.flags & RELAY_KEY_PREFIX) != 0 || k.name == nullptr) continue;
    const std::string_view fallback = detail::text(k.default_value);
    std::string_view value;
    std::string normalised;
    if (last_value(k.name, value) && !value.empty()) {
      const std::string problem = detail::check_value(k, value, normalised);
      if (problem.empty()) {
        result.values.emplace_back(k.name, std::move(normalised));
        continue;
      }
      result.issues.push_back({k.name, std::string(value), problem, std::string(fallback), false});
    }
    // The default in its normal form too (a boolean's "on" passed as "true").
    if (!fallback.empty() && !detail::check_value(k, fallback, normalised).empty()) {
      normalised = std::string(fallback);
    }
    if (!fallback.empty()) result.values.emplace_back(k.name, std::move(normalised));
  }
  for (size_t i = 0; i < given.size(); ++i) {
    const auto& [name, value] = given[i];
    bool repeated = false;
    for (size_t j = i + 1; j < given.size() && !repeated; ++j) repeated = given[j].first == name;
    if (repeated) continue;
    const relay_config_key* declared = nullptr;
    for (const relay_config_key& k : keys) {
      const std::string_view n = detail::text(k.name);
      if ((k.flags & RELAY_KEY_PREFIX) != 0
              ? name.size() > n.size() && name.substr(0, n.size()) == n
              : name == n) {
        declared = &k;
        break;
      }
    }
    if (declared == nullptr) {
      result.issues.push_back(
          {std::string(name), std::string(value), "not a key of this sink", "", true});
    } else if ((declared->flags & RELAY_KEY_PREFIX) != 0) {
      std::string normalised;
      const std::string problem = detail::check_value(*declared, value, normalised);
      if (problem.empty()) {
        result.values.emplace_back(std::string(name), std::move(normalised));
      } else {
        result.issues.push_back({std::string(name), std::string(value), problem, "", false});
      }
    }
  }
  return result;
}

}  // namespace relay::sdk
