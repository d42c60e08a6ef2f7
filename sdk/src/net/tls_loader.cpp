// The entry point of a network sink's plugin (relay_add_sink(... NETWORK)): OpenSSL only for
// https.
//
// Such a sink is built twice from the same objects:
//   librelay-sink-<name>.so  the plugin: the sink linked with tls_none.cpp (neither NetSSL nor
//                            OpenSSL); its own entry is renamed relay_net_sink_entry and this
//                            file exports relay_sink_entry instead;
//   librelay-<name>-tls.so   the same sink with tls_openssl.cpp (POCO NetSSL, OpenSSL), whose
//                            tls_entry.cpp exports relay_sink_entry.
// create() picks one per instance by the scheme of the sink's destinations (tls_select.hpp): the
// value of RELAY_NET_URI_KEY, or when that is empty, of every declared URI key (kConfigKeys) that
// allows https: the TLS build when any of them is https. https is checked by the plain build's
// create() (it parses everything and sets up no TLS); only the first delivery, on the sink's
// thread, loads the TLS build (once, never unloaded) and creates its instance, so mapping OpenSSL
// stays off Lambda's init. The TLS build is looked for in the layer's runtime folder
// (/opt/telemetry-relay/lib for a plugin in /opt/extensions/lib), then beside the plugin (a build
// tree); the host loads plugins by their librelay-sink-<name>.so name only, so it is never taken
// for a sink.
#include <dlfcn.h>
#include <telemetry_relay/sink_abi.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tls_select.hpp"

#ifndef RELAY_NET_TLS_LIBRARY
#error "RELAY_NET_TLS_LIBRARY (the TLS build's file name) is set by relay_add_sink(... NETWORK)"
#endif
#ifndef RELAY_NET_URI_KEY
#define RELAY_NET_URI_KEY ""
#endif

extern "C" const relay_sink_descriptor* relay_net_sink_entry(uint32_t host_abi_major,
                                                             uint32_t host_abi_minor);

