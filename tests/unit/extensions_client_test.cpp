#include "extensions_client.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/StreamCopier.h>
#include <Poco/ThreadPool.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config.h"

namespace relay {
namespace {

using ::testing::HasSubstr;

struct Recorded {
  std::string method;
  std::string uri;
  std::map<std::string, std::string> headers;
  std::string body;
};

struct Scripted {
  int status = 200;
  std::string body;
  std::map<std::string, std::string> headers;
  std::chrono::milliseconds delay{0};
};

// A stand-in for the Lambda API on 127.0.0.1:<ephemeral>: records each request and answers
// the next scripted response (500 when the script is empty).
class StubLambda {
 public:
  StubLambda() {
    Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
    Poco::Net::HTTPServerParams::Ptr params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(4);
    server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(*this), pool_, socket, params);
    server_->start();
  }
  ~StubLambda() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    stopped_.notify_all();  // cuts scripted delays short
    // A connection wakes POCO's accept loop, which otherwise polls the stop flag every 250 ms.
    std::thread waker([port = server_->socket().address().port()] {
      try {
        Poco::Net::StreamSocket(Poco::Net::SocketAddress("127.0.0.1", port));
      } catch (const Poco::Exception&) {
      }
    });
    server_->stopAll(true);
    waker.join();
    pool_.joinAll();  // no handler may outlive the stub it records into
  }

  std::string address() const {
    return "127.0.0.1:" + std::to_string(server_->socket().address().port());
  }

  void answer(Scripted response) {
    std::lock_guard<std::mutex> lock(mutex_);
    script_.push_back(std::move(response));
  }

  std::vector<Recorded> requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }

  Recorded last() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_.empty() ? Recorded{} : requests_.back();
  }

 private:
  class Handler : public Poco::Net::HTTPRequestHandler {
   public:
    explicit Handler(StubLambda& stub) : stub_(stub) {}
    void handleRequest(Poco::Net::HTTPServerRequest& request,
                       Poco::Net::HTTPServerResponse& response) override {
      Recorded recorded;
      recorded.method = request.getMethod();
      recorded.uri = request.getURI();
      for (const auto& [name, value] : request) recorded.headers[name] = value;
      Poco::StreamCopier::copyToString(request.stream(), recorded.body);
      Scripted scripted{500, "no scripted answer", {}, {}};
      {
        std::lock_guard<std::mutex> lock(stub_.mutex_);
        stub_.requests_.push_back(recorded);
        if (!stub_.script_.empty()) {
          scripted = stub_.script_.front();
          stub_.script_.pop_front();
        }
      }
      {
        std::unique_lock<std::mutex> lock(stub_.mutex_);
        stub_.stopped_.wait_for(lock, scripted.delay, [this] { return stub_.stopping_; });
      }
      response.setStatus(Poco::Net::HTTPResponse::HTTPStatus(scripted.status));
      for (const auto& [name, value] : scripted.headers) response.set(name, value);
      response.sendBuffer(scripted.body.data(), scripted.body.size());
    }

   private:
    StubLambda& stub_;
  };

  class Factory : public Poco::Net::HTTPRequestHandlerFactory {
   public:
    explicit Factory(StubLambda& stub) : stub_(stub) {}
    Poco::Net::HTTPRequestHandler* createRequestHandler(
        const Poco::Net::HTTPServerRequest&) override {
      return new Handler(stub_);
    }

   private:
    StubLambda& stub_;
  };

  std::mutex mutex_;
  std::condition_variable stopped_;
  bool stopping_ = false;
  std::deque<Scripted> script_;
  std::vector<Recorded> requests_;
  Poco::ThreadPool pool_{1, 4};
  std::unique_ptr<Poco::Net::HTTPServer> server_;
};

constexpr char kId[] = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";

class ExtensionsClientTest : public ::testing::Test {
 protected:
  // Registers, so later calls carry the identifier.
  void register_first() {
    stub_.answer({200,
                  R"({"functionName":"f","functionVersion":"$LATEST"})",
                  {{"Lambda-Extension-Identifier", kId}}});
    client_.register_extension("telemetry-relay", {"INVOKE", "SHUTDOWN"});
  }

