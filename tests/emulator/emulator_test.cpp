// The emulator's own tests: its protocol behaviour, observed through a fake extension
// (fake_extension.cpp) that logs API answers to stderr and records telemetry bodies to a file.

#include "emulator.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/NullStream.h>
#include <Poco/StreamCopier.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "receiver.h"
#include "test_certs.h"
#include "test_files.h"

namespace relay::emu {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::Ge;
using ::testing::HasSubstr;
using ::testing::Le;
using ::testing::Not;

// Index of the first line containing `needle`, or -1.
int line_index(const std::vector<std::string>& lines, const std::string& needle) {
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find(needle) != std::string::npos) return static_cast<int>(i);
  }
  return -1;
}

std::string line_with(const std::vector<std::string>& lines, const std::string& needle) {
  const int index = line_index(lines, needle);
  return index < 0 ? "<no line with '" + needle + "'>" : lines[static_cast<size_t>(index)];
}

// The request id of a platform.start event text.
std::string request_id_of(const std::string& event) {
  const std::string key = R"("requestId":")";
  const auto at = event.find(key);
  return at == std::string::npos ? "" : event.substr(at + key.size(), 36);
}

// The request id of every platform.start the emulator generated for the subscriber, in order.
std::vector<std::string> started_request_ids(const Summary& summary) {
  std::vector<std::string> ids;
  for (const auto& event : summary.subscriber_events) {
    if (event.find(R"("type":"platform.start")") != std::string::npos) {
      ids.push_back(request_id_of(event));
    }
  }
  return ids;
}

// Not parsed: function records hold numbers too big for Poco's JSON parser.
std::string type_of(const std::string& event) {
  const std::string key = R"(","type":")";
  const auto at = event.find(key) + key.size();
  return event.substr(at, event.find('"', at) - at);
}

// For platform events only (see type_of).
Poco::JSON::Object::Ptr record_of(const std::string& event) {
  return Poco::JSON::Parser().parse(event).extract<Poco::JSON::Object::Ptr>()->getObject("record");
}

int post(Poco::Net::HTTPClientSession& session, const std::string& body) {
  Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, "/",
                                 Poco::Net::HTTPMessage::HTTP_1_1);
  request.setContentLength(static_cast<std::streamsize>(body.size()));
  session.sendRequest(request) << body;
  Poco::Net::HTTPResponse response;
  Poco::NullOutputStream sink;
  Poco::StreamCopier::copyStream(session.receiveResponse(response), sink);
  return static_cast<int>(response.getStatus());
}

class EmulatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "emulator_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Options fake_options(int invocations = 2) {
    Options options;
    options.extension_path = FAKE_EXTENSION_PATH;
    options.invocations = invocations;
    options.logs_per_invoke = 5;
    options.stderr_path = dir_ + "/stderr.log";
    options.stdout_path = dir_ + "/stdout.log";
    options.env["FAKE_EXT_TELEMETRY_FILE"] = dir_ + "/telemetry.jsonl";
    return options;
  }

  // A fake that does what Managed Instances requires: SHUTDOWN only, schema 2025-01-29.
  Options managed_options(int invocations) {
    Options options = fake_options(invocations);
    options.managed_instances = true;
    options.env["FAKE_EXT_EVENTS"] = "SHUTDOWN";
    options.env["FAKE_EXT_SCHEMA"] = "2025-01-29";
    return options;
  }

  std::vector<std::string> fake_log() const { return read_lines(dir_ + "/stderr.log"); }
  std::vector<std::string> bodies() const { return read_lines(dir_ + "/telemetry.jsonl"); }
  std::vector<std::string> received_events() const {
    std::vector<std::string> events;
    for (const auto& body : bodies()) {
      auto split = split_event_array(body);
      EXPECT_TRUE(split.has_value()) << body;
      if (split) events.insert(events.end(), split->begin(), split->end());
    }
    return events;
  }

  std::string dir_;
};

