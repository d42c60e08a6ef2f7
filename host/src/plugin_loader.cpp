#include "plugin_loader.h"

#include <array>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <mutex>
#include <span>
#include <system_error>
#include <telemetry_relay/config_keys.hpp>

#include "config.h"
#include "config_table.h"
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

// ABI 1.3 appended config_keys and config_key_count; older descriptors end before them.
constexpr size_t kKeysEnd = offsetof(relay_sink_descriptor, config_key_count) +
                            sizeof(relay_sink_descriptor::config_key_count);
constexpr size_t kMaxDeclaredKeys = 256;
constexpr size_t kMaxKeyName = 64;

std::span<const relay_config_key> declared_keys(const relay_sink_descriptor& d) {
  if (d.struct_size < kKeysEnd || d.config_keys == nullptr) return {};
  return {d.config_keys, std::min(d.config_key_count, kMaxDeclaredKeys + 1)};
}

// A table the host can validate and show: named keys ([a-z0-9_], as the environment variables'
// suffixes arrive), known types, choices where the type needs them, min <= max.
std::string invalid_key_table(std::span<const relay_config_key> keys) {
  if (keys.size() > kMaxDeclaredKeys) {
    return "config_key_count is more than " + std::to_string(kMaxDeclaredKeys);
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    const relay_config_key& k = keys[i];
    const std::string at = "config_keys[" + std::to_string(i) + "]: ";
    if (k.name == nullptr) return at + "name is NULL";
    const std::string_view name(k.name, strnlen(k.name, kMaxKeyName + 1));
    if (name.empty() || name.size() > kMaxKeyName ||
        !std::all_of(name.begin(), name.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        })) {
      return at + "name '" + escape_for_log(std::string(name), kMaxKeyName) +
             "' is not 1-64 of a-z, 0-9 and '_'";
    }
    if (k.type > RELAY_KEY_URI) return at + "unknown type " + std::to_string(k.type);
    if ((k.type == RELAY_KEY_CHOICE || k.type == RELAY_KEY_URI) && k.choices == nullptr) {
      return at + "choices is NULL";
    }
    if (k.type == RELAY_KEY_INTEGER && k.min > k.max) return at + "min is above max";
  }
  return {};
}

// A plugin whose entry returned a usable descriptor for sink `name`, or why not.
struct Opened {
  LoadResult failed;  // stage kLoaded when the plugin opened
  boost::dll::shared_library library;
  const relay_sink_descriptor* descriptor = nullptr;
};

Opened open_plugin(const std::string& plugin_dir, const std::string& name) {
  Opened opened;
  opened.failed.stage = LoadStage::kLoaded;
  auto fail = [&](LoadStage stage, const std::string& path, const std::string& what) {
    opened.failed = failure(stage, path, what);
    return std::move(opened);
  };
  if (!is_valid_sink_name(name)) {
    opened.failed.stage = LoadStage::kInvalidName;
    opened.failed.path = plugin_dir;
    opened.failed.message =
        "invalid name: '" + name + "' may only hold letters, digits, '-' and '_' (1-64 characters)";
    return opened;
  }
  const std::string path = plugin_path(plugin_dir, name);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return fail(
        LoadStage::kNotFound, path,
        "no such plugin file (is the sink's layer attached? RELAY_PLUGIN_DIR=" + plugin_dir + ")");
  }
  try {
    // The throwing overload is the one that carries dlerror()'s text.
    opened.library.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    return fail(LoadStage::kDlopenFailed, path, e.what());
  }
  if (!opened.library.has(RELAY_SINK_ENTRY_SYMBOL)) {
    return fail(LoadStage::kEntryMissing, path,
                std::string("the library does not export ") + RELAY_SINK_ENTRY_SYMBOL);
  }
  // From here on the plugin's code runs in this process: a crash in it is named in the log.
  install_crash_guard();
  CrashSite& site = crash_site(name);
  auto& entry =
      opened.library.get<const relay_sink_descriptor*(uint32_t, uint32_t)>(RELAY_SINK_ENTRY_SYMBOL);
  const relay_sink_descriptor* descriptor = in_plugin_call(
      site, PluginCall::kEntry, [&] { return entry(RELAY_ABI_MAJOR, RELAY_ABI_MINOR); });
  if (descriptor == nullptr) {
    return fail(LoadStage::kEntryRefused, path,
                std::string(RELAY_SINK_ENTRY_SYMBOL) + " returned NULL for host ABI " +
                    std::to_string(RELAY_ABI_MAJOR) + "." + std::to_string(RELAY_ABI_MINOR));
  }
  if (descriptor->abi_major != RELAY_ABI_MAJOR) {
    return fail(LoadStage::kAbiMismatch, path,
                "plugin ABI " + std::to_string(descriptor->abi_major) + "." +
                    std::to_string(descriptor->abi_minor) + ", host ABI " +
                    std::to_string(RELAY_ABI_MAJOR) + "." + std::to_string(RELAY_ABI_MINOR) +
                    " (majors must match)");
  }
  if (std::string field = invalid_descriptor_field(*descriptor); !field.empty()) {
    return fail(LoadStage::kDescriptorInvalid, path, field);
  }
  opened.failed.plugin_version = descriptor->version;
  // The name is what a sink is known by (RELAY_SINKS, RELAY_<SINK>_*, its log lines and spool
  // folder): a file carrying another sink's plugin would get that sink's configuration wrong.
  if (const std::string_view own(descriptor->name, strnlen(descriptor->name, kMaxKeyName + 1));
      own != name) {
    opened.failed = failure(
        LoadStage::kNameMismatch, path,
        "the plugin's descriptor names it '" + escape_for_log(std::string(own), kMaxKeyName) +
            "', but it was loaded as sink '" + name + "' (RELAY_SINKS, librelay-sink-" + name +
            ".so); rename the file to librelay-sink-" +
            escape_for_log(std::string(own), kMaxKeyName) + ".so or fix the descriptor");
    opened.failed.plugin_version = descriptor->version;
    return opened;
  }
  if (std::string table = invalid_key_table(declared_keys(*descriptor)); !table.empty()) {
    return fail(LoadStage::kDescriptorInvalid, path, table);
  }
  opened.descriptor = descriptor;
  return opened;
}

}  // namespace