  StubLambda stub_;
  ExtensionsClient client_{stub_.address()};
};

TEST_F(ExtensionsClientTest, RegisterSendsTheDocumentedRequestAndReadsTheAnswer) {
  stub_.answer(
      {200,
       R"({"accountId":"123456789012","functionName":"helloWorld","functionVersion":"$LATEST","handler":"lambda_function.lambda_handler","future":{"x":[1]}})"
       "\n",
       {{"Lambda-Extension-Identifier", kId}, {"Content-Type", "application/json"}}});
  Registration registration = client_.register_extension("telemetry-relay", {"INVOKE", "SHUTDOWN"});

  Recorded request = stub_.last();
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.uri, "/2020-01-01/extension/register");
  EXPECT_EQ(request.headers["Lambda-Extension-Name"], "telemetry-relay");
  EXPECT_EQ(request.headers["Lambda-Extension-Accept-Feature"], "accountId");
  EXPECT_EQ(request.headers["Content-Type"], "application/json");
  EXPECT_EQ(request.body, R"({"events":["INVOKE","SHUTDOWN"]})");

  EXPECT_EQ(registration.extension_id, kId);
  EXPECT_EQ(registration.function_name, "helloWorld");
  EXPECT_EQ(registration.function_version, "$LATEST");
  EXPECT_EQ(registration.account_id, "123456789012");
  EXPECT_EQ(client_.extension_id(), kId);
}

TEST_F(ExtensionsClientTest, RegisterWithoutAccountIdOrWithAnUnreadableBodyKeepsTheId) {
  stub_.answer({200,
                R"({"functionName":"f","functionVersion":"7"})",
                {{"Lambda-Extension-Identifier", kId}}});
  Registration plain = client_.register_extension("x", {"SHUTDOWN"});
  EXPECT_EQ(plain.account_id, "");
  EXPECT_EQ(plain.function_version, "7");
  EXPECT_EQ(stub_.last().body, R"({"events":["SHUTDOWN"]})");

  stub_.answer({200, "not json", {{"Lambda-Extension-Identifier", kId}}});
  Registration unreadable = client_.register_extension("x", {});
  EXPECT_EQ(unreadable.extension_id, kId);
  EXPECT_EQ(unreadable.function_name, "");
  EXPECT_EQ(stub_.last().body, R"({"events":[]})");
}

TEST_F(ExtensionsClientTest, RegisterRefusedCarriesStatusAndBody) {
  const std::string body =
      R"({"errorMessage":"Extension limit (10) reached","errorType":"Extension.TooManyExtensions"})";
  stub_.answer({403, body, {}});
  try {
    client_.register_extension("telemetry-relay", {"INVOKE"});
    FAIL() << "no exception";
  } catch (const LambdaApiError& e) {
    EXPECT_EQ(e.status(), 403);
    EXPECT_EQ(e.body(), body);
    EXPECT_THAT(e.what(), HasSubstr("403"));
  }
}

TEST_F(ExtensionsClientTest, Register200WithoutIdentifierIsAnError) {
  stub_.answer({200, R"({"functionName":"f"})", {}});
  try {
    client_.register_extension("telemetry-relay", {"INVOKE"});
    FAIL() << "no exception";
  } catch (const LambdaApiError& e) {
    EXPECT_EQ(e.status(), 200);
    EXPECT_THAT(e.what(), HasSubstr("Lambda-Extension-Identifier"));
  }
}

