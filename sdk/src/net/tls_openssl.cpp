// The network toolkit's TLS through POCO NetSSL and OpenSSL: only the TLS build links this.
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/RejectCertificateHandler.h>
#include <Poco/Net/SSLException.h>
#include <Poco/Net/SSLManager.h>

#include "tls.hpp"

namespace relay::sdk::net::detail {

struct TlsContext {
  // Keeps OpenSSL initialised for as long as a client may use it (reference-counted by POCO).
  TlsContext() { Poco::Net::initializeSSL(); }
  ~TlsContext() {
    context.reset();
    Poco::Net::uninitializeSSL();
  }
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  Poco::Net::Context::Ptr context;
};

std::string make_tls_context(const std::string& ca_file, bool system_store,
                             std::shared_ptr<TlsContext>& out) {
  try {
    auto tls = std::make_shared<TlsContext>();
    // STRICT, not RELAXED: POCO skips the host name check for localhost unless strict.
    tls->context = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, ca_file,
                                          Poco::Net::Context::VERIFY_STRICT, 9, system_store);
    tls->context->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
    tls->context->enableExtendedCertificateVerification(true);
    tls->context->setInvalidCertificateHandler(new Poco::Net::RejectCertificateHandler(false));
    out = std::move(tls);
    return {};
  } catch (const Poco::Exception& e) {
    return "ca_file=" + (system_store ? std::string("(system store)") : ca_file) +
           ": cannot load CA certificates (" + e.displayText() + ")";
  } catch (const std::exception& e) {
    return "cannot set up TLS: " + std::string(e.what());
  }
}

std::unique_ptr<Poco::Net::HTTPClientSession> make_tls_session(const std::string& host,
                                                               uint16_t port,
                                                               const TlsContext& tls) {
  return std::make_unique<Poco::Net::HTTPSClientSession>(host, port, tls.context);
}

bool describe_tls_error(const Poco::Exception& e, std::string& error, bool& closed) {
  if (dynamic_cast<const Poco::Net::SSLException*>(&e) == nullptr) return false;
  error = "TLS error: " + e.displayText();
  closed = dynamic_cast<const Poco::Net::SSLConnectionUnexpectedlyClosedException*>(&e) != nullptr;
  return true;
}

}  // namespace relay::sdk::net::detail
