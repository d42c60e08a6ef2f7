// The network toolkit without TLS: what the plugin itself links, so that an http:// or
// discard-only sink never maps libssl or libcrypto. https never reaches this code (the plugin's
// entry hands it to the TLS build); if it did, it fails loudly instead of sending in clear text.
#include <Poco/Net/NetException.h>

#include "tls.hpp"

namespace relay::sdk::net::detail {

struct TlsContext {};

std::string make_tls_context(const TlsSettings&, std::shared_ptr<TlsContext>&) {
  return "this build of the sink has no TLS (https is served by its TLS build)";
}

std::unique_ptr<Poco::Net::HTTPClientSession> make_tls_session(const std::string&, uint16_t,
                                                               const TlsContext&) {
  throw Poco::Net::NetException("this build of the sink has no TLS");
}

bool describe_tls_error(const Poco::Exception&, std::string&, bool&) { return false; }

}  // namespace relay::sdk::net::detail
