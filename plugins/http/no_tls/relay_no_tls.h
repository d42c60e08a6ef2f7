// The NetSSL API as http_sink.cpp uses it, without TLS: what librelay-sink-http.so is compiled
// against, so that it links no NetSSL, Crypto or OpenSSL and an http:// or discard-only run never
// maps libssl/libcrypto. https never reaches this code: the plugin's entry (tls_loader.cpp) hands
// an https post_uri to librelay-http-tls.so, the same http_sink.cpp built against the real
// NetSSL. Every entry point here throws, so a path that did reach it would fail loudly (as a TLS
// error) instead of sending in clear text.
//
// These headers shadow <Poco/Net/...> for that one compile only (plugins/http/CMakeLists.txt).
// If http_sink.cpp starts using another NetSSL name, add it here the same way; a compile error
// in this folder means exactly that.
#pragma once

#include <Poco/AutoPtr.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/RefCountedObject.h>
#include <Poco/SharedPtr.h>

#include <string>
#include <typeinfo>

namespace Poco::Net {

#define RELAY_NO_TLS_EXCEPTION(CLS, BASE, NAME)                                      \
  class CLS : public BASE {                                                          \
   public:                                                                           \
    using BASE::BASE;                                                                \
    const char* name() const noexcept override { return NAME; }                      \
    const char* className() const noexcept override { return typeid(*this).name(); } \
    Poco::Exception* clone() const override { return new CLS(*this); }               \
    void rethrow() const override { throw *this; }                                   \
  };
RELAY_NO_TLS_EXCEPTION(SSLException, NetException, "SSL Exception")
RELAY_NO_TLS_EXCEPTION(SSLContextException, SSLException, "SSL context exception")
RELAY_NO_TLS_EXCEPTION(InvalidCertificateException, SSLException, "Invalid certificate")
RELAY_NO_TLS_EXCEPTION(CertificateValidationException, SSLException, "Certificate validation error")
RELAY_NO_TLS_EXCEPTION(SSLConnectionUnexpectedlyClosedException, SSLException,
                       "SSL connection unexpectedly closed")
#undef RELAY_NO_TLS_EXCEPTION

[[noreturn]] inline void relay_no_tls() {
  throw SSLException("this build of the http sink has no TLS (https is librelay-http-tls.so)");
}

inline void initializeSSL() { relay_no_tls(); }
inline void uninitializeSSL() {}

class InvalidCertificateHandler {
 public:
  virtual ~InvalidCertificateHandler() = default;
};
using InvalidCertificateHandlerPtr = Poco::SharedPtr<InvalidCertificateHandler>;

class RejectCertificateHandler : public InvalidCertificateHandler {
 public:
  explicit RejectCertificateHandler(bool /*handle_errors_on_server_side*/) {}
};
class AcceptCertificateHandler : public InvalidCertificateHandler {
 public:
  explicit AcceptCertificateHandler(bool /*handle_errors_on_server_side*/) {}
};

class Context : public Poco::RefCountedObject {
 public:
  using Ptr = Poco::AutoPtr<Context>;
  enum Usage { TLS_CLIENT_USE, TLS_SERVER_USE, CLIENT_USE, SERVER_USE };
  enum VerificationMode { VERIFY_NONE, VERIFY_RELAXED, VERIFY_STRICT, VERIFY_ONCE };
  enum Protocols {
    PROTO_SSLV2 = 0x01,
    PROTO_SSLV3 = 0x02,
    PROTO_TLSV1 = 0x04,
    PROTO_TLSV1_1 = 0x08,
    PROTO_TLSV1_2 = 0x10,
    PROTO_TLSV1_3 = 0x20,
    PROTO_DTLSV1 = 0x40,
    PROTO_DTLSV1_2 = 0x80
  };
  template <class... Args>
  explicit Context(Args&&... /*args*/) {
    relay_no_tls();
  }
  template <class... Args>
  void requireMinimumProtocol(Args&&... /*args*/) {}
  template <class... Args>
  void enableExtendedCertificateVerification(Args&&... /*args*/) {}
  template <class... Args>
  void setInvalidCertificateHandler(Args&&... /*args*/) {}
};

class HTTPSClientSession : public HTTPClientSession {
 public:
  template <class... Args>
  explicit HTTPSClientSession(Args&&... /*args*/) {
    relay_no_tls();
  }
};

}  // namespace Poco::Net
