#include "extensions_client.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/NumberParser.h>
#include <Poco/StreamCopier.h>
#include <Poco/String.h>

#include <sstream>
#include <stdexcept>
#include <tuple>

#include "logging.h"

namespace relay {
namespace {

constexpr char kIdHeader[] = "Lambda-Extension-Identifier";
constexpr char kJson[] = "application/json";

Poco::Timespan span(std::chrono::milliseconds ms) {
  return Poco::Timespan(Poco::Timespan::TimeDiff(ms.count()) * 1000);
}

[[noreturn]] void bad_runtime_api(const std::string& value, const std::string& why) {
  throw std::invalid_argument("AWS_LAMBDA_RUNTIME_API '" + value + "' is not host:port: " + why);
}

std::pair<std::string, uint16_t> split_host_port(const std::string& value) {
  if (value.empty()) {
    throw std::invalid_argument("AWS_LAMBDA_RUNTIME_API is not set (expected host:port)");
  }
  if (value.find("://") != std::string::npos) bad_runtime_api(value, "it must have no scheme");
  if (value.find_first_of("/ \t\r\n") != std::string::npos) {
    bad_runtime_api(value, "it must have no path or whitespace");
  }
  std::string host;
  std::string port;
  if (value.front() == '[') {
    const size_t close = value.find(']');
    if (close == std::string::npos || close + 1 >= value.size() || value[close + 1] != ':') {
      bad_runtime_api(value, "expected [address]:port");
    }
    host = value.substr(1, close - 1);
    port = value.substr(close + 2);
  } else {
    const size_t colon = value.rfind(':');
    if (colon == std::string::npos) bad_runtime_api(value, "the port is missing");
    host = value.substr(0, colon);
    port = value.substr(colon + 1);
    if (host.find(':') != std::string::npos) {
      bad_runtime_api(value, "an IPv6 address needs brackets");
    }
  }
  if (host.empty()) bad_runtime_api(value, "the host is empty");
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos) {
    bad_runtime_api(value, "the port is not a number");
  }
  const unsigned long number = std::stoul(port);
  if (number == 0 || number > 65535) bad_runtime_api(value, "the port is out of range");
  return {host, uint16_t(number)};
}

std::string stringify(const Poco::JSON::Object& object) {
  std::ostringstream out;
  object.stringify(out);
  return out.str();
}

// Throws Poco::Exception when text is not a JSON object.
Poco::JSON::Object::Ptr parse_object(const std::string& text) {
  Poco::JSON::Parser parser;
  Poco::Dynamic::Var value = parser.parse(text);
  Poco::JSON::Object::Ptr object = value.extract<Poco::JSON::Object::Ptr>();
  if (!object) throw Poco::DataFormatException("not a JSON object");
  return object;
}

std::string string_field(const Poco::JSON::Object::Ptr& object, const std::string& key) {
  Poco::Dynamic::Var value = object->get(key);
  return value.isString() ? value.extract<std::string>() : std::string();
}

// The docs once showed deadlineMs as a string; accept a number or a numeric string.
bool int64_field(const Poco::JSON::Object::Ptr& object, const std::string& key, int64_t& out) {
  try {
    Poco::Dynamic::Var value = object->get(key);
    if (value.isString()) {
      Poco::Int64 parsed = 0;
      if (!Poco::NumberParser::tryParse64(value.extract<std::string>(), parsed)) return false;
      out = parsed;
      return true;
    }
    if (value.isNumeric()) {
      out = value.convert<Poco::Int64>();
      return true;
    }
  } catch (const Poco::Exception&) {
  }
  return false;
}

}  // namespace

ExtensionsClient::ExtensionsClient(const std::string& runtime_api, ExtensionsClientOptions options)
    : options_(options) {
  std::tie(host_, port_) = split_host_port(runtime_api);

  api_session_ = std::make_unique<Poco::Net::HTTPClientSession>(host_, port_);
  api_session_->setTimeout(span(options_.connect_timeout), span(options_.request_timeout),
                           span(options_.request_timeout));
  // These calls are few and far apart; a fresh connection each time cannot be stale after a
  // freeze.
  api_session_->setKeepAlive(false);

  next_session_ = std::make_unique<Poco::Net::HTTPClientSession>(host_, port_);
  // A zero receive timeout is SO_RCVTIMEO 0: block until Lambda answers, however long the
  // environment stays frozen inside the call. POCO's default would give up after 60 s.
  next_session_->setTimeout(span(options_.connect_timeout), span(options_.request_timeout),
                            span(options_.next_receive_timeout));
  next_session_->setKeepAlive(true);
}

ExtensionsClient::~ExtensionsClient() = default;