TEST_F(EmulatorTest, HappyPathDeliversEveryEventByteForByte) {
  Options options = fake_options(3);
  options.logs_per_invoke = 12;
  options.log_format = LogFormat::kMixed;
  const Summary summary = Emulator(options).run();

  EXPECT_TRUE(summary.clean(3)) << line_with(fake_log(), "fake:");
  EXPECT_EQ(summary.extension_name, "fake_extension");
  EXPECT_EQ(summary.subscribe_status, 200);
  EXPECT_EQ(summary.exit_code, 0);
  EXPECT_GT(summary.init_ms, 0);
  EXPECT_GE(summary.init_ms, summary.register_ms);
  EXPECT_EQ(summary.invoke_to_next_ms.count, 3u);
  EXPECT_GT(summary.post_latency_ms.count, 0u);

  const auto& generated = summary.generated_by_type;
  EXPECT_EQ(generated.at("platform.initStart"), 1u);
  EXPECT_EQ(generated.at("platform.telemetrySubscription"), 1u);
  EXPECT_EQ(generated.at("platform.initRuntimeDone"), 1u);
  EXPECT_EQ(generated.at("platform.extension"), 1u);
  EXPECT_EQ(generated.at("platform.initReport"), 1u);
  EXPECT_EQ(generated.at("platform.start"), 3u);
  EXPECT_EQ(generated.at("platform.runtimeDone"), 3u);
  EXPECT_EQ(generated.at("platform.report"), 3u);
  EXPECT_EQ(generated.at("function"), 36u);
  EXPECT_GT(generated.at("extension"), 0u);  // the fake's stderr lines, not subscribed

  // Subscribed to platform and function: everything of those, nothing else, same bytes.
  EXPECT_EQ(summary.events_delivered, summary.events_for_subscriber);
  EXPECT_EQ(summary.delivered_by_type.count("extension"), 0u);
  EXPECT_EQ(received_events(), summary.subscriber_events);
  std::string all = "[";
  for (const auto& event : summary.subscriber_events) all += (all.size() > 1 ? "," : "") + event;
  const auto reparsed = split_event_array(all + "]");
  ASSERT_TRUE(reparsed.has_value()) << "every generated event is one valid JSON object";
  EXPECT_EQ(reparsed->size(), summary.subscriber_events.size());
  EXPECT_EQ(summary.subscriber_events.front().find(R"("type":"platform.initStart")"), 35u)
      << "init events are replayed to the new subscriber";
}

TEST_F(EmulatorTest, ReportOfInvocationNArrivesAfterNextInvokeOrShutdown) {
  const Summary summary = Emulator(fake_options(2)).run();
  ASSERT_TRUE(summary.clean(2));
  const std::vector<std::string> request_ids = started_request_ids(summary);
  ASSERT_EQ(request_ids.size(), 2u);
  // Lambda emits report N only once the extension called next after invocation N, so it can
  // reach the listener during N+1 or after SHUTDOWN, never while N still runs. (Whether it lands
  // just before or just after that next returns is a race in Lambda too.)
  const auto log = fake_log();
  for (const std::string& id : request_ids) {
    const int invoked = line_index(log, "INVOKE " + id);
    const int report = line_index(log, "got platform.report " + id);
    ASSERT_GE(invoked, 0) << id;
    ASSERT_GE(report, 0) << id;
    int next_after_invoke = -1;
    for (int i = invoked + 1; i < static_cast<int>(log.size()); ++i) {
      if (log[static_cast<size_t>(i)].find("calling next") != std::string::npos) {
        next_after_invoke = i;
        break;
      }
    }
    ASSERT_GE(next_after_invoke, 0) << id;
    EXPECT_LT(next_after_invoke, report) << "report of " << id << " before the next that ends it";
  }
}

TEST_F(EmulatorTest, ApiErrorsMatchTheRealApi) {
  Options options = fake_options(1);
  options.env["FAKE_EXT_MODE"] = "probe";
  const Summary summary = Emulator(options).run();
  EXPECT_TRUE(summary.clean(1));
  const auto log = fake_log();
  EXPECT_THAT(line_with(log, "probe register-no-name "),
              AllOf(HasSubstr(" 403 "), HasSubstr("Extension.InvalidExtensionName")));
  EXPECT_THAT(line_with(log, "probe register-bad-json "),
              AllOf(HasSubstr(" 403 "), HasSubstr("InvalidRequestFormat")));
  EXPECT_THAT(line_with(log, "probe register-bad-event "),
              AllOf(HasSubstr(" 403 "), HasSubstr("BOGUS: ErrorInvalidEventType")));
  EXPECT_THAT(line_with(log, "probe next-no-id "),
              AllOf(HasSubstr(" 403 "), HasSubstr("Extension.MissingExtensionIdentifier")));
  EXPECT_THAT(line_with(log, "probe next-unknown-id "),
              AllOf(HasSubstr(" 403 "), HasSubstr("Extension.UnknownExtensionIdentifier")));
  EXPECT_THAT(line_with(log, "probe register-twice "),
              AllOf(HasSubstr(" 403 "), HasSubstr("Extension.InvalidExtensionState")));
  EXPECT_THAT(line_with(log, "probe init-error-no-type "),
              AllOf(HasSubstr(" 403 "), HasSubstr("Extension.MissingHeader")));
  EXPECT_THAT(line_with(log, "probe unknown-route "), HasSubstr(" 404 "));
  EXPECT_THAT(line_with(log, "probe subscribe-no-id "),
              AllOf(HasSubstr(" 403 "), HasSubstr("Extension.MissingExtensionIdentifier")));
  const std::string invalid = line_with(log, "probe subscribe-invalid ");
  EXPECT_THAT(invalid, AllOf(HasSubstr(" 400 "), HasSubstr("ValidationError"),
                             HasSubstr("types should not be empty"), HasSubstr("maxItems"),
                             HasSubstr("timeoutMs"), HasSubstr("sandbox.localdomain"),
                             HasSubstr("URI port is not provided")));
  EXPECT_THAT(line_with(log, "probe subscribe-after-init "),
              AllOf(HasSubstr(" 403 "), HasSubstr("Telemetry.SubscriptionClosed")));
  EXPECT_THAT(line_with(log, "register 200"), HasSubstr(R"("accountId":"123456789012")"));
  EXPECT_THAT(line_with(log, "subscribe 200"), HasSubstr(R"(200 "OK")"));
}