TEST_F(ExtensionsClientTest, NextParsesInvoke) {
  register_first();
  stub_.answer(
      {200,
       R"({"eventType":"INVOKE","deadlineMs":1715677927412,"requestId":"3da1f2dc-3222-475e-9205-e2e6c6318895","invokedFunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:ExtensionTest"})",
       {{"Lambda-Extension-Event-Identifier", "e-1"}}});
  LifecycleEvent event = client_.next();

  Recorded request = stub_.last();
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.uri, "/2020-01-01/extension/event/next");
  EXPECT_EQ(request.headers["Lambda-Extension-Identifier"], kId);
  EXPECT_EQ(request.body, "");

  EXPECT_EQ(event.type, LifecycleEvent::Type::kInvoke);
  EXPECT_EQ(event.raw_type, "INVOKE");
  EXPECT_EQ(event.deadline_ms, 1715677927412);
  EXPECT_EQ(event.request_id, "3da1f2dc-3222-475e-9205-e2e6c6318895");
  EXPECT_EQ(event.function_arn, "arn:aws:lambda:us-east-1:123456789012:function:ExtensionTest");
  EXPECT_EQ(event.shutdown_reason, "");
}

TEST_F(ExtensionsClientTest, NextParsesShutdownAndLowerCasesTheReason) {
  register_first();
  stub_.answer(
      {200,
       R"({"eventType":"SHUTDOWN","deadlineMs":1715678012345,"shutdownReason":"SPINDOWN"})",
       {}});
  stub_.answer({200,
                R"({"eventType":"SHUTDOWN","deadlineMs":1715678012346,"shutdownReason":"timeout"})",
                {}});
  LifecycleEvent upper = client_.next();
  EXPECT_EQ(upper.type, LifecycleEvent::Type::kShutdown);
  EXPECT_EQ(upper.deadline_ms, 1715678012345);
  EXPECT_EQ(upper.shutdown_reason, "spindown");
  EXPECT_EQ(client_.next().shutdown_reason, "timeout");
}

TEST_F(ExtensionsClientTest, NextKeepsAnUnknownEventType) {
  register_first();
  stub_.answer({200, R"({"eventType":"RESTORE","deadlineMs":"1715678012345"})", {}});
  LifecycleEvent event = client_.next();
  EXPECT_EQ(event.type, LifecycleEvent::Type::kUnknown);
  EXPECT_EQ(event.raw_type, "RESTORE");
  EXPECT_EQ(event.deadline_ms, 1715678012345);
}

TEST_F(ExtensionsClientTest, NextRefusedOrUnreadableIsAnError) {
  register_first();
  const std::string body =
      R"({"errorMessage":"Unknown extension x","errorType":"Extension.UnknownExtensionIdentifier"})";
  stub_.answer({403, body, {}});
  try {
    client_.next();
    FAIL() << "no exception";
  } catch (const LambdaApiError& e) {
    EXPECT_EQ(e.status(), 403);
    EXPECT_EQ(e.body(), body);
  }
  stub_.answer({200, "{\"eventType\":", {}});
  EXPECT_THROW(client_.next(), LambdaApiError);
  stub_.answer({200, "[]", {}});
  EXPECT_THROW(client_.next(), LambdaApiError);
}

TEST_F(ExtensionsClientTest, NextWaitsLongerThanTheRequestTimeout) {
  // next must outlast any request timeout: the environment may freeze inside the call.
  ExtensionsClient client(
      stub_.address(), ExtensionsClientOptions{.request_timeout = std::chrono::milliseconds(50)});
  stub_.answer({200,
                R"({"eventType":"INVOKE","deadlineMs":1,"requestId":"r"})",
                {},
                std::chrono::milliseconds(300)});
  EXPECT_EQ(client.next().request_id, "r");
}

TEST_F(ExtensionsClientTest, OtherCallsTimeOut) {
  ExtensionsClient client(
      stub_.address(), ExtensionsClientOptions{.request_timeout = std::chrono::milliseconds(50)});
  stub_.answer({200, "\"OK\"", {}, std::chrono::milliseconds(2000)});
  try {
    client.subscribe(SubscribeRequest{});
    FAIL() << "no exception";
  } catch (const LambdaApiError& e) {
    EXPECT_EQ(e.status(), 0);
  }
}

