// The Lambda Extensions API and Telemetry API subscription, as the lifecycle loop sees them.
// One interface so the lifecycle can be tested with GoogleMock; ExtensionsClient is the real one.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace relay {

// A Lambda API call that failed: transport error (status 0) or an unexpected HTTP status.
class LambdaApiError : public std::runtime_error {
 public:
  LambdaApiError(const std::string& what, int status, std::string body)
      : std::runtime_error(what), status_(status), body_(std::move(body)) {}
  int status() const { return status_; }
  const std::string& body() const { return body_; }

 private:
  int status_;
  std::string body_;
};

struct Registration {
  std::string extension_id;  // Lambda-Extension-Identifier
  std::string function_name;
  std::string function_version;
  std::string account_id;  // present when the accountId feature was granted
};

struct LifecycleEvent {
  enum class Type { kInvoke, kShutdown, kUnknown };
  Type type = Type::kUnknown;
  int64_t deadline_ms = 0;      // Unix epoch ms
  std::string request_id;       // INVOKE only
  std::string function_arn;     // INVOKE only: invokedFunctionArn
  std::string shutdown_reason;  // SHUTDOWN only, lower-cased (spindown, timeout, failure, ...)
  std::string raw_type;         // eventType as received
};

struct SubscribeRequest {
  std::string schema_version = "2022-12-13";
  std::vector<std::string> types = {"platform", "function"};
  uint32_t max_items = 1000;
  uint32_t max_bytes = 262144;
  uint32_t timeout_ms = 1000;
  std::string destination_uri;  // http://sandbox.localdomain:<port>
};

struct SubscribeResult {
  enum class Outcome { kSubscribed, kNotSupported, kRejected };
  Outcome outcome = Outcome::kRejected;
  int status = 0;
  std::string body;
  std::string schema_version;  // the schemaVersion of the request this answers
  std::string refused_schema;  // set when a first attempt was refused for its schemaVersion
};

class ExtensionsApi {
 public:
  virtual ~ExtensionsApi() = default;
  // POST /2020-01-01/extension/register. Throws LambdaApiError on anything but 200.
  virtual Registration register_extension(const std::string& name,
                                          const std::vector<std::string>& events) = 0;
  // GET /2020-01-01/extension/event/next. Blocks without a timeout (the process may be frozen
  // inside). Throws LambdaApiError on a transport error or non-200 answer.
  virtual LifecycleEvent next() = 0;
  // PUT /2022-07-01/telemetry. 200 -> kSubscribed, 202 -> kNotSupported, other -> kRejected.
  // Throws LambdaApiError only on transport errors.
  virtual SubscribeResult subscribe(const SubscribeRequest& request) = 0;
  // POST /2020-01-01/extension/{init,exit}/error. Best effort: returns false on failure.
  virtual bool init_error(const std::string& error_type, const std::string& message) = 0;
  virtual bool exit_error(const std::string& error_type, const std::string& message) = 0;
};

}  // namespace relay
