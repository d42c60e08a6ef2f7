#pragma once

// Throwaway TLS material for HTTPS receiver tests, made with the `openssl` command line tool.

#include <string>

namespace relay::emu {

struct TestCerts {
  std::string ca_cert;      // PEM; give it to the client as its trust anchor
  std::string server_cert;  // PEM, for CN=localhost, SAN DNS:localhost and IP:127.0.0.1
  std::string server_key;   // PEM, unencrypted
};

// Writes a self-signed CA and a server certificate it signed into `dir` (created if needed).
// Throws std::runtime_error if openssl fails.
TestCerts make_test_certs(const std::string& dir);

}  // namespace relay::emu