std::string ExtensionsClient::extension_id() const {
  std::lock_guard<std::mutex> lock(id_mutex_);
  return extension_id_;
}

ExtensionsClient::Reply ExtensionsClient::exchange(Poco::Net::HTTPClientSession& session,
                                                   const std::string& method,
                                                   const std::string& path, const Headers& headers,
                                                   const std::string& body, const std::string& call,
                                                   const std::vector<std::string>& wanted_headers) {
  try {
    Poco::Net::HTTPRequest request(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    for (const auto& [name, value] : headers) request.set(name, value);
    if (method != Poco::Net::HTTPRequest::HTTP_GET) {
      request.setContentType(kJson);
      request.setContentLength64(Poco::Int64(body.size()));
    }
    std::ostream& out = session.sendRequest(request);
    out << body;
    out.flush();
    if (!out) throw Poco::IOException("sending the request body failed");

    Poco::Net::HTTPResponse response;
    std::istream& in = session.receiveResponse(response);
    Reply reply;
    Poco::StreamCopier::copyToString(in, reply.body);
    reply.status = int(response.getStatus());
    for (const std::string& name : wanted_headers) {
      if (response.has(name)) reply.headers[name] = response.get(name);
    }
    return reply;
  } catch (const Poco::Exception& e) {
    session.reset();  // a half-used connection would garble the next exchange
    throw LambdaApiError(call + ": cannot reach the Lambda API at " + host_ + ":" +
                             std::to_string(port_) + ": " + e.displayText(),
                         0, "");
  } catch (const std::exception& e) {
    session.reset();
    throw LambdaApiError(call + ": cannot reach the Lambda API at " + host_ + ":" +
                             std::to_string(port_) + ": " + e.what(),
                         0, "");
  }
}

Registration ExtensionsClient::register_extension(const std::string& name,
                                                  const std::vector<std::string>& events) {
  Poco::JSON::Array event_list;
  for (const std::string& event : events) event_list.add(event);
  Poco::JSON::Object body(Poco::JSON_PRESERVE_KEY_ORDER);
  body.set("events", event_list);

  Reply reply;
  {
    std::lock_guard<std::mutex> lock(api_mutex_);
    reply = exchange(
        *api_session_, Poco::Net::HTTPRequest::HTTP_POST, "/2020-01-01/extension/register",
        {{"Lambda-Extension-Name", name}, {"Lambda-Extension-Accept-Feature", "accountId"}},
        stringify(body), "register", {kIdHeader});
  }
  if (reply.status != 200) {
    throw LambdaApiError(
        "register: Lambda answered " + std::to_string(reply.status) + ": " + reply.body,
        reply.status, reply.body);
  }
  Registration registration;
  registration.extension_id = reply.headers[kIdHeader];
  if (registration.extension_id.empty()) {
    throw LambdaApiError("register: the 200 answer has no Lambda-Extension-Identifier header",
                         reply.status, reply.body);
  }
  try {
    Poco::JSON::Object::Ptr object = parse_object(reply.body);
    registration.function_name = string_field(object, "functionName");
    registration.function_version = string_field(object, "functionVersion");
    registration.account_id = string_field(object, "accountId");
  } catch (const Poco::Exception& e) {
    // The identifier is all that later calls need, so a body we cannot read is not fatal.
    logger("extensions")
        .warning("register: ignoring an unreadable answer body (%s): %s", e.displayText(),
                 reply.body);
  }
  std::lock_guard<std::mutex> lock(id_mutex_);
  extension_id_ = registration.extension_id;
  return registration;
}

LifecycleEvent ExtensionsClient::next() {
  Reply reply;
  {
    std::lock_guard<std::mutex> lock(next_mutex_);
    reply = exchange(*next_session_, Poco::Net::HTTPRequest::HTTP_GET,
                     "/2020-01-01/extension/event/next", {{kIdHeader, extension_id()}}, "", "next");
  }
  if (reply.status != 200) {
    throw LambdaApiError(
        "next: Lambda answered " + std::to_string(reply.status) + ": " + reply.body, reply.status,
        reply.body);
  }
  Poco::JSON::Object::Ptr object;
  try {
    object = parse_object(reply.body);
  } catch (const Poco::Exception& e) {
    throw LambdaApiError("next: the event is not a JSON object (" + e.displayText() + ")",
                         reply.status, reply.body);
  }

  LifecycleEvent event;
  event.raw_type = string_field(object, "eventType");
  if (Poco::icompare(event.raw_type, "INVOKE") == 0) {
    event.type = LifecycleEvent::Type::kInvoke;
  } else if (Poco::icompare(event.raw_type, "SHUTDOWN") == 0) {
    event.type = LifecycleEvent::Type::kShutdown;
  }
  if (!int64_field(object, "deadlineMs", event.deadline_ms)) {
    logger("extensions")
        .warning("next: %s event without a numeric deadlineMs: %s", event.raw_type, reply.body);
  }
  event.request_id = string_field(object, "requestId");
  event.function_arn = string_field(object, "invokedFunctionArn");
  // The docs write SPINDOWN, RIE and Lambda send spindown.
  event.shutdown_reason = Poco::toLower(string_field(object, "shutdownReason"));
  return event;
}

SubscribeResult ExtensionsClient::subscribe(const SubscribeRequest& request) {
  Poco::JSON::Array types;
  for (const std::string& type : request.types) types.add(type);
  Poco::JSON::Object buffering(Poco::JSON_PRESERVE_KEY_ORDER);
  buffering.set("maxItems", request.max_items);
  buffering.set("maxBytes", request.max_bytes);
  buffering.set("timeoutMs", request.timeout_ms);
  Poco::JSON::Object destination(Poco::JSON_PRESERVE_KEY_ORDER);
  destination.set("protocol", "HTTP");
  destination.set("URI", request.destination_uri);
  Poco::JSON::Object body(Poco::JSON_PRESERVE_KEY_ORDER);
  body.set("schemaVersion", request.schema_version);
  body.set("types", types);
  body.set("buffering", buffering);
  body.set("destination", destination);

  Reply reply;
  {
    std::lock_guard<std::mutex> lock(api_mutex_);
    // No trailing slash: RIE routes exactly and would answer 404.
    reply = exchange(*api_session_, Poco::Net::HTTPRequest::HTTP_PUT, "/2022-07-01/telemetry",
                     {{kIdHeader, extension_id()}}, stringify(body), "subscribe");
  }
  SubscribeResult result;
  result.status = reply.status;
  result.body = reply.body;
  result.schema_version = request.schema_version;
  if (reply.status == 200) {
    result.outcome = SubscribeResult::Outcome::kSubscribed;
  } else if (reply.status == 202) {
    result.outcome = SubscribeResult::Outcome::kNotSupported;
  } else {
    result.outcome = SubscribeResult::Outcome::kRejected;
  }
  return result;
}

std::vector<std::string> registration_events(bool managed_instances) {
  if (managed_instances) return {"SHUTDOWN"};
  return {"INVOKE", "SHUTDOWN"};
}

std::string fallback_schema(const std::string& schema_version) {
  return schema_version == "2025-01-29" ? "2022-12-13" : "2025-01-29";
}

bool refuses_schema(const SubscribeResult& result) {
  return result.outcome == SubscribeResult::Outcome::kRejected && result.status == 400 &&
         Poco::toLower(result.body).find("schema") != std::string::npos;
}

SubscribeResult subscribe_negotiating_schema(ExtensionsApi& api, const SubscribeRequest& request) {
  SubscribeResult first = api.subscribe(request);
  if (first.schema_version.empty()) first.schema_version = request.schema_version;
  if (!refuses_schema(first)) return first;
  SubscribeRequest retry = request;
  retry.schema_version = fallback_schema(request.schema_version);
  logger("extensions")
      .warning("subscribe: schema %s refused (status %d: %s); retrying with %s",
               request.schema_version, first.status, one_line(first.body), retry.schema_version);
  SubscribeResult second = api.subscribe(retry);
  second.schema_version = retry.schema_version;
  second.refused_schema = request.schema_version;
  return second;
}

bool ExtensionsClient::init_error(const std::string& error_type, const std::string& message) {
  return report_error("init", error_type, message);
}

bool ExtensionsClient::exit_error(const std::string& error_type, const std::string& message) {
  return report_error("exit", error_type, message);
}

bool ExtensionsClient::report_error(const std::string& phase, const std::string& error_type,
                                    const std::string& message) {
  Poco::JSON::Object body(Poco::JSON_PRESERVE_KEY_ORDER);
  body.set("errorMessage", message);
  body.set("errorType", error_type);
  const std::string call = phase + "/error";
  try {
    Reply reply;
    {
      std::lock_guard<std::mutex> lock(api_mutex_);
      reply = exchange(
          *api_session_, Poco::Net::HTTPRequest::HTTP_POST, "/2020-01-01/extension/" + call,
          {{kIdHeader, extension_id()}, {"Lambda-Extension-Function-Error-Type", error_type}},
          stringify(body), call);
    }
    // The docs say 202; the AWS Go sample expects 200. Either means it was recorded.
    if (reply.status == 202 || reply.status == 200) return true;
    logger("extensions").warning("%s: Lambda answered %d: %s", call, reply.status, reply.body);
  } catch (const std::exception& e) {
    logger("extensions").warning("%s: %s", call, std::string(e.what()));
  }
  return false;
}

}  // namespace relay
