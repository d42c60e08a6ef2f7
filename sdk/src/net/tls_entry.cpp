// The exported entry of a network sink's TLS build (librelay-<name>-tls.so): the sink's own
// entry, which relay_add_sink(... NETWORK) compiles as relay_net_sink_entry for both builds.
#include <telemetry_relay/sink_abi.h>

extern "C" const relay_sink_descriptor* relay_net_sink_entry(uint32_t host_abi_major,
                                                             uint32_t host_abi_minor);

extern "C" __attribute__((visibility("default"))) const relay_sink_descriptor* relay_sink_entry(
    uint32_t host_abi_major, uint32_t host_abi_minor) {
  return relay_net_sink_entry(host_abi_major, host_abi_minor);
}
