#include "test_certs.h"

#include <Poco/Pipe.h>
#include <Poco/PipeStream.h>
#include <Poco/Process.h>
#include <Poco/StreamCopier.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace relay::emu {
namespace {

void openssl(const std::vector<std::string>& args) {
  Poco::Pipe output;
  Poco::ProcessHandle handle = Poco::Process::launch("openssl", args, nullptr, &output, &output);
  Poco::PipeInputStream stream(output);
  std::string text;
  Poco::StreamCopier::copyToString(stream, text);
  if (const int rc = handle.wait(); rc != 0) {
    std::string command = "openssl";
    for (const auto& arg : args) command += " " + arg;
    throw std::runtime_error(command + " failed (" + std::to_string(rc) + "): " + text);
  }
}

}  // namespace

TestCerts make_test_certs(const std::string& dir) {
  std::filesystem::create_directories(dir);
  const std::string base = std::filesystem::path(dir).string() + "/";
  TestCerts certs{base + "ca.crt", base + "server.crt", base + "server.key"};
  const std::string ca_key = base + "ca.key";
  const std::string csr = base + "server.csr";
  const std::string extensions = base + "server.ext";
  std::ofstream(extensions) << "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                            << "basicConstraints=CA:FALSE\n";

  // EC keys: generating them takes milliseconds, RSA keys can take a second.
  openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", ca_key, "-out", certs.ca_cert, "-days", "2", "-subj", "/CN=relay-test-ca"});
  openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
           certs.server_key, "-out", csr, "-subj", "/CN=localhost"});
  openssl({"x509", "-req", "-in", csr, "-CA", certs.ca_cert, "-CAkey", ca_key, "-CAcreateserial",
           "-out", certs.server_cert, "-days", "2", "-extfile", extensions});
  return certs;
}

}  // namespace relay::emu
