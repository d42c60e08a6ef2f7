// The network toolkit's client certificate (mutual TLS), against a local HTTPS server that
// requires one, with throwaway certificates made by the openssl CLI: a CA, a server certificate
// and a client certificate it signed, and a self-signed stranger.
#include <Poco/Net/Context.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <telemetry_relay/net/client.hpp>
#include <telemetry_relay/testing.hpp>

#include "http_test_servers.hpp"

namespace {

namespace net = relay::sdk::net;
namespace sdk_testing = relay::sdk::testing;
using namespace std::chrono_literals;
using relay::sdk::Status;
using relay::test::StubServer;

constexpr std::string_view kBody = R"([{"type":"function","record":"hi"}])";

class MutualTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char dir_template[] = "/tmp/relay-mtls-XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
    std::ofstream(dir_ + "/server.ext") << "subjectAltName=DNS:localhost\n";
    std::ofstream(dir_ + "/client.ext") << "extendedKeyUsage=clientAuth\n";
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
    const std::string d = dir_ + "/";
    for (const std::string& command : {
             "openssl req -x509" + ec + "-days 2 -subj /CN=relay-test-ca -keyout " + d +
                 "ca.key -out " + d + "ca.pem",
             "openssl req" + ec + "-subj /CN=localhost -keyout " + d + "server.key -out " + d +
                 "server.csr",
             "openssl x509 -req -in " + d + "server.csr -CA " + d + "ca.pem -CAkey " + d +
                 "ca.key -CAcreateserial -days 2 -extfile " + d + "server.ext -out " + d +
                 "server.pem",
             "openssl req" + ec + "-subj /CN=relay-client -keyout " + d + "client.key -out " + d +
                 "client.csr",
             "openssl x509 -req -in " + d + "client.csr -CA " + d + "ca.pem -CAkey " + d +
                 "ca.key -CAcreateserial -days 2 -extfile " + d + "client.ext -out " + d +
                 "client.pem",
             "openssl req -x509" + ec + "-days 2 -subj /CN=stranger -keyout " + d +
                 "stranger.key -out " + d + "stranger.pem",
         }) {
      const std::string quiet = command + " >/dev/null 2>&1";
      ASSERT_EQ(std::system(quiet.c_str()), 0) << command;
    }
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

  // A server that trusts only the test CA's clients and refuses a handshake without one.
  static Poco::Net::Context::Ptr requiring_client_certificates() {
    Poco::Net::Context::Ptr context = new Poco::Net::Context(
        Poco::Net::Context::TLS_SERVER_USE, dir_ + "/server.key", dir_ + "/server.pem",
        dir_ + "/ca.pem", Poco::Net::Context::VERIFY_STRICT);
    // POCO would also match the client certificate's names against the client's address.
    context->enableExtendedCertificateVerification(false);
    return context;
  }

  static net::ClientOptions options(const StubServer& server, const std::string& cert,
                                    const std::string& key) {
    net::ClientOptions options;
    options.uri = server.url("https", "localhost");
    options.uri_key = "endpoint";
    options.ca_file = dir_ + "/ca.pem";
    options.cert_file = cert.empty() ? "" : dir_ + "/" + cert;
    options.key_file = key.empty() ? "" : dir_ + "/" + key;
    return options;
  }

  static std::string read(const std::string& name) {
    std::ifstream in(dir_ + "/" + name);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  net::Attempt post(const net::ClientOptions& options) {
    net::HttpClient client(relay::sdk::Host(host_), options);
    return client.post(kBody, "id1", relay::sdk::Deadline::in(10s));
  }

  static std::string dir_;
  sdk_testing::FakeHost host_;
};

std::string MutualTls::dir_;

TEST_F(MutualTls, WithTheClientCertificateTheRequestIsServed) {
  StubServer server(requiring_client_certificates());
  const net::Attempt attempt = post(options(server, "client.pem", "client.key"));
  EXPECT_EQ(attempt.status, Status::kOk) << attempt.error;
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].body, kBody);
  EXPECT_TRUE(host_.logged("client certificate " + dir_ + "/client.pem"));
}

TEST_F(MutualTls, WithoutOneOrWithAnUntrustedOneTheServerRefuses) {
  StubServer server(requiring_client_certificates());
  for (auto [cert, key] : {std::pair{"", ""}, std::pair{"stranger.pem", "stranger.key"}}) {
    const net::Attempt attempt = post(options(server, cert, key));
    EXPECT_EQ(attempt.status, Status::kRetry) << cert;
    EXPECT_FALSE(attempt.error.empty());
  }
  EXPECT_TRUE(server.requests().empty());
}