TEST_F(EmulatorTest, ExtensionGetsLambdaEnvironment) {
  Options options = fake_options(1);
  options.function.name = "orders-api";
  options.function.memory_mb = 256;
  options.env["CUSTOM_SETTING"] = "a b=c";
  options.env["FAKE_EXT_ECHO_ENV"] =
      "AWS_LAMBDA_RUNTIME_API,AWS_REGION,AWS_LAMBDA_FUNCTION_NAME,AWS_LAMBDA_FUNCTION_MEMORY_SIZE,"
      "AWS_LAMBDA_FUNCTION_VERSION,AWS_LAMBDA_INITIALIZATION_TYPE,CUSTOM_SETTING,PATH";
  Emulator emulator(options);
  const Summary summary = emulator.run();
  EXPECT_TRUE(summary.clean(1));
  const auto log = fake_log();
  EXPECT_THAT(line_with(log, "env AWS_LAMBDA_RUNTIME_API="), HasSubstr("=127.0.0.1:"));
  EXPECT_THAT(log, Contains("fake: env AWS_REGION=us-east-1"));
  EXPECT_THAT(log, Contains("fake: env AWS_LAMBDA_FUNCTION_NAME=orders-api"));
  EXPECT_THAT(log, Contains("fake: env AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256"));
  EXPECT_THAT(log, Contains("fake: env AWS_LAMBDA_FUNCTION_VERSION=$LATEST"));
  EXPECT_THAT(log, Contains("fake: env AWS_LAMBDA_INITIALIZATION_TYPE=on-demand"));
  EXPECT_THAT(log, Contains("fake: env CUSTOM_SETTING=a b=c"));
  EXPECT_THAT(line_with(log, "env PATH="), Not(HasSubstr("<unset>")));
}

TEST_F(EmulatorTest, TelemetryNotSupportedAnswers202) {
  Options options = fake_options(1);
  options.telemetry_supported = false;
  const Summary summary = Emulator(options).run();
  EXPECT_TRUE(summary.clean(1));
  EXPECT_EQ(summary.subscribe_status, 202);
  EXPECT_THAT(line_with(fake_log(), "subscribe "),
              AllOf(HasSubstr("202"), HasSubstr("Telemetry.NotSupported")));
  EXPECT_EQ(summary.events_delivered, 0u);
}

TEST_F(EmulatorTest, RefusedRegistrationFailsInit) {
  Options options = fake_options(1);
  options.register_status = 500;
  const Summary summary = Emulator(options).run();
  EXPECT_FALSE(summary.init_ok);
  EXPECT_EQ(summary.init_error, "Extension.Crash");  // the fake exits 1 when refused
  EXPECT_EQ(summary.exit_code, 1);
  EXPECT_THAT(line_with(fake_log(), "register "), HasSubstr("register 500"));
  EXPECT_FALSE(summary.clean(1));
}

TEST_F(EmulatorTest, ExitDuringInvokeIsACrash) {
  Options options = fake_options(3);
  options.env["FAKE_EXT_MODE"] = "crash_on_invoke=2";
  const Summary summary = Emulator(options).run();
  EXPECT_TRUE(summary.init_ok);
  EXPECT_EQ(summary.fatal_error, "Extension.Crash");
  EXPECT_EQ(summary.invocations_completed, 1);
  EXPECT_EQ(summary.exit_code, 0);  // exit code 0 outside SHUTDOWN is still a crash
  EXPECT_FALSE(summary.shutdown_sent);
  EXPECT_FALSE(summary.clean(3));
}

TEST_F(EmulatorTest, HangingExtensionIsKilledAtTheDeadline) {
  Options options = fake_options(1);
  options.shutdown_ms = 500;
  options.env["FAKE_EXT_MODE"] = "hang_on_shutdown";
  const Summary summary = Emulator(options).run();
  EXPECT_TRUE(summary.shutdown_sent);
  EXPECT_TRUE(summary.killed);
  EXPECT_EQ(summary.exit_signal, SIGKILL);
  EXPECT_FALSE(summary.exited_before_deadline);
  EXPECT_THAT(summary.shutdown_duration_ms, AllOf(Ge(450.0), Le(5000.0)));
  EXPECT_THAT(line_with(fake_log(), "SHUTDOWN"), HasSubstr("SHUTDOWN spindown deadline_in_ms"));
}

