// The real ExtensionsApi: plain HTTP/1.1 to ${AWS_LAMBDA_RUNTIME_API}.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "extensions_api.h"

namespace Poco::Net {
class HTTPClientSession;
}

namespace relay {

struct ExtensionsClientOptions {
  std::chrono::milliseconds connect_timeout{2000};
  // Send and receive timeout of every call but next (register, subscribe, init/exit error).
  std::chrono::milliseconds request_timeout{5000};
  // next may wait across a freeze of any length; zero waits forever. A finite value would fire
  // after a long freeze even though the event is waiting, so it exists for tests only.
  std::chrono::milliseconds next_receive_timeout{0};
};

class ExtensionsClient : public ExtensionsApi {
 public:
  // runtime_api is AWS_LAMBDA_RUNTIME_API ("host:port" or "[v6]:port"; no scheme, no path).
  // Throws std::invalid_argument when it is empty or malformed. Does no I/O.
  explicit ExtensionsClient(const std::string& runtime_api, ExtensionsClientOptions options = {});
  ~ExtensionsClient() override;

  Registration register_extension(const std::string& name,
                                  const std::vector<std::string>& events) override;
  LifecycleEvent next() override;
  SubscribeResult subscribe(const SubscribeRequest& request) override;
  // Never throw: these run on the way out, where nothing is left to handle an exception.
  bool init_error(const std::string& error_type, const std::string& message) override;
  bool exit_error(const std::string& error_type, const std::string& message) override;

  const std::string& host() const { return host_; }
  uint16_t port() const { return port_; }
  std::string extension_id() const;

 private:
  struct Reply {
    int status = 0;
    std::string body;
    std::map<std::string, std::string> headers;  // only those asked for
  };
  using Headers = std::vector<std::pair<std::string, std::string>>;

  // Throws LambdaApiError(status 0) on any transport failure.
  Reply exchange(Poco::Net::HTTPClientSession& session, const std::string& method,
                 const std::string& path, const Headers& headers, const std::string& body,
                 const std::string& call, const std::vector<std::string>& wanted_headers = {});
  bool report_error(const std::string& phase, const std::string& error_type,
                    const std::string& message);

  std::string host_;
  uint16_t port_ = 0;
  ExtensionsClientOptions options_;

  std::mutex api_mutex_;  // register, subscribe, init/exit error
  std::unique_ptr<Poco::Net::HTTPClientSession> api_session_;
  std::mutex next_mutex_;  // next has its own connection: it blocks for as long as Lambda likes
  std::unique_ptr<Poco::Net::HTTPClientSession> next_session_;
  mutable std::mutex id_mutex_;
  std::string extension_id_;
};

// What the extension registers for: Managed Instances have no INVOKE events, and Lambda refuses a
// registration that asks for them there.
std::vector<std::string> registration_events(bool managed_instances);

// The schema version to try when Lambda refuses `schema_version`: 2025-01-29 falls back to
// 2022-12-13, and the older ones move up to 2025-01-29 (required on Managed Instances).
std::string fallback_schema(const std::string& schema_version);

// True when the answer refuses the subscription because of its schemaVersion: a 400 whose body
// names the schema (Lambda's ValidationError message names the failing field).
bool refuses_schema(const SubscribeResult& result);

// Subscribes; when Lambda refuses the schema version, retries once with fallback_schema() and
// logs which one was used. The result answers the last attempt.
SubscribeResult subscribe_negotiating_schema(ExtensionsApi& api, const SubscribeRequest& request);

}  // namespace relay
