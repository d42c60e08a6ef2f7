#include "otlp_resource.h"

#include <charconv>
#include <cstdlib>
#include <stdexcept>

#include "otel_env.h"

namespace relay::otlp {
namespace {

void set(Attributes& attributes, std::string_view key, AnyValue value) {
  for (KeyValue& kv : attributes) {
    if (kv.key == key) {
      kv.value = std::move(value);
      return;
    }
  }
  attributes.push_back({key, std::move(value)});
}

}  // namespace

std::string environment_variable(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

ResourceEnv ResourceEnv::from_environment() {
  return {environment_variable("AWS_LAMBDA_FUNCTION_NAME"),
          environment_variable("AWS_LAMBDA_FUNCTION_VERSION"),
          environment_variable("AWS_REGION"),
          environment_variable("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
          environment_variable("AWS_LAMBDA_LOG_STREAM_NAME"),
          environment_variable("AWS_LAMBDA_LOG_GROUP_NAME"),
          environment_variable("OTEL_SERVICE_NAME"),
          environment_variable("OTEL_RESOURCE_ATTRIBUTES")};
}

std::string_view account_id_from_arn(std::string_view arn) {
  // arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
  std::string_view fields[5];
  for (std::string_view& field : fields) {
    const size_t colon = arn.find(':');
    if (colon == std::string_view::npos) return {};
    field = arn.substr(0, colon);
    arn.remove_prefix(colon + 1);
  }
  const std::string_view account = fields[4];
  if (fields[0] != "arn" || fields[2] != "lambda" || account.size() != 12) return {};
  for (char c : account) {
    if (c < '0' || c > '9') return {};
  }
  return account;
}

Resource build_resource(const ResourceEnv& e, std::string_view account_id, StringStore& strings,
                        std::string* warning) {
  Resource resource;
  Attributes& a = resource.attributes;
  const auto text = [&](std::string_view key, const std::string& value) {
    if (!value.empty()) set(a, key, AnyValue::string(strings.keep(value)));
  };
  text("service.name",
       e.function_name.empty() ? std::string("unknown_service:aws_lambda") : e.function_name);
  set(a, "cloud.provider", AnyValue::string("aws"));
  set(a, "cloud.platform", AnyValue::string("aws_lambda"));
  text("cloud.region", e.region);
  if (!account_id.empty()) text("cloud.account.id", std::string(account_id));
  text("faas.name", e.function_name);
  text("faas.version", e.function_version);
  text("faas.instance", e.log_stream);
  int64_t memory_mb = 0;
  const char* end = e.memory_mb.data() + e.memory_mb.size();
  if (auto [ptr, ec] = std::from_chars(e.memory_mb.data(), end, memory_mb);
      ec == std::errc() && ptr == end && memory_mb > 0 && memory_mb <= (int64_t{1} << 30)) {
    set(a, "faas.max_memory", AnyValue::integer(memory_mb * 1024 * 1024));  // semconv: bytes
  }
  if (!e.log_group.empty()) {
    AnyValue groups;
    groups.kind = AnyValue::Kind::kArray;
    groups.array_value.push_back(AnyValue::string(strings.keep(e.log_group)));
    set(a, "aws.log.group.names", std::move(groups));
  }
  if (!e.log_stream.empty()) {
    AnyValue streams;
    streams.kind = AnyValue::Kind::kArray;
    streams.array_value.push_back(AnyValue::string(strings.keep(e.log_stream)));
    set(a, "aws.log.stream.names", std::move(streams));
  }
  // The user's attributes override the detected ones; OTEL_SERVICE_NAME overrides them all, as
  // the OpenTelemetry SDKs do.
  if (!e.resource_attributes.empty()) {
    try {
      for (auto& [key, value] :
           parse_otel_list(e.resource_attributes, "OTEL_RESOURCE_ATTRIBUTES")) {
        set(a, strings.keep(std::move(key)), AnyValue::string(strings.keep(std::move(value))));
      }
    } catch (const std::invalid_argument& error) {
      if (warning != nullptr) *warning = std::string(error.what()) + ": ignored";
    }
  }
  text("service.name", e.service_name);
  return resource;
}

}  // namespace relay::otlp
