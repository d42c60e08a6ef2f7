// Finds, loads and checks sink plugins: <plugin_dir>/librelay-sink-<name>.so.
// Every failure stage has its own message naming the file, so a user can tell a typo in
// RELAY_SINKS from a missing layer, a broken build or a plugin built for another ABI.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sink.h"
#include "telemetry_relay/sink_abi.h"

namespace relay {

enum class LoadStage {
  kLoaded,
  kInvalidName,
  kNotFound,
  kDlopenFailed,
  kEntryMissing,
  kEntryRefused,
  kAbiMismatch,
  kDescriptorInvalid,
  kNameMismatch,  // the descriptor's name is not the one the file was loaded for
  kCreateFailed,
};

const char* to_string(LoadStage stage);

using SinkConfig = std::vector<std::pair<std::string, std::string>>;
// The configuration keys a plugin declares (ABI 1.3); the strings point into the plugin.
using SinkKeyTable = std::vector<relay_config_key>;

struct LoadResult {
  LoadStage stage = LoadStage::kNotFound;
  std::string path;            // the file that was (or would have been) loaded
  std::string message;         // one line, names the file and what went wrong
  std::string plugin_version;  // from the descriptor, when it could be read
  SinkPtr sink;                // set only when stage == kLoaded
  // The plugin's declared keys found these in config (one line each, secrets redacted) before
  // create(), which received the validated values. load_config reports the same issues first,
  // so this is empty for a configuration that came from there.
  std::vector<std::string> config_issues;
};

// Sink names may only hold letters, digits, '-' and '_', so no name reaches outside plugin_dir.
bool is_valid_sink_name(const std::string& name);

std::string plugin_path(const std::string& plugin_dir, const std::string& name);

// Loads one sink and creates its instance with config (--check does too, so a bad value such as
// an invalid URI shows there). A plugin that declares its keys (ABI 1.3) gets config validated
// against them; one without gets it as given. With create_instance=false it stops after
// checking the descriptor. The descriptor's name must be `name`, the one in the file's name.
LoadResult load_sink(const std::string& plugin_dir, const std::string& name,
                     const SinkConfig& config, bool create_instance = true);

// The keys sink `name`'s plugin declares, its descriptor read as load_sink reads it (no
// instance); nullopt when it declares none or cannot be loaded (load_sink then says why). The
// library stays loaded for the life of the process, so the entries stay valid.
std::optional<SinkKeyTable> read_sink_keys(const std::string& plugin_dir, const std::string& name);

}  // namespace relay