const char* to_string(LoadStage stage) {
  // In the enum's order.
  static constexpr const char* kNames[] = {
      "loaded",  "invalid name", "not found",          "cannot load",   "no entry point",
      "refused", "ABI mismatch", "invalid descriptor", "name mismatch", "create failed"};
  const auto index = static_cast<size_t>(stage);
  return index < std::size(kNames) ? kNames[index] : "unknown";
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
  Opened opened = open_plugin(plugin_dir, name);
  if (opened.failed.stage != LoadStage::kLoaded) return std::move(opened.failed);
  const relay_sink_descriptor* descriptor = opened.descriptor;

  LoadResult result;
  result.path = plugin_path(plugin_dir, name);
  result.plugin_version = descriptor->version;
  if (!create_instance) {
    result.stage = LoadStage::kLoaded;
    result.message = "loaded: " + result.path + " (version " + result.plugin_version + ", ABI " +
                     std::to_string(descriptor->abi_major) + "." +
                     std::to_string(descriptor->abi_minor) + ")";
    return result;
  }

  // With declared keys create() gets the validated values (load_config validated them already,
  // so this normally finds nothing new); without, the configuration as given.
  const std::span<const relay_config_key> keys = declared_keys(*descriptor);
  SinkConfig effective = config;
  if (!keys.empty()) {
    std::vector<std::pair<std::string_view, std::string_view>> given;
    for (const auto& [key, value] : config) given.emplace_back(key, value);
    sdk::ValidatedConfig checked = sdk::validate(keys, given);
    for (const sdk::KeyIssue& bad : checked.issues) {
      result.config_issues.push_back(sink_key_issue(name, keys, bad).message);
    }
    effective = std::move(checked.values);
  }

  std::vector<relay_kv> kvs;
  kvs.reserve(effective.size());
  for (const auto& [key, value] : effective) {
    kvs.push_back(relay_kv{{key.data(), key.size()}, {value.data(), value.size()}});
  }
  auto services = std::make_unique<HostServices>(name);
  std::array<char, 512> error_text{};
  relay_error error{error_text.data(), error_text.size()};
  void* instance = nullptr;
  CrashSite& site = crash_site(name);
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
    why = redact_config_values(redact_config_values(why, config, keys), effective, keys);
    LoadResult failed = failure(LoadStage::kCreateFailed, result.path, escape_for_log(why, 512));
    failed.plugin_version = result.plugin_version;
    failed.config_issues = std::move(result.config_issues);
    if (status == RELAY_OK && instance != nullptr) {
      in_plugin_call(site, PluginCall::kDestroy, [&] { descriptor->destroy(instance); });
    }
    return failed;
  }
  result.stage = LoadStage::kLoaded;
  result.message = "loaded: " + result.path + " (version " + result.plugin_version + ")";
  result.sink = std::make_unique<DlSink>(name, std::move(opened.library), descriptor,
                                         std::move(services), instance);
  return result;
}

std::optional<SinkKeyTable> read_sink_keys(const std::string& plugin_dir, const std::string& name) {
  Opened opened = open_plugin(plugin_dir, name);
  if (opened.failed.stage != LoadStage::kLoaded) return std::nullopt;
  const std::span<const relay_config_key> keys = declared_keys(*opened.descriptor);
  if (keys.empty()) return std::nullopt;
  // Kept loaded: the table points into the library, and load_sink opens it again right after
  // (then only a reference count changes).
  static std::mutex mutex;
  static std::vector<boost::dll::shared_library> kept;
  const std::lock_guard lock(mutex);
  kept.push_back(std::move(opened.library));
  return SinkKeyTable(keys.begin(), keys.end());
}

}  // namespace relay
