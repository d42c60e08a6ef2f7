#pragma once

// The OTLP resource every request of the sink carries: who produced the telemetry (the function,
// its region and account, this execution environment), from Lambda's environment variables and
// the function's ARN, plus the user's OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "otlp_model.h"

namespace relay::otlp {

struct ResourceEnv {
  std::string function_name;        // AWS_LAMBDA_FUNCTION_NAME
  std::string function_version;     // AWS_LAMBDA_FUNCTION_VERSION
  std::string region;               // AWS_REGION
  std::string memory_mb;            // AWS_LAMBDA_FUNCTION_MEMORY_SIZE
  std::string log_stream;           // AWS_LAMBDA_LOG_STREAM_NAME
  std::string log_group;            // AWS_LAMBDA_LOG_GROUP_NAME
  std::string service_name;         // OTEL_SERVICE_NAME
  std::string resource_attributes;  // OTEL_RESOURCE_ATTRIBUTES

  static ResourceEnv from_environment();
};

// The value of an environment variable, empty when it is not set.
std::string environment_variable(const char* name);

// The account id in a Lambda function ARN (arn:aws:lambda:<region>:<account>:function:<name>...),
// empty when arn is not one.
std::string_view account_id_from_arn(std::string_view arn);

// Builds the resource. `account_id` may be empty (not known yet). A malformed
// OTEL_RESOURCE_ATTRIBUTES is ignored as a whole, with its reason in *warning (the function's own
// OpenTelemetry SDK reads the same variable: it must not stop the sink).
Resource build_resource(const ResourceEnv& env, std::string_view account_id, StringStore& strings,
                        std::string* warning);

}  // namespace relay::otlp