TEST_F(EmulatorTest, NeverRegisteringFailsInitAtTheTimeout) {
  Options options = fake_options(1);
  options.init_timeout_ms = 500;
  options.shutdown_ms = 200;
  options.env["FAKE_EXT_MODE"] = "never_register";
  const Summary summary = Emulator(options).run();
  EXPECT_FALSE(summary.registered);
  EXPECT_EQ(summary.init_error, "timeout");
  EXPECT_TRUE(summary.killed);
  EXPECT_EQ(summary.generated_by_type.at("platform.initReport"), 1u);
}

TEST_F(EmulatorTest, InitErrorCallIsRecorded) {
  Options options = fake_options(1);
  options.env["FAKE_EXT_MODE"] = "init_error";
  const Summary summary = Emulator(options).run();
  EXPECT_EQ(summary.init_error, "Extension.InitError");
  ASSERT_EQ(summary.error_calls.size(), 1u);
  EXPECT_EQ(summary.error_calls[0].path, "init/error");
  EXPECT_EQ(summary.error_calls[0].error_type, "Extension.FakeInitError");
  EXPECT_THAT(summary.error_calls[0].body, HasSubstr("fake init failure"));
  EXPECT_THAT(line_with(fake_log(), "init/error "), HasSubstr(R"(202 {"status":"OK"})"));
}

TEST_F(EmulatorTest, ExitErrorCallIsRecorded) {
  Options options = fake_options(2);
  options.env["FAKE_EXT_MODE"] = "exit_error";
  const Summary summary = Emulator(options).run();
  ASSERT_EQ(summary.error_calls.size(), 1u);
  EXPECT_EQ(summary.error_calls[0].path, "exit/error");
  EXPECT_EQ(summary.fatal_error, "Extension.Crash");
  EXPECT_THAT(line_with(fake_log(), "exit/error "), HasSubstr("202"));
}

char process_state(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto paren = text.rfind(')');
  return paren == std::string::npos || paren + 2 >= text.size() ? '?' : text[paren + 2];
}

TEST_F(EmulatorTest, ExtensionIsFrozenBetweenInvocations) {
  for (const bool freeze : {true, false}) {
    Options options = fake_options(3);
    options.freeze = freeze;
    std::vector<char> states;
    Emulator* running = nullptr;
    options.between_invocations = [&](int) {
      states.push_back(process_state(running->extension_pid()));
    };
    Emulator emulator(options);
    running = &emulator;
    const Summary summary = emulator.run();
    EXPECT_TRUE(summary.clean(3));
    ASSERT_EQ(states.size(), 3u);
    if (freeze) {
      EXPECT_THAT(states, Each('T'));
    } else {
      EXPECT_THAT(states, Each(::testing::Ne('T')));
    }
  }
}

TEST_F(EmulatorTest, FreezesAreCounted) {
  Options options = fake_options(3);
  EXPECT_EQ(Emulator(options).run().freezes, 3);
  options.freeze = false;
  EXPECT_EQ(Emulator(options).run().freezes, 0);
}

