// A Sink backed by a plugin loaded through the C ABI (sdk/include/telemetry_relay/sink_abi.h).
#pragma once

#include <boost/dll/shared_library.hpp>
#include <memory>
#include <string>

#include "crash_guard.h"
#include "sink.h"
#include "telemetry_relay/sink_abi.h"

namespace Poco {
class Logger;
}

namespace relay {

// The relay_host table handed to one plugin; log lines are attributed to the sink's name.
struct HostServices {
  explicit HostServices(std::string sink_name);
  std::string sink_name;
  Poco::Logger* log;  // looked up once: Logger::get locks a global registry
  relay_host table{};
};

class DlSink final : public Sink {
 public:
  // Takes ownership of a created instance. The library is declared first so it is unloaded
  // last, after destroy(instance).
  DlSink(std::string name, boost::dll::shared_library library,
         const relay_sink_descriptor* descriptor, std::unique_ptr<HostServices> services,
         void* instance);
  ~DlSink() override;

  const std::string& name() const override { return name_; }
  DeliveryResult deliver(const Delivery& delivery, uint64_t deadline_unix_ms) override;
  DeliveryResult flush(uint64_t deadline_unix_ms) override;
  // The plugin's destroy(instance), once; the destructor calls it if nobody did.
  void destroy() override;

 private:
  boost::dll::shared_library library_;
  std::string name_;
  const relay_sink_descriptor* descriptor_;
  std::unique_ptr<HostServices> services_;
  CrashSite& crash_site_;            // every call into the plugin is marked for the crash handlers
  void* instance_;                   // null once destroyed
  bool reads_feedback_;              // the plugin was built for ABI 1.1 or later
  std::vector<relay_event> events_;  // reused between deliveries
};

DeliveryStatus from_abi(relay_status status);

}  // namespace relay
