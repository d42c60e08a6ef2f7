// Finds, loads and checks sink plugins: <plugin_dir>/librelay-sink-<name>.so.
// Every failure stage has its own message naming the file, so a user can tell a typo in
// RELAY_SINKS from a missing layer, a broken build or a plugin built for another ABI.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "sink.h"

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
  kCreateFailed,
};

const char* to_string(LoadStage stage);

using SinkConfig = std::vector<std::pair<std::string, std::string>>;

struct LoadResult {
  LoadStage stage = LoadStage::kNotFound;
  std::string path;            // the file that was (or would have been) loaded
  std::string message;         // one line, names the file and what went wrong
  std::string plugin_version;  // from the descriptor, when it could be read
  SinkPtr sink;                // set only when stage == kLoaded
};

// Sink names may only hold letters, digits, '-' and '_', so no name reaches outside plugin_dir.
bool is_valid_sink_name(const std::string& name);

std::string plugin_path(const std::string& plugin_dir, const std::string& name);

// Loads one sink and creates its instance with config (--check does too, so a bad value such as
// an invalid URI shows there). With create_instance=false it stops after checking the descriptor.
LoadResult load_sink(const std::string& plugin_dir, const std::string& name,
                     const SinkConfig& config, bool create_instance = true);

}  // namespace relay
