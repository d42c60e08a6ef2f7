// Which build of a network sink serves an instance (see tls_loader.cpp): the TLS build when one
// of the sink's destinations is https. Header-only and free of the loader's globals, so that the
// network toolkit's tests drive it directly.
#pragma once

#include <telemetry_relay/sink_abi.h>

#include <cstddef>
#include <string_view>

namespace relay::sdk::net::detail {

inline bool starts_https(std::string_view value) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  constexpr std::string_view kHttps = "https:";
  if (value.size() < kHttps.size()) return false;
  for (size_t c = 0; c < kHttps.size(); ++c) {  // URI schemes are case-insensitive
    const char lower =
        value[c] >= 'A' && value[c] <= 'Z' ? static_cast<char>(value[c] + 32) : value[c];
    if (lower != kHttps[c]) return false;
  }
  return true;
}

// Whether key's value in config is https (the last entry of a repeated key wins, as in
// sink.hpp); false when it is absent.
inline bool key_is_https(std::string_view key, const relay_kv* config, size_t count) {
  for (size_t i = count; !key.empty() && i-- > 0;) {
    if (std::string_view(config[i].key.data, config[i].key.size) == key) {
      return starts_https(std::string_view(config[i].value.data, config[i].value.size));
    }
  }
  return false;
}

// True when the instance needs TLS: with uri_key (relay_add_sink's URI_KEY, RELAY_NET_URI_KEY)
// when that key's value is https; otherwise when ANY declared RELAY_KEY_URI key allowing https
// has an https value (a sink may have several destinations, e.g. one per OTLP signal).
inline bool wants_tls(const relay_sink_descriptor& plain, std::string_view uri_key,
                      const relay_kv* config, size_t count) {
  if (!uri_key.empty()) return key_is_https(uri_key, config, count);
  for (size_t i = 0; i < plain.config_key_count; ++i) {
    const relay_config_key& key = plain.config_keys[i];
    if (key.type == RELAY_KEY_URI && key.choices != nullptr && key.name != nullptr &&
        std::string_view(key.choices).find("https") != std::string_view::npos &&
        key_is_https(key.name, config, count)) {
      return true;
    }
  }
  return false;
}

}  // namespace relay::sdk::net::detail