// Settled, report N reaches the extension before INVOKE N+1 and the last one before SHUTDOWN:
// the reverse of ReportOfInvocationNArrivesAfterNextInvokeOrShutdown.
TEST_F(EmulatorTest, ManagedInstancesRunConcurrentInvocationsWithoutInvokeEvents) {
  Options options = managed_options(8);
  options.concurrency = 4;
  options.logs_per_invoke = 6;
  options.log_bursts = 3;
  options.runtime_ms = 100;  // long enough for the four slots to overlap on a loaded machine
  options.log_format = LogFormat::kMixed;
  options.tenant_id = "tenant-a";
  std::vector<char> states;
  std::vector<int> hook_calls;
  Emulator* running = nullptr;
  options.between_invocations = [&](int next) {
    hook_calls.push_back(next);
    states.push_back(process_state(running->extension_pid()));
  };
  Emulator emulator(options);
  running = &emulator;
  const Summary summary = emulator.run();

  ASSERT_TRUE(summary.clean(8)) << line_with(fake_log(), "fake:");
  EXPECT_TRUE(summary.managed_instances);
  EXPECT_EQ(summary.registered_events, std::vector<std::string>{"SHUTDOWN"});
  EXPECT_EQ(summary.schema_version, "2025-01-29");
  EXPECT_THAT(summary.max_in_flight, AllOf(Ge(2), Le(4)));
  EXPECT_EQ(summary.invoke_to_next_ms.count, 0u);  // no INVOKE to answer
  EXPECT_EQ(summary.freezes, 0);
  EXPECT_THAT(hook_calls, ElementsAre(8));
  EXPECT_THAT(states, Each(::testing::Ne('T')));

  const auto log = fake_log();
  EXPECT_EQ(line_index(log, "fake: INVOKE"), -1);
  EXPECT_THAT(line_with(log, "SHUTDOWN"), HasSubstr("SHUTDOWN spindown deadline_in_ms"));

  const auto& generated = summary.generated_by_type;
  EXPECT_EQ(generated.count("platform.runtimeDone"), 0u);
  EXPECT_EQ(generated.at("platform.start"), 8u);
  EXPECT_EQ(generated.at("platform.report"), 8u);
  EXPECT_EQ(generated.at("function"), 48u);
  EXPECT_EQ(summary.delivered_by_type.count("platform.runtimeDone"), 0u);
  EXPECT_EQ(summary.delivered_by_type.at("platform.report"), 8u);
  EXPECT_EQ(summary.events_delivered, summary.events_for_subscriber);
  EXPECT_EQ(received_events(), summary.subscriber_events);

  std::set<std::string> open;  // started, not yet reported
  bool interleaved = false;
  for (const auto& event : summary.subscriber_events) {
    const std::string type = type_of(event);
    const auto record = type == "function" ? nullptr : record_of(event);
    if (type == "platform.initStart" || type == "platform.initReport") {
      EXPECT_EQ(record->getValue<std::string>("initializationType"), "lambda-managed-instances");
    } else if (type == "platform.extension") {
      EXPECT_THAT(event, HasSubstr(R"("events":["SHUTDOWN"])"));
    } else if (type == "platform.start") {
      interleaved = interleaved || !open.empty();
      open.insert(record->getValue<std::string>("requestId"));
      EXPECT_EQ(record->getValue<std::string>("tenantId"), "tenant-a");
      EXPECT_EQ(record->getValue<std::string>("functionArn"), options.function.arn());
    } else if (type == "function") {
      EXPECT_TRUE(
          std::any_of(open.begin(), open.end(),
                      [&](const std::string& id) { return event.find(id) != std::string::npos; }))
          << "a log line belongs to an invocation in flight: " << event;
      if (event.find(R"("record":{)") != std::string::npos) {
        EXPECT_THAT(event, HasSubstr(R"("tenantId":"tenant-a")"));
      }
    } else if (type == "platform.report") {
      EXPECT_EQ(open.erase(record->getValue<std::string>("requestId")), 1u);
      const auto metrics = record->getObject("metrics");
      EXPECT_EQ(metrics->size(), 1u) << event;
      EXPECT_TRUE(metrics->has("durationMs")) << event;
      const auto spans = record->getArray("spans");
      ASSERT_EQ(spans->size(), 2u) << event;
      EXPECT_EQ(spans->getObject(0)->getValue<std::string>("name"), "responseLatency");
      EXPECT_EQ(spans->getObject(1)->getValue<std::string>("name"), "responseDuration");
      EXPECT_EQ(record->getValue<std::string>("status"), "success");
    }
  }
  EXPECT_TRUE(open.empty());
  EXPECT_TRUE(interleaved) << "invocations overlap, so their telemetry interleaves";
}

TEST_F(EmulatorTest, ManagedInstancesRefuseInvokeRegistration) {
  Options options = managed_options(2);
  options.env["FAKE_EXT_EVENTS"] = "INVOKE,SHUTDOWN;SHUTDOWN";  // falls back to SHUTDOWN only
  const Summary summary = Emulator(options).run();
  EXPECT_TRUE(summary.clean(2));
  EXPECT_EQ(summary.registered_events, std::vector<std::string>{"SHUTDOWN"});
  const auto log = fake_log();
  EXPECT_THAT(line_with(log, "register "),
              AllOf(HasSubstr("register 403 "), HasSubstr("Extension.InvalidEventType"),
                    HasSubstr("INVOKE: ErrorInvalidEventType")));
  EXPECT_GT(line_index(log, "register 200"), line_index(log, "register 403"));
}

TEST_F(EmulatorTest, ManagedInstancesInvokeOnlyExtensionFailsInit) {
  Options options = managed_options(1);
  options.env["FAKE_EXT_EVENTS"] = "INVOKE";
  const Summary summary = Emulator(options).run();
  EXPECT_FALSE(summary.registered);
  EXPECT_FALSE(summary.init_ok);
  EXPECT_EQ(summary.init_error, "Extension.Crash");  // the fake exits 1 when refused
  EXPECT_THAT(line_with(fake_log(), "register "),
              AllOf(HasSubstr("register 403 "), HasSubstr("INVOKE: ErrorInvalidEventType")));
}

