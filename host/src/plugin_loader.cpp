#include "plugin_loader.h"

#include <array>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "config.h"
#include "crash_guard.h"
#include "dl_sink.h"
#include "logging.h"

namespace relay {
namespace {

LoadResult failure(LoadStage stage, const std::string& path, const std::string& what) {
  LoadResult result;
  result.stage = stage;
  result.path = path;
  result.message = std::string(to_string(stage)) + ": " + path + ": " + what;
  return result;
}

// The smallest descriptor this host can use: ABI 1.0 ends with destroy.
constexpr size_t kMinDescriptorSize =
    offsetof(relay_sink_descriptor, destroy) + sizeof(relay_sink_descriptor::destroy);

std::string invalid_descriptor_field(const relay_sink_descriptor& d) {
  if (d.struct_size < kMinDescriptorSize) {
    return "struct_size " + std::to_string(d.struct_size) + " is smaller than the " +
           std::to_string(kMinDescriptorSize) + " bytes of ABI " + std::to_string(RELAY_ABI_MAJOR) +
           ".0";
  }
  if (d.name == nullptr) return "name is NULL";
  if (d.version == nullptr) return "version is NULL";
  if (d.create == nullptr) return "create is NULL";
  if (d.deliver == nullptr) return "deliver is NULL";
  if (d.destroy == nullptr) return "destroy is NULL";
  return {};
}

}  // namespace

const char* to_string(LoadStage stage) {
  switch (stage) {
    case LoadStage::kLoaded:
      return "loaded";
    case LoadStage::kInvalidName:
      return "invalid name";
    case LoadStage::kNotFound:
      return "not found";
    case LoadStage::kDlopenFailed:
      return "cannot load";
    case LoadStage::kEntryMissing:
      return "no entry point";
    case LoadStage::kEntryRefused:
      return "refused";
    case LoadStage::kAbiMismatch:
      return "ABI mismatch";
    case LoadStage::kDescriptorInvalid:
      return "invalid descriptor";
    case LoadStage::kCreateFailed:
      return "create failed";
  }
  return "unknown";
}

bool is_valid_sink_name(const std::string& name) {
  if (name.empty() || name.size() > 64) {
    return false;
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::string plugin_path(const std::string& plugin_dir, const std::string& name) {
  return (std::filesystem::path(plugin_dir) / ("librelay-sink-" + name + ".so")).string();
}

LoadResult load_sink(const std::string& plugin_dir, const std::string& name,
                     const SinkConfig& config, bool create_instance) {
  if (!is_valid_sink_name(name)) {
    LoadResult result;
    result.stage = LoadStage::kInvalidName;
    result.path = plugin_dir;
    result.message =
        "invalid name: '" + name + "' may only hold letters, digits, '-' and '_' (1-64 characters)";
    return result;
  }
  const std::string path = plugin_path(plugin_dir, name);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return failure(
        LoadStage::kNotFound, path,
        "no such plugin file (is the sink's layer attached? RELAY_PLUGIN_DIR=" + plugin_dir + ")");
  }

  boost::dll::shared_library library;
  try {
    // The throwing overload is the one that carries dlerror()'s text.
    library.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    return failure(LoadStage::kDlopenFailed, path, e.what());
  }
  if (!library.has(RELAY_SINK_ENTRY_SYMBOL)) {
    return failure(LoadStage::kEntryMissing, path,
                   std::string("the library does not export ") + RELAY_SINK_ENTRY_SYMBOL);
  }
  // From here on the plugin's code runs in this process: a crash in it is named in the log.
  install_crash_guard();
  CrashSite& site = crash_site(name);
  auto& entry =
      library.get<const relay_sink_descriptor*(uint32_t, uint32_t)>(RELAY_SINK_ENTRY_SYMBOL);
  const relay_sink_descriptor* descriptor = in_plugin_call(
      site, PluginCall::kEntry, [&] { return entry(RELAY_ABI_MAJOR, RELAY_ABI_MINOR); });
  if (descriptor == nullptr) {
    return failure(LoadStage::kEntryRefused, path,
                   std::string(RELAY_SINK_ENTRY_SYMBOL) + " returned NULL for host ABI " +
                       std::to_string(RELAY_ABI_MAJOR) + "." + std::to_string(RELAY_ABI_MINOR));
  }
  if (descriptor->abi_major != RELAY_ABI_MAJOR) {
    return failure(LoadStage::kAbiMismatch, path,
                   "plugin ABI " + std::to_string(descriptor->abi_major) + "." +
                       std::to_string(descriptor->abi_minor) + ", host ABI " +
                       std::to_string(RELAY_ABI_MAJOR) + "." + std::to_string(RELAY_ABI_MINOR) +
                       " (majors must match)");
  }
  if (std::string field = invalid_descriptor_field(*descriptor); !field.empty()) {
    return failure(LoadStage::kDescriptorInvalid, path, field);
  }

  LoadResult result;
  result.path = path;
  result.plugin_version = descriptor->version;
  if (!create_instance) {
    result.stage = LoadStage::kLoaded;
    result.message = "loaded: " + path + " (version " + result.plugin_version + ", ABI " +
                     std::to_string(descriptor->abi_major) + "." +
                     std::to_string(descriptor->abi_minor) + ")";
    return result;
  }

  std::vector<relay_kv> kvs;
  kvs.reserve(config.size());
  for (const auto& [key, value] : config) {
    kvs.push_back(relay_kv{{key.data(), key.size()}, {value.data(), value.size()}});
  }
  auto services = std::make_unique<HostServices>(name);
  std::array<char, 512> error_text{};
  relay_error error{error_text.data(), error_text.size()};
  void* instance = nullptr;
  const relay_status status = in_plugin_call(site, PluginCall::kCreate, [&] {
    return descriptor->create(&services->table, kvs.data(), kvs.size(), &instance, &error);
  });
  if (status != RELAY_OK || instance == nullptr) {
    std::string why(error_text.data(), strnlen(error_text.data(), error_text.size()));
    if (why.empty()) {
      why = status == RELAY_OK ? "create returned OK without an instance"
                               : "create returned status " + std::to_string(status);
    }
    // The text reaches the log, --check and (strict) init/error: a plugin quoting its own
    // settings must not leak a secret there, nor break the line.
    LoadResult failed = failure(LoadStage::kCreateFailed, path,
                                escape_for_log(redact_config_values(why, config), 512));
    failed.plugin_version = result.plugin_version;
    if (status == RELAY_OK && instance != nullptr) {
      in_plugin_call(site, PluginCall::kDestroy, [&] { descriptor->destroy(instance); });
    }
    return failed;
  }
  result.stage = LoadStage::kLoaded;
  result.message = "loaded: " + path + " (version " + result.plugin_version + ")";
  result.sink =
      std::make_unique<DlSink>(name, std::move(library), descriptor, std::move(services), instance);
  return result;
}

}  // namespace relay