namespace {

constexpr const char* kTlsLibrary = RELAY_NET_TLS_LIBRARY;

struct Instance {
  const relay_sink_descriptor* impl;  // the plain or the TLS build's; null until https's first use
  void* instance;                     // that build's instance
  // https until its first delivery: what create() was given, to create the TLS build's instance.
  const relay_host* host = nullptr;
  std::vector<std::pair<std::string, std::string>> config{};
  relay_host tls_host{};  // host, but quiet below warnings while the TLS instance is created
  bool creating_tls = false;
};

void set_error(relay_error* err, const std::string& message) {
  if (err != nullptr && err->message != nullptr && err->capacity > 0) {
    std::snprintf(err->message, err->capacity, "%s", message.c_str());
  }
}

const relay_sink_descriptor* plain_descriptor() {
  return relay_net_sink_entry(RELAY_ABI_MAJOR, RELAY_ABI_MINOR);
}

// A destination is https: RELAY_NET_URI_KEY's, else any declared URI key's allowing https.
bool wants_tls(const relay_kv* config, size_t count) {
  return relay::sdk::net::detail::wants_tls(*plain_descriptor(), RELAY_NET_URI_KEY, config, count);
}

// Where the TLS build is, or empty with `tried` saying where it looked.
std::string tls_library_path(std::string& tried) {
  Dl_info info{};
  std::string dir = ".";
  if (::dladdr(reinterpret_cast<void*>(&wants_tls), &info) != 0 && info.dli_fname != nullptr) {
    const std::string self = info.dli_fname;
    const auto slash = self.rfind('/');
    if (slash != std::string::npos) dir = self.substr(0, slash);
  }
  for (const std::string& candidate :
       {dir + "/../../telemetry-relay/lib/" + kTlsLibrary, dir + "/" + kTlsLibrary}) {
    tried += (tried.empty() ? "" : ", ") + candidate;
    if (::access(candidate.c_str(), F_OK) == 0) return candidate;
  }
  return {};
}

std::string find_tls_library(relay_error* err) {
  std::string tried;
  std::string path = tls_library_path(tried);
  if (path.empty()) {
    set_error(err, std::string("https needs ") + kTlsLibrary + ", which is missing (looked for " +
                       tried + ")");
  }
  return path;
}

// The TLS build's descriptor, loaded on first use; NULL with err set when it cannot be.
const relay_sink_descriptor* tls_descriptor(const relay_host* host, relay_error* err) {
  static std::mutex mutex;
  static const relay_sink_descriptor* descriptor = nullptr;
  std::lock_guard lock(mutex);
  if (descriptor != nullptr) return descriptor;

  const std::string path = find_tls_library(err);
  if (path.empty()) return nullptr;
  // Never unloaded: OpenSSL registers exit handlers.
  void* library = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (library == nullptr) {
    const char* why = ::dlerror();
    set_error(err, "https: cannot load " + path + ": " + (why != nullptr ? why : "unknown error"));
    return nullptr;
  }
  auto entry = reinterpret_cast<relay_sink_entry_fn>(::dlsym(library, RELAY_SINK_ENTRY_SYMBOL));
  const relay_sink_descriptor* found =
      entry != nullptr ? entry(RELAY_ABI_MAJOR, RELAY_ABI_MINOR) : nullptr;
  const relay_sink_descriptor* plain = plain_descriptor();
  if (found == nullptr || found->abi_major != RELAY_ABI_MAJOR ||
      found->struct_size < sizeof(relay_sink_descriptor) || found->create == nullptr ||
      found->deliver == nullptr || found->destroy == nullptr || found->version == nullptr ||
      std::strcmp(found->version, plain->version) != 0) {
    set_error(err, "https: " + path + " is not the TLS build of this sink (version " +
                       plain->version + ")");
    return nullptr;
  }
  if (host != nullptr && host->log != nullptr) {
    host->log(host->host_ctx, RELAY_LOG_DEBUG, ("https: TLS from " + path).c_str());
  }
  descriptor = found;
  return descriptor;
}

relay_status create(const relay_host* host, const relay_kv* config, size_t config_count,
                    void** out_instance, relay_error* err) {
  const relay_sink_descriptor* plain = plain_descriptor();
  const bool tls = wants_tls(config, config_count);
  if (tls) {
    const std::string path = find_tls_library(err);
    if (path.empty()) return RELAY_FATAL;
    if (host != nullptr && host->log != nullptr) {
      host->log(host->host_ctx, RELAY_LOG_DEBUG,
                ("https: TLS from " + path + " (loaded by the first delivery)").c_str());
    }
  }
  auto* wrapper = new (std::nothrow) Instance{plain, nullptr};
  if (wrapper == nullptr) {
    set_error(err, "out of memory");
    return RELAY_FATAL;
  }
  // For https this instance only checks the configuration (and logs where telemetry goes).
  const relay_status status = plain->create(host, config, config_count, &wrapper->instance, err);
  if (status != RELAY_OK) {
    delete wrapper;
    return status;
  }
  if (tls) {
    plain->destroy(wrapper->instance);
    *wrapper = Instance{nullptr, nullptr};
    wrapper->host = host;
    for (size_t i = 0; i < config_count; ++i) {
      wrapper->config.emplace_back(std::string(config[i].key.data, config[i].key.size),
                                   std::string(config[i].value.data, config[i].value.size));
    }
  }
  *out_instance = wrapper;
  return RELAY_OK;
}

void tls_host_log(void* ctx, relay_log_level level, const char* message) {
  // The plain build's create() already said what the TLS build's create() would say again.
  auto* wrapper = static_cast<Instance*>(ctx);
  if (wrapper->creating_tls && level != RELAY_LOG_ERROR && level != RELAY_LOG_WARN) return;
  wrapper->host->log(wrapper->host->host_ctx, level, message);
}

// https: the TLS build and its instance, on the first call that needs them.
relay_status ensure_tls(Instance* wrapper, relay_error* err) {
  if (wrapper->impl != nullptr) return RELAY_OK;
  const relay_sink_descriptor* tls = tls_descriptor(wrapper->host, err);
  if (tls == nullptr) return RELAY_FATAL;
  wrapper->tls_host = *wrapper->host;
  if (wrapper->host->log != nullptr) {
    wrapper->tls_host.host_ctx = wrapper;
    wrapper->tls_host.log = &tls_host_log;
  }
  std::vector<relay_kv> config;
  for (const auto& [key, value] : wrapper->config) {
    config.push_back(relay_kv{{key.data(), key.size()}, {value.data(), value.size()}});
  }
  void* instance = nullptr;
  wrapper->creating_tls = true;
  const relay_status status =
      tls->create(&wrapper->tls_host, config.data(), config.size(), &instance, err);
  wrapper->creating_tls = false;
  if (status != RELAY_OK) return RELAY_FATAL;  // the plain build accepted the same configuration
  wrapper->impl = tls;
  wrapper->instance = instance;
  return RELAY_OK;
}

relay_status deliver(void* instance, const relay_batch* batch, uint64_t deadline_unix_ms,
                     relay_error* err) {
  auto* wrapper = static_cast<Instance*>(instance);
  if (const relay_status ready = ensure_tls(wrapper, err); ready != RELAY_OK) return ready;
  return wrapper->impl->deliver(wrapper->instance, batch, deadline_unix_ms, err);
}

relay_status flush(void* instance, uint64_t deadline_unix_ms, relay_error* err) {
  auto* wrapper = static_cast<Instance*>(instance);
  if (wrapper->impl == nullptr) return RELAY_OK;  // https, never delivered: nothing to flush
  return wrapper->impl->flush != nullptr
             ? wrapper->impl->flush(wrapper->instance, deadline_unix_ms, err)
             : RELAY_OK;
}

void destroy(void* instance) {
  auto* wrapper = static_cast<Instance*>(instance);
  if (wrapper->impl != nullptr) wrapper->impl->destroy(wrapper->instance);
  delete wrapper;
}

}  // namespace

// The plain build's descriptor with this file's calls: name, version and configuration keys
// (what the host validates and --check shows) are the sink's own.
extern "C" __attribute__((visibility("default"))) const relay_sink_descriptor* relay_sink_entry(
    uint32_t host_abi_major, uint32_t host_abi_minor) {
  const relay_sink_descriptor* plain = relay_net_sink_entry(host_abi_major, host_abi_minor);
  if (plain == nullptr) return nullptr;
  static const relay_sink_descriptor kDescriptor = {RELAY_ABI_MAJOR,
                                                    RELAY_ABI_MINOR,
                                                    sizeof(relay_sink_descriptor),
                                                    plain->name,
                                                    plain->version,
                                                    &create,
                                                    &deliver,
                                                    &flush,
                                                    &destroy,
                                                    plain->config_keys,
                                                    plain->config_key_count};
  return &kDescriptor;
}