TEST_F(EmulatorTest, ManagedInstancesRefuseEventsForInternalExtensions) {
  Options options = managed_options(1);
  options.init_timeout_ms = 2000;
  options.env["FAKE_EXT_NAME"] = "not-the-file-name";
  const Summary summary = Emulator(options).run();
  EXPECT_FALSE(summary.init_ok);
  EXPECT_THAT(line_with(fake_log(), "register "),
              AllOf(HasSubstr("register 403 "), HasSubstr("Extension.InvalidEventType"),
                    HasSubstr("No events allowed for internal extensions")));
}

TEST_F(EmulatorTest, ManagedInstancesRequireSchema20250129) {
  Options options = managed_options(1);
  options.env["FAKE_EXT_SCHEMA"] = "2022-12-13,2025-01-29";
  const Summary summary = Emulator(options).run();
  EXPECT_TRUE(summary.clean(1));
  EXPECT_EQ(summary.subscribe_status, 200);
  EXPECT_EQ(summary.schema_version, "2025-01-29");
  const auto log = fake_log();
  EXPECT_THAT(line_with(log, "subscribe "),
              AllOf(HasSubstr("subscribe 400 "), HasSubstr("ValidationError"),
                    HasSubstr(R"(schemaVersion \"2022-12-13\" is not supported)"),
                    HasSubstr("2025-01-29")));
  EXPECT_THAT(line_with(log, "subscribe 200"), HasSubstr(R"(200 "OK")"));
  EXPECT_GT(line_index(log, "subscribe 200"), line_index(log, "subscribe 400"));
}

TEST_F(EmulatorTest, ManagedInstancesSetTheInitializationType) {
  Options options = managed_options(1);
  options.env["FAKE_EXT_ECHO_ENV"] = "AWS_LAMBDA_INITIALIZATION_TYPE";
  const Summary summary = Emulator(options).run();
  EXPECT_TRUE(summary.clean(1));
  EXPECT_THAT(fake_log(),
              Contains("fake: env AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances"));
}

TEST_F(EmulatorTest, SettledTelemetryArrivesBeforeTheNextEvent) {
  Options options = fake_options(2);
  options.settle_telemetry_before_events = true;
  options.env["FAKE_EXT_BUFFERING"] = R"({"maxItems":1000,"maxBytes":262144,"timeoutMs":30000})";
  const Summary summary = Emulator(options).run();
  ASSERT_TRUE(summary.clean(2));
  const std::vector<std::string> request_ids = started_request_ids(summary);
  ASSERT_EQ(request_ids.size(), 2u);
  const auto log = fake_log();
  const int report0 = line_index(log, "got platform.report " + request_ids[0]);
  const int report1 = line_index(log, "got platform.report " + request_ids[1]);
  ASSERT_GE(report0, 0);
  ASSERT_GE(report1, 0);
  EXPECT_LT(report0, line_index(log, "INVOKE " + request_ids[1]));
  EXPECT_LT(report1, line_index(log, "SHUTDOWN spindown"));
  // A 30 s timeoutMs would otherwise hold every batch past the end of the run.
  EXPECT_EQ(received_events(), summary.subscriber_events);
}

TEST_F(EmulatorTest, MalformedPostIsAnsweredAndExtensionStaysHealthy) {
  Options options = fake_options(2);
  options.raw_posts = {RawPost{1, "{not json", "application/json"}};
  const Summary summary = Emulator(options).run();
  ASSERT_EQ(summary.raw_post_statuses.size(), 1u);
  EXPECT_EQ(summary.raw_post_statuses[0], 400);
  EXPECT_TRUE(summary.clean(2));
}

TEST_F(EmulatorTest, MaxItemsSealsBatches) {
  Options options = fake_options(1);
  options.logs_per_invoke = 2500;
  options.env["FAKE_EXT_BUFFERING"] = R"({"maxItems":1000,"maxBytes":1048576,"timeoutMs":1000})";
  options.env["FAKE_EXT_DRAIN_MS"] = "1500";
  const Summary summary = Emulator(options).run();
  EXPECT_TRUE(summary.clean(1));
  EXPECT_EQ(summary.buffering.max_items, 1000u);
  EXPECT_THAT(summary.batch_events, Each(Le(1000u)));
  EXPECT_GE(std::count(summary.batch_events.begin(), summary.batch_events.end(), 1000u), 2);
  EXPECT_EQ(received_events(), summary.subscriber_events);
}

