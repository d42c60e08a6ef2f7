#pragma once

// The function's ARN as the Extensions API gives it in INVOKE events (invokedFunctionArn), for
// sinks that describe where telemetry comes from (the otlp sink's cloud.account.id). Lambda
// gives it nowhere else: not in the environment, not in the telemetry (except platform.start on
// Managed Instances).

#include <string_view>

namespace relay {

// Keeps the first non-empty ARN; later ones (another alias or version of the same function) are
// ignored. [main-thread: the lifecycle]
void publish_function_arn(std::string_view arn);

// The published ARN, empty until then. [any thread]
std::string_view function_arn();

}  // namespace relay
