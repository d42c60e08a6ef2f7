// Every host configuration key, declared once: name, type, default, allowed range or values,
// secret or not, one line of help. The same relay_config_key entries and the same
// relay::sdk::validate() as the sinks' keys, so host keys and sink keys are checked, shown in
// --check and documented (README, config/relay.properties) by one machinery.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <telemetry_relay/config_keys.hpp>

namespace relay {

// How a host key appears in config/relay.properties.
enum class KeyUse {
  kFile,         // KEY=default
  kAdapts,       // "# KEY=default": left unset, its effective value adapts (e.g. to Managed
                 // Instances); set, it no longer does
  kEnvironment,  // read from the environment only, never from the file: not listed there
};

struct HostKey {
  relay_config_key key;
  KeyUse use = KeyUse::kFile;
  const char* section = nullptr;  // a heading in relay.properties starts at this key
  // What the key's special rule in config.cpp accepts, for the documentation, when that says
  // more than its type (a comma list, a path, a bound that depends on another key).
  const char* accepts = nullptr;
};

// What a host key accepts, in words: its special rule's, else its type's (sdk::describe).
std::string host_key_accepts(const HostKey& key);

// The host's keys, in documentation order.
std::span<const HostKey> host_keys();
// The same entries as plain relay_config_key, for relay::sdk::validate().
std::span<const relay_config_key> host_config_keys();
// The entry of a host key, or nullptr.
const relay_config_key* host_config_key(std::string_view name);
// A host key's default ("" when it has none). Throws std::out_of_range for an unknown key.
std::string host_default(std::string_view name);

// Rows of the README's host table that are patterns rather than keys (RELAY_<SINK>_FLUSH, ...).
std::span<const relay_config_key> host_pattern_keys();

// The environment variable of sink key `key`: RELAY_<SINK>_<KEY> (sink upper-cased, '-' -> '_').
std::string sink_variable(std::string_view sink, std::string_view key);
// The seed variable that sets a sink key when its own variable is unset: DISPATCH_POST_URI for
// http's post_uri (the AWS Go sample's name). Empty when there is none.
std::string_view sink_key_alias(std::string_view sink, std::string_view key);

}  // namespace relay