TEST_F(EmulatorTest, MaxBytesSealsBatches) {
  Options options = fake_options(1);
  options.logs_per_invoke = 5000;
  options.env["FAKE_EXT_BUFFERING"] = R"({"maxItems":10000,"maxBytes":262144,"timeoutMs":1000})";
  options.env["FAKE_EXT_DRAIN_MS"] = "1500";
  // The drain is not what this test is about: a deadline far beyond it, so a slow (sanitized)
  // fake extension still exits in time.
  options.shutdown_ms = 10000;
  const Summary summary = Emulator(options).run();
  EXPECT_TRUE(summary.clean(1));
  const auto all = bodies();
  ASSERT_GE(all.size(), 3u);
  for (size_t i = 0; i + 1 < all.size(); ++i) {
    const auto events = split_event_array(all[i]).value();
    size_t bytes = 0;
    for (const auto& event : events) bytes += event.size();
    // Sealed by size: at or over maxBytes, but only because of its last event.
    EXPECT_GE(bytes, 262144u) << "body " << i;
    EXPECT_LT(bytes - events.back().size(), 262144u) << "body " << i;
  }
  EXPECT_EQ(received_events(), summary.subscriber_events);
}

TEST_F(EmulatorTest, FailedPostsAreRetried) {
  Options options = fake_options(2);
  options.env["FAKE_EXT_FAIL_POSTS"] = "2";
  const Summary summary = Emulator(options).run();
  EXPECT_TRUE(summary.clean(2));
  EXPECT_EQ(summary.post_retries, 2u);
  EXPECT_EQ(summary.posts_failed, 2u);
  EXPECT_EQ(summary.batches_dropped, 0u);
  EXPECT_EQ(summary.events_delivered, summary.events_for_subscriber);
}

TEST_F(EmulatorTest, PostsFailingEveryRetryAreDroppedWithLogsDropped) {
  Options options = fake_options(2);
  options.post_retries = 1;
  options.env["FAKE_EXT_FAIL_POSTS"] = "100000";
  const Summary summary = Emulator(options).run();
  EXPECT_TRUE(summary.clean(2));
  EXPECT_GT(summary.batches_dropped, 0u);
  EXPECT_EQ(summary.events_delivered, 0u);
  EXPECT_GT(summary.generated_by_type.at("platform.logsDropped"), 0u);
}

TEST(ReceiverTest, AnswersFromScriptAndSplitsEvents) {
  Receiver receiver;
  receiver.start();
  receiver.push_statuses({500});
  Poco::Net::HTTPClientSession session("127.0.0.1", receiver.port());
  const std::string body = R"([{"a":1}, {"b":"x\"y","n":123456789012345678901234}])";
  EXPECT_EQ(post(session, body), 500);
  EXPECT_EQ(post(session, body), 200);
  EXPECT_EQ(post(session, "not json"), 200);
  ASSERT_TRUE(receiver.wait_for_requests(3, std::chrono::seconds(10)));
  EXPECT_EQ(
      receiver.event_texts(),
      (std::vector<std::string>{R"({"a":1})", R"({"b":"x\"y","n":123456789012345678901234})"}));
  EXPECT_EQ(receiver.event_count(false), 4u);
  EXPECT_EQ(receiver.unparsed_bodies(), 1u);
  EXPECT_EQ(receiver.requests()[0].status, 500);
  EXPECT_EQ(receiver.requests()[1].body, body);
}

TEST(ReceiverTest, StartsLaterOnAChosenPort) {
  const uint16_t port = Receiver::free_port();
  Receiver receiver(Receiver::Options{port, "", "", 200});
  {
    Poco::Net::HTTPClientSession session("127.0.0.1", port);
    EXPECT_THROW(post(session, "[]"), Poco::Net::ConnectionRefusedException);
  }
  receiver.start();
  EXPECT_EQ(receiver.port(), port);
  Poco::Net::HTTPClientSession session("127.0.0.1", port);
  EXPECT_EQ(post(session, "[]"), 200);
  receiver.stop();
  receiver.start();  // back on the same port
  Poco::Net::HTTPClientSession again("127.0.0.1", port);
  EXPECT_EQ(post(again, "[{}]"), 200);
}

TEST(ReceiverTest, ClosesIdleKeepAliveConnections) {
  Receiver::Options options;
  options.keep_alive_timeout_ms = 50;
  Receiver receiver(options);
  receiver.start();
  Poco::Net::HTTPClientSession session("127.0.0.1", receiver.port());
  session.setKeepAlive(true);
  EXPECT_EQ(post(session, "[]"), 200);
  Poco::Net::StreamSocket& socket = session.socket();
  // The server closes its end: end of stream well before POCO's default 10 s idle timeout.
  socket.setReceiveTimeout(Poco::Timespan(5, 0));
  char byte = 0;
  EXPECT_EQ(socket.receiveBytes(&byte, 1), 0);
  Poco::Net::HTTPClientSession fresh("127.0.0.1", receiver.port());
  EXPECT_EQ(post(fresh, "[]"), 200);
  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_NE(requests[0].client, requests[1].client);
  EXPECT_THAT(requests[0].client, HasSubstr("127.0.0.1:"));
}