TEST_F(ExtensionsClientTest, SubscribeSendsTheDocumentedRequest) {
  register_first();
  stub_.answer({200, "\"OK\"", {}});
  SubscribeRequest request;
  request.destination_uri = "http://sandbox.localdomain:4243";
  SubscribeResult result = client_.subscribe(request);

  Recorded sent = stub_.last();
  EXPECT_EQ(sent.method, "PUT");
  EXPECT_EQ(sent.uri, "/2022-07-01/telemetry");
  EXPECT_EQ(sent.headers["Lambda-Extension-Identifier"], kId);
  EXPECT_EQ(sent.headers["Content-Type"], "application/json");
  EXPECT_EQ(sent.body,
            R"({"schemaVersion":"2022-12-13","types":["platform","function"],)"
            R"("buffering":{"maxItems":1000,"maxBytes":262144,"timeoutMs":1000},)"
            R"("destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:4243"}})");
  EXPECT_EQ(result.outcome, SubscribeResult::Outcome::kSubscribed);
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.body, "\"OK\"");
}

TEST_F(ExtensionsClientTest, SubscribeOutcomes) {
  register_first();
  const std::string not_supported =
      R"({"errorMessage":"Telemetry API is not supported","errorType":"Telemetry.NotSupported"})";
  stub_.answer({202, not_supported, {}});
  SubscribeResult accepted = client_.subscribe(SubscribeRequest{});
  EXPECT_EQ(accepted.outcome, SubscribeResult::Outcome::kNotSupported);
  EXPECT_EQ(accepted.status, 202);
  EXPECT_EQ(accepted.body, not_supported);

  const std::string invalid =
      R"({"errorType":"ValidationError","errorMessage":"URI port is not provided"})";
  stub_.answer({400, invalid, {}});
  SubscribeResult rejected = client_.subscribe(SubscribeRequest{});
  EXPECT_EQ(rejected.outcome, SubscribeResult::Outcome::kRejected);
  EXPECT_EQ(rejected.status, 400);
  EXPECT_EQ(rejected.body, invalid);

  SubscribeRequest custom;
  custom.schema_version = "2025-01-29";
  custom.types = {"platform"};
  custom.max_items = 10000;
  custom.max_bytes = 1048576;
  custom.timeout_ms = 25;
  custom.destination_uri = "http://sandbox.localdomain:1/path";
  stub_.answer({200, "\"OK\"", {}});
  client_.subscribe(custom);
  EXPECT_EQ(stub_.last().body,
            R"({"schemaVersion":"2025-01-29","types":["platform"],)"
            R"("buffering":{"maxItems":10000,"maxBytes":1048576,"timeoutMs":25},)"
            R"("destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:1/path"}})");
}

// Lambda Managed Instances: SHUTDOWN-only registration and schema 2025-01-29, as main sends them
// from the configuration.
TEST_F(ExtensionsClientTest, ManagedInstancesRegisterForShutdownOnlyAndSubscribeWith20250129) {
  const Config config =
      load_config({{"AWS_LAMBDA_INITIALIZATION_TYPE", "lambda-managed-instances"}});
  ASSERT_TRUE(config.managed_instances);
  stub_.answer({200, R"({"functionName":"f"})", {{"Lambda-Extension-Identifier", kId}}});
  client_.register_extension("telemetry-relay", registration_events(config.managed_instances));
  EXPECT_EQ(stub_.last().body, R"({"events":["SHUTDOWN"]})");

  SubscribeRequest request = config.subscription;
  request.destination_uri = "http://sandbox.localdomain:4243";
  stub_.answer({200, "\"OK\"", {}});
  const SubscribeResult result = subscribe_negotiating_schema(client_, request);
  EXPECT_EQ(result.outcome, SubscribeResult::Outcome::kSubscribed);
  EXPECT_EQ(result.schema_version, "2025-01-29");
  EXPECT_EQ(stub_.requests().size(), 2u);
  EXPECT_EQ(stub_.last().body,
            R"({"schemaVersion":"2025-01-29","types":["platform","function"],)"
            R"("buffering":{"maxItems":1000,"maxBytes":262144,"timeoutMs":100},)"
            R"("destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:4243"}})");

  EXPECT_EQ(registration_events(false), (std::vector<std::string>{"INVOKE", "SHUTDOWN"}));
}

