// The TLS half of the network toolkit's client, in two builds: tls_openssl.cpp (POCO NetSSL and
// OpenSSL) and tls_none.cpp (no TLS at all). relay_add_sink(... NETWORK) links the plugin with
// tls_none.cpp, so it never maps OpenSSL, and its TLS build with tls_openssl.cpp; the plugin's
// entry (tls_loader.cpp) hands an https:// destination to the TLS build.
#pragma once

#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>

#include <cstdint>
#include <memory>
#include <string>

namespace relay::sdk::net::detail {

struct TlsContext;  // OpenSSL initialised and the CA certificates read

struct TlsSettings {
  const std::string& ca_file;
  bool system_store = false;     // OpenSSL's default CA locations (SSL_CERT_FILE) instead
  const std::string& cert_file;  // mTLS: both set or both empty
  const std::string& key_file;
};

// Initialises OpenSSL, reads the CA certificates and, for mTLS, the client's certificate chain
// and key. Returns the error text (empty on success), which names files, never their content.
std::string make_tls_context(const TlsSettings& settings, std::shared_ptr<TlsContext>& context);

std::unique_ptr<Poco::Net::HTTPClientSession> make_tls_session(const std::string& host,
                                                               uint16_t port,
                                                               const TlsContext& context);

// True when e is a TLS error; then error is its text and closed whether the peer closed the
// connection (before any answer: the reused-connection case).
bool describe_tls_error(const Poco::Exception& e, std::string& error, bool& closed);

}  // namespace relay::sdk::net::detail