TEST(ReceiverTest, ServesHttpsWithTestCertificates) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("receiver_tls." + std::to_string(::getpid()));
  const TestCerts certs = make_test_certs(dir.string());
  Receiver receiver(Receiver::Options{0, certs.server_cert, certs.server_key, 200});
  receiver.start();
  EXPECT_EQ(receiver.url().rfind("https://127.0.0.1:", 0), 0u);
  Poco::Net::Context::Ptr context(new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", "",
                                                         certs.ca_cert,
                                                         Poco::Net::Context::VERIFY_STRICT));
  Poco::Net::HTTPSClientSession session("127.0.0.1", receiver.port(), context);
  EXPECT_EQ(post(session, R"([{"type":"function"}])"), 200);
  EXPECT_EQ(receiver.event_count(), 1u);
  receiver.stop();
  std::filesystem::remove_all(dir);
}

TEST(DeliveryCheckTest, CountsMissingDuplicatesAndUnexpected) {
  const DeliveryCheck check = check_delivery({"a", "b", "c", "c"}, {"a", "a", "c", "x"});
  EXPECT_EQ(check.missing, 2u);  // b and one c
  EXPECT_EQ(check.duplicates, 1u);
  EXPECT_EQ(check.unexpected, 1u);
  EXPECT_FALSE(check.exact());
  EXPECT_TRUE(check_delivery({"a", "b"}, {"b", "a"}).exact());
}

// Whitespace outside strings removed: what a compact writer would have produced.
std::string without_layout(std::string_view json) {
  std::string out;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < json.size()) {
        out += json[++i];
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
      out += c;
    } else if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
      out += c;
    }
  }
  return out;
}

// Every kind of event, as the pretty style writes it: spaced and multi-line, keys reversed (so
// "record" comes first and a record's requestId after its nested objects), and otherwise the
// same bytes: reversing again and dropping the layout gives back the compact event exactly.
TEST(EventStyle, PrettyReorderedEventsAreTheCompactOnesRespacedAndReordered) {
  const FunctionInfo function;
  const EventFactory compact(function);
  const EventFactory pretty(function, false, EventStyle::kPrettyReordered);
  const auto started = std::chrono::system_clock::now();
  std::vector<std::pair<Event, Event>> pairs;
  auto both = [&](auto make) { pairs.emplace_back(make(compact), make(pretty)); };
  both([](const EventFactory& f) { return f.init_start(); });
  both([](const EventFactory& f) { return f.telemetry_subscription("ext", {"platform"}); });
  both([](const EventFactory& f) { return f.start("req-1", "Root=1-a", "tenant"); });
  for (int line = 0; line < 8; ++line) {
    both(
        [&](const EventFactory& f) { return f.function_log("req-1", 1, line, LogFormat::kMixed); });
  }
  both([](const EventFactory& f) { return f.extension_log("telemetry-relay Information x"); });
  both([&](const EventFactory& f) { return f.runtime_done("req-1", "success", started, 12.5); });
  both([](const EventFactory& f) { return f.report("req-1", "success", "", 12.5, 3.25); });
  both([](const EventFactory& f) { return f.logs_dropped(7, 700, "slow"); });
  for (const auto& [plain, styled] : pairs) {
    EXPECT_EQ(styled.type, plain.type);
    EXPECT_NE(styled.text.find("\n  \"record\" : "), std::string::npos) << styled.text;
    EXPECT_LT(styled.text.find("\"record\""), styled.text.find("\"type\"")) << styled.text;
    EXPECT_LT(styled.text.find("\"type\""), styled.text.find("\"time\"")) << styled.text;
    // The factories ran at different instants, so compare the styling of the compact event
    // itself, and the pretty factory's event by size (timestamps have one length).
    const std::string restyled = pretty_reordered(plain.text);
    EXPECT_EQ(without_layout(pretty_reordered(restyled)), plain.text) << restyled;
    EXPECT_EQ(without_layout(pretty_reordered(styled.text)).size(), plain.text.size());
  }
  const std::string& report = pairs[pairs.size() - 2].second.text;
  EXPECT_GT(report.find("\"requestId\" : \"req-1\""), report.find("\"metrics\" : {")) << report;
  EXPECT_THROW(pretty_reordered(R"({"a":1)"), std::invalid_argument);
  EXPECT_THROW(pretty_reordered(R"({"a":1} x)"), std::invalid_argument);
  EXPECT_THROW(pretty_reordered(std::string(100, '[') + std::string(100, ']')),
               std::invalid_argument);
  EXPECT_EQ(parse_event_style("pretty"), EventStyle::kPrettyReordered);
  EXPECT_THROW(parse_event_style("fancy"), std::invalid_argument);
}

}  // namespace
}  // namespace relay::emu