std::string schema_of(const Recorded& request) {
  const std::string key = R"("schemaVersion":")";
  const size_t at = request.body.find(key);
  if (at == std::string::npos) return "";
  return request.body.substr(at + key.size(),
                             request.body.find('"', at + key.size()) - at - key.size());
}

const std::string kSchemaRefused =
    R"({"errorType":"ValidationError","errorMessage":"schemaVersion \"2025-01-29\" is not supported"})";

TEST(SchemaNegotiation, FallbackOrder) {
  EXPECT_EQ(fallback_schema("2025-01-29"), "2022-12-13");
  EXPECT_EQ(fallback_schema("2022-12-13"), "2025-01-29");
  EXPECT_EQ(fallback_schema("2022-07-01"), "2025-01-29");
}

TEST_F(ExtensionsClientTest, ASchemaRefusalIsRetriedOnceWithTheNextSchema) {
  register_first();
  stub_.answer({400, kSchemaRefused, {}});
  stub_.answer({200, "\"OK\"", {}});
  SubscribeRequest request;
  request.schema_version = "2025-01-29";
  request.destination_uri = "http://sandbox.localdomain:4243";
  const SubscribeResult result = subscribe_negotiating_schema(client_, request);
  EXPECT_EQ(result.outcome, SubscribeResult::Outcome::kSubscribed);
  EXPECT_EQ(result.schema_version, "2022-12-13");
  EXPECT_EQ(result.refused_schema, "2025-01-29");
  const auto requests = stub_.requests();
  ASSERT_EQ(requests.size(), 3u);  // register, then two subscribes
  EXPECT_EQ(schema_of(requests[1]), "2025-01-29");
  EXPECT_EQ(schema_of(requests[2]), "2022-12-13");
  // Only the schema changes.
  std::string first = requests[1].body;
  first.replace(first.find("2025-01-29"), 10, "2022-12-13");
  EXPECT_EQ(first, requests[2].body);
}

TEST_F(ExtensionsClientTest, OnManagedInstancesAnOlderSchemaMovesUpTo20250129) {
  register_first();
  stub_.answer({400,
                R"({"errorType":"ValidationError","errorMessage":"schemaVersion \"2022-12-13\" )"
                R"(is not supported on Lambda Managed Instances; use 2025-01-29"})",
                {}});
  stub_.answer({200, "\"OK\"", {}});
  const SubscribeResult result = subscribe_negotiating_schema(client_, SubscribeRequest{});
  EXPECT_EQ(result.outcome, SubscribeResult::Outcome::kSubscribed);
  EXPECT_EQ(result.schema_version, "2025-01-29");
  EXPECT_EQ(result.refused_schema, "2022-12-13");
}

TEST_F(ExtensionsClientTest, SchemaNegotiationRetriesOnlyOnceAndOnlyForTheSchema) {
  register_first();
  // Refused twice: one retry, then the refusal stands.
  stub_.answer({400, kSchemaRefused, {}});
  stub_.answer({400, kSchemaRefused, {}});
  stub_.answer({200, "\"OK\"", {}});  // never asked for
  const SubscribeResult twice = subscribe_negotiating_schema(client_, SubscribeRequest{});
  EXPECT_EQ(twice.outcome, SubscribeResult::Outcome::kRejected);
  EXPECT_EQ(twice.status, 400);
  EXPECT_EQ(stub_.requests().size(), 3u);

  // Any other refusal is not retried.
  client_.subscribe(SubscribeRequest{});  // takes the unused answer
  const size_t before = stub_.requests().size();
  for (const auto& [status, body] : std::vector<std::pair<int, std::string>>{
           {400, R"({"errorType":"ValidationError","errorMessage":"URI port is not provided"})"},
           {403, R"({"errorType":"Telemetry.SubscriptionClosed","errorMessage":"schema"})"},
           {500, "schema"}}) {
    stub_.answer({status, body, {}});
    const SubscribeResult once = subscribe_negotiating_schema(client_, SubscribeRequest{});
    EXPECT_EQ(once.status, status);
    EXPECT_TRUE(once.refused_schema.empty());
  }
  EXPECT_EQ(stub_.requests().size(), before + 3);
}

