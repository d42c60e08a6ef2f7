// The network toolkit's TLS through POCO NetSSL and OpenSSL: only the TLS build links this.
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/RejectCertificateHandler.h>
#include <Poco/Net/SSLException.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/Utility.h>
#include <openssl/ssl.h>

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

namespace {

// An encrypted key is refused instead of OpenSSL asking for its passphrase on a terminal (or
// POCO's SSLManager looking for a configured handler).
int no_passphrase(char*, int, int, void*) { return 0; }

// mTLS: the client's certificate chain and key, checked against each other now rather than
// failing the first handshake. OpenSSL's error text names no key material.
std::string load_client_certificate(SSL_CTX* ssl, const TlsSettings& settings) {
  Poco::Net::Utility::clearErrorStack();
  if (SSL_CTX_use_certificate_chain_file(ssl, settings.cert_file.c_str()) != 1) {
    return "cert_file=" + settings.cert_file + ": cannot load a PEM certificate chain (" +
           Poco::Net::Utility::getLastError() + ")";
  }
  SSL_CTX_set_default_passwd_cb(ssl, &no_passphrase);
  if (SSL_CTX_use_PrivateKey_file(ssl, settings.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return "key_file=" + settings.key_file + ": cannot load an unencrypted PEM private key (" +
           Poco::Net::Utility::getLastError() + ")";
  }
  if (SSL_CTX_check_private_key(ssl) != 1) {
    Poco::Net::Utility::clearErrorStack();
    return "key_file=" + settings.key_file +
           ": not the private key of cert_file=" + settings.cert_file;
  }
  return {};
}

}  // namespace

std::string make_tls_context(const TlsSettings& settings, std::shared_ptr<TlsContext>& out) {
  try {
    auto tls = std::make_shared<TlsContext>();
    // STRICT, not RELAXED: POCO skips the host name check for localhost unless strict.
    tls->context =
        new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, settings.ca_file,
                               Poco::Net::Context::VERIFY_STRICT, 9, settings.system_store);
    tls->context->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
    tls->context->enableExtendedCertificateVerification(true);
    tls->context->setInvalidCertificateHandler(new Poco::Net::RejectCertificateHandler(false));
    if (!settings.cert_file.empty()) {
      if (std::string error = load_client_certificate(tls->context->sslContext(), settings);
          !error.empty()) {
        return error;
      }
    }
    out = std::move(tls);
    return {};
  } catch (const Poco::Exception& e) {
    return "ca_file=" + (settings.system_store ? std::string("(system store)") : settings.ca_file) +
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