// The key's content never reaches an error: a garbage key, a key of another certificate.
TEST_F(MutualTls, AKeyThatCannotBeUsedIsFatalAndNeverQuoted) {
  StubServer server(requiring_client_certificates());
  { std::ofstream(dir_ + "/garbage.key") << "S3CR3T-KEY-MATERIAL\n"; }
  const net::Attempt garbage = post(options(server, "client.pem", "garbage.key"));
  EXPECT_EQ(garbage.status, Status::kFatal);
  EXPECT_NE(garbage.error.find("key_file=" + dir_ + "/garbage.key: cannot load"), std::string::npos)
      << garbage.error;
  EXPECT_EQ(garbage.error.find("S3CR3T"), std::string::npos) << garbage.error;

  const net::Attempt mismatched = post(options(server, "client.pem", "stranger.key"));
  EXPECT_EQ(mismatched.status, Status::kFatal);
  // OpenSSL tells a mismatch while loading the key ("key values mismatch").
  EXPECT_NE(mismatched.error.find("key_file=" + dir_ + "/stranger.key"), std::string::npos)
      << mismatched.error;
  EXPECT_NE(mismatched.error.find("mismatch"), std::string::npos) << mismatched.error;
  const std::string key = read("stranger.key");
  const std::string key_line = key.substr(key.find('\n') + 1, 40);  // base64 of the key
  EXPECT_EQ(mismatched.error.find(key_line), std::string::npos) << mismatched.error;

  // An encrypted key is refused, never a passphrase asked for.
  const std::string encrypt = "openssl pkey -in " + dir_ +
                              "/client.key -aes256 -passout pass:pw -out " + dir_ +
                              "/encrypted.key 2>/dev/null";
  ASSERT_EQ(std::system(encrypt.c_str()), 0);
  const net::Attempt encrypted = post(options(server, "client.pem", "encrypted.key"));
  EXPECT_EQ(encrypted.status, Status::kFatal);
  EXPECT_NE(encrypted.error.find("key_file=" + dir_ + "/encrypted.key: cannot load"),
            std::string::npos)
      << encrypted.error;

  const net::Attempt no_chain = post(options(server, "garbage.key", "client.key"));
  EXPECT_EQ(no_chain.status, Status::kFatal);
  EXPECT_NE(no_chain.error.find("cert_file="), std::string::npos) << no_chain.error;
  EXPECT_EQ(no_chain.error.find("S3CR3T"), std::string::npos) << no_chain.error;
  EXPECT_FALSE(host_.logged("S3CR3T"));
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(MutualTls, TheConstructorRefusesHalfACertificateMissingFilesAndPlainHttp) {
  StubServer server;
  const auto refusal = [&](net::ClientOptions options) {
    try {
      net::HttpClient client(relay::sdk::Host(host_), std::move(options));
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  net::ClientOptions only_cert = options(server, "client.pem", "");
  EXPECT_EQ(refusal(only_cert), "cert_file and key_file go together: key_file is not set");
  net::ClientOptions only_key = options(server, "", "client.key");
  EXPECT_EQ(refusal(only_key), "cert_file and key_file go together: cert_file is not set");

  net::ClientOptions missing = options(server, "client.pem", "nonexistent.key");
  EXPECT_EQ(refusal(missing), "key_file=" + dir_ + "/nonexistent.key: no such file");
  net::ClientOptions folder = options(server, "client.pem", "client.key");
  folder.cert_file = dir_;
  EXPECT_EQ(refusal(folder), "cert_file=" + dir_ + ": no such file");
  if (::geteuid() != 0) {  // root reads anything
    std::filesystem::copy_file(dir_ + "/client.key", dir_ + "/unreadable.key");
    std::filesystem::permissions(dir_ + "/unreadable.key", std::filesystem::perms::none);
    EXPECT_EQ(refusal(options(server, "client.pem", "unreadable.key")),
              "key_file=" + dir_ + "/unreadable.key: cannot be read");
  }

  net::ClientOptions plain = options(server, "client.pem", "client.key");
  plain.uri = server.url();  // http://
  const std::string why = refusal(plain);
  EXPECT_EQ(why.rfind("cert_file and key_file: a client certificate needs https", 0), 0u) << why;
  EXPECT_EQ(why.find("token"), std::string::npos) << "the query is never shown: " << why;
}

}  // namespace