TEST_F(ExtensionsClientTest, InitAndExitErrorsSendTheHeaders) {
  register_first();
  stub_.answer({202, R"({"status":"OK"})", {}});
  EXPECT_TRUE(client_.init_error("Extension.ConfigInvalid", "bad \"config\""));
  Recorded init = stub_.last();
  EXPECT_EQ(init.method, "POST");
  EXPECT_EQ(init.uri, "/2020-01-01/extension/init/error");
  EXPECT_EQ(init.headers["Lambda-Extension-Identifier"], kId);
  EXPECT_EQ(init.headers["Lambda-Extension-Function-Error-Type"], "Extension.ConfigInvalid");
  EXPECT_EQ(init.body,
            R"({"errorMessage":"bad \"config\"","errorType":"Extension.ConfigInvalid"})");

  stub_.answer({200, "", {}});
  EXPECT_TRUE(client_.exit_error("Extension.UnknownReason", "boom"));
  EXPECT_EQ(stub_.last().uri, "/2020-01-01/extension/exit/error");
  EXPECT_EQ(stub_.last().headers["Lambda-Extension-Function-Error-Type"],
            "Extension.UnknownReason");

  stub_.answer({403, R"({"errorType":"Extension.InvalidExtensionState"})", {}});
  EXPECT_FALSE(client_.exit_error("Extension.UnknownReason", "boom"));
}

TEST(ExtensionsClient, TransportErrorsHaveStatusZero) {
  // Bound but not listening: connections are refused, and no other test can take the port.
  Poco::Net::ServerSocket reserved;
  reserved.bind(Poco::Net::SocketAddress("127.0.0.1", 0), false, false);
  ExtensionsClient client("127.0.0.1:" + std::to_string(reserved.address().port()));

  auto expect_status_zero = [](auto call) {
    try {
      call();
      ADD_FAILURE() << "no exception";
    } catch (const LambdaApiError& e) {
      EXPECT_EQ(e.status(), 0);
      EXPECT_THAT(e.what(), HasSubstr("cannot reach the Lambda API"));
    }
  };
  expect_status_zero([&] { client.register_extension("x", {"INVOKE"}); });
  expect_status_zero([&] { client.next(); });
  expect_status_zero([&] { client.subscribe(SubscribeRequest{}); });
  EXPECT_FALSE(client.init_error("Extension.Failed", "x"));
  EXPECT_FALSE(client.exit_error("Extension.Failed", "x"));
}

TEST(ExtensionsClient, RejectsAMalformedRuntimeApi) {
  for (const char* bad :
       {"", "127.0.0.1", "127.0.0.1:", ":9001", "127.0.0.1:abc", "127.0.0.1:0", "127.0.0.1:70000",
        "127.0.0.1:123456", "http://127.0.0.1:9001", "127.0.0.1:9001/", "127.0.0.1:9001/2020-01-01",
        " 127.0.0.1:9001", "::1:9001", "[::1]", "[::1]9001", "127.0.0.1:-1"}) {
    EXPECT_THROW(ExtensionsClient{bad}, std::invalid_argument) << "'" << bad << "'";
  }
  try {
    ExtensionsClient client("");
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("AWS_LAMBDA_RUNTIME_API"));
  }
}

TEST(ExtensionsClient, AcceptsHostPortForms) {
  ExtensionsClient ip("127.0.0.1:9001");
  EXPECT_EQ(ip.host(), "127.0.0.1");
  EXPECT_EQ(ip.port(), 9001);
  ExtensionsClient name("localhost:65535");
  EXPECT_EQ(name.host(), "localhost");
  ExtensionsClient v6("[::1]:9001");
  EXPECT_EQ(v6.host(), "::1");
  EXPECT_EQ(v6.port(), 9001);
}

}  // namespace
}  // namespace relay
