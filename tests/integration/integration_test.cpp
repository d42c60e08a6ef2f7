// The real telemetry-relay binary and its plugins through whole Lambda lifecycles, driven by
// the emulator (tests/emulator) and observed at local receivers, in the extension's stderr and
// in its final `summary {json}` line. Nothing waits on a sleep: outcomes are checked once the
// extension has exited, and orderings come from the emulator (settling, between_invocations).

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Pipe.h>
#include <Poco/PipeStream.h>
#include <Poco/Process.h>
#include <Poco/StreamCopier.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "emulator.h"
#include "extension_run_fixture.h"
#include "receiver.h"
#include "reserved_port.h"
#include "test_certs.h"
#include "test_files.h"

namespace relay::emu {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::Each;
using ::testing::HasSubstr;
using ::testing::Not;

size_t count_lines_with(const std::vector<std::string>& lines, const std::string& needle) {
  return static_cast<size_t>(std::count_if(lines.begin(), lines.end(), [&](const auto& line) {
    return line.find(needle) != std::string::npos;
  }));
}

bool is_type(const std::string& event, const std::string& type) {
  return event.find(R"("type":")" + type + "\"") != std::string::npos;
}

// Index of the n-th (0-based) event of `type`, or npos.
size_t index_of_type(const std::vector<std::string>& events, const std::string& type, int n = 0) {
  for (size_t i = 0; i < events.size(); ++i) {
    if (is_type(events[i], type) && n-- == 0) return i;
  }
  return std::string::npos;
}

// Designated initializers would still trip -Wmissing-field-initializers.
Receiver::Options receiver_on(uint16_t port) {
  Receiver::Options options;
  options.port = port;
  return options;
}

Receiver::Options https_receiver(const TestCerts& certs) {
  Receiver::Options options;
  options.cert_path = certs.server_cert;
  options.key_path = certs.server_key;
  return options;
}

std::vector<std::string> events_of(const ReceivedRequest& request) {
  return split_event_array(request.body).value_or(std::vector<std::string>{});
}

struct ProcessResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr, interleaved
};

ProcessResult run_relay(const std::vector<std::string>& args, const Poco::Process::Env& env) {
  Poco::Pipe output;
  Poco::ProcessHandle handle = Poco::Process::launch(
      RELAY_BINARY, args, fs::temp_directory_path().string(), nullptr, &output, &output, env);
  Poco::PipeInputStream stream(output);
  ProcessResult result;
  Poco::StreamCopier::copyToString(stream, result.output);
  result.exit_code = handle.wait();
  return result;
}

class IntegrationTest : public ExtensionRunFixture {
 protected:
  IntegrationTest() : ExtensionRunFixture("relay_integration") {}

  // Settled by default, so what the extension holds at each INVOKE does not depend on when the
  // emulator's buffer happened to flush. The unsettled shutdown drain has its own tests
  // (ShutdownDispatchesEverythingLeft, FinalBatchArrivingAfterShutdownIsNeverLost).
  Options relay_options(int invocations = 3) const {
    Options options = extension_options(invocations);
    options.log_bursts = 2;
    options.env["RELAY_PLUGIN_DIR"] = fs::path(RELAY_HTTP_PLUGIN).parent_path().string();
    return options;
  }

  static uint64_t sink_counter(const Poco::JSON::Object::Ptr& summary, const std::string& sink,
                               const std::string& counter) {
    return summary->getObject("sinks")->getObject(sink)->getValue<uint64_t>(counter);
  }
};

// Every event generated for the subscriber reaches the collector once, with identical bytes,
// whatever the log format; every request is a JSON array sent as application/json.
TEST_F(IntegrationTest, TelemetryIsDeliveredByteForByte) {
  for (const LogFormat format : {LogFormat::kText, LogFormat::kJson, LogFormat::kMixed}) {
    SCOPED_TRACE(static_cast<int>(format));
    Receiver receiver;
    receiver.start();
    Options options = relay_options(3);
    options.logs_per_invoke = 25;
    options.log_format = format;
    options.env["DISPATCH_POST_URI"] = receiver.url() + "/telemetry";
    const Summary summary = Emulator(options).run();

    ASSERT_TRUE(summary.clean(3));
    ASSERT_GT(summary.generated_by_type.at("function"), 0u);
    const DeliveryCheck check = check_delivery(summary.subscriber_events, receiver.event_texts());
    EXPECT_TRUE(check.exact()) << "missing " << check.missing << " duplicates " << check.duplicates
                               << " unexpected " << check.unexpected;
    EXPECT_EQ(receiver.unparsed_bodies(), 0u);
    const auto requests = receiver.requests();
    ASSERT_FALSE(requests.empty());
    for (const auto& request : requests) {
      EXPECT_EQ(request.method, "POST");
      EXPECT_EQ(request.uri, "/telemetry");
      EXPECT_EQ(request.header("Content-Type"), "application/json");
      EXPECT_TRUE(split_event_array(request.body).has_value()) << request.body;
      EXPECT_EQ(request.body.front(), '[');
    }
    end_run();
  }
}

// The seed's rule: at an INVOKE, dispatch only when MORE events than DISPATCH_MIN_BATCH_SIZE
// are held. Settling makes "held at INVOKE 1" exactly the events before it (init events and
// platform.start): N of them.
TEST_F(IntegrationTest, MinBatchSizeDispatchesOnlyAboveTheMinimum) {
  struct Run {
    Summary summary;
    std::vector<ReceivedRequest> requests;
    size_t requests_after_first_invocation = 0;
  };
  auto run = [&](int64_t min_batch_size) {
    Receiver receiver;
    receiver.start();
    Options options = relay_options(3);
    options.settle_telemetry_before_events = true;
    options.env["RELAY_TELEMETRY_TYPES"] = "platform";
    options.env["DISPATCH_MIN_BATCH_SIZE"] = std::to_string(min_batch_size);
    options.env["DISPATCH_POST_URI"] = receiver.url();
    Run result;
    options.between_invocations = [&](int next) {
      if (next == 1) result.requests_after_first_invocation = receiver.request_count();
    };
    result.summary = Emulator(options).run();
    result.requests = receiver.requests();
    end_run();
    return result;
  };
  // Held at INVOKE n: every subscriber event up to and including the n-th platform.start.
  auto held_at_invoke = [](const Summary& summary, int n) {
    return index_of_type(summary.subscriber_events, "platform.start", n - 1) + 1;
  };

  const Run calibration = run(0);
  ASSERT_TRUE(calibration.summary.clean(3));
  const size_t n = held_at_invoke(calibration.summary, 1);
  ASSERT_GE(n, 2u);
  ASSERT_FALSE(calibration.requests.empty());
  EXPECT_EQ(events_of(calibration.requests[0]).size(), n);

  const Run below = run(static_cast<int64_t>(n) - 1);
  ASSERT_TRUE(below.summary.clean(3));
  ASSERT_EQ(held_at_invoke(below.summary, 1), n);
  ASSERT_FALSE(below.requests.empty());
  const std::vector<std::string> init_events(below.summary.subscriber_events.begin(),
                                             below.summary.subscriber_events.begin() + n);
  EXPECT_EQ(events_of(below.requests[0]), init_events) << "N > N-1: dispatched at INVOKE 1";

  const Run equal = run(static_cast<int64_t>(n));
  ASSERT_TRUE(equal.summary.clean(3));
  ASSERT_EQ(held_at_invoke(equal.summary, 1), n);
  EXPECT_EQ(equal.requests_after_first_invocation, 0u) << "N is not > N: nothing at INVOKE 1";
  ASSERT_FALSE(equal.requests.empty());
  const size_t at_second = held_at_invoke(equal.summary, 2);
  ASSERT_GT(at_second, n);
  const std::vector<std::string> up_to_second(equal.summary.subscriber_events.begin(),
                                              equal.summary.subscriber_events.begin() + at_second);
  EXPECT_EQ(events_of(equal.requests[0]), up_to_second) << "dispatched at INVOKE 2";

  for (const Run* r : {&calibration, &below, &equal}) {
    std::vector<std::string> received;
    for (const auto& request : r->requests) {
      const auto events = events_of(request);
      received.insert(received.end(), events.begin(), events.end());
    }
    EXPECT_TRUE(check_delivery(r->summary.subscriber_events, received).exact());
  }
}

// With a minimum no invocation reaches, everything waits for SHUTDOWN, including the last
// platform.report, which Lambda only produces after SHUTDOWN was released.
TEST_F(IntegrationTest, ShutdownDispatchesEverythingLeft) {
  Receiver receiver;
  receiver.start();
  Options options = relay_options(3);
  options.settle_telemetry_before_events = false;  // the last platform.report comes after SHUTDOWN
  options.env["DISPATCH_MIN_BATCH_SIZE"] = "1000000";
  options.env["DISPATCH_POST_URI"] = receiver.url();
  std::vector<size_t> requests_between;
  options.between_invocations = [&](int) { requests_between.push_back(receiver.request_count()); };
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(3));
  EXPECT_THAT(requests_between, AllOf(::testing::SizeIs(3), Each(0u)));
  EXPECT_TRUE(check_delivery(summary.subscriber_events, receiver.event_texts()).exact());
  const size_t last_report = index_of_type(summary.subscriber_events, "platform.report", 2);
  ASSERT_NE(last_report, std::string::npos);
  EXPECT_THAT(receiver.event_texts(), Contains(summary.subscriber_events[last_report]));
  const auto relay = relay_summary();
  ASSERT_TRUE(relay);
  EXPECT_EQ(sink_counter(relay, "http", "delivered"), summary.events_for_subscriber);
  EXPECT_EQ(sink_counter(relay, "http", "dropped_at_shutdown"), 0u);
}

// At debug the counters follow every invocation; at info only the final line is written.
TEST_F(IntegrationTest, SummaryFollowsEachInvocationAtDebugOnly) {
  Receiver receiver;
  receiver.start();
  for (const char* level : {"debug", "info"}) {
    Options options = relay_options(3);
    options.env["DISPATCH_POST_URI"] = receiver.url();
    options.env["RELAY_LOG_LEVEL"] = level;
    const Summary summary = Emulator(options).run();
    ASSERT_TRUE(summary.clean(3)) << level;
    EXPECT_EQ(summary_lines().size(), std::string(level) == "debug" ? 4u : 1u) << level;
    const auto relay = relay_summary();
    ASSERT_TRUE(relay) << level;
    EXPECT_EQ(sink_counter(relay, "http", "delivered"), summary.events_for_subscriber) << level;
    end_run();
  }
}

// The batch carrying the last platform.report reaches the extension after SHUTDOWN (in a short
// run it is the only batch). Seeing that report ends the drain, so the batch must already be in
// the outlets by then. Pipeline::consume once announced the report before enqueueing the batch,
// losing it in about one run in eight; each run here is another chance to catch that race.
TEST_F(IntegrationTest, FinalBatchArrivingAfterShutdownIsNeverLost) {
  constexpr int kRuns = 20;
  int lost_runs = 0;
  for (int run = 0; run < kRuns; ++run) {
    Receiver receiver;
    receiver.start();
    Options options = relay_options(1);
    options.settle_telemetry_before_events = false;
    options.env["DISPATCH_POST_URI"] = receiver.url();
    const Summary summary = Emulator(options).run();
    ASSERT_TRUE(summary.clean(1)) << "run " << run;
    const auto relay = relay_summary();
    ASSERT_TRUE(relay) << "run " << run;
    const auto received = relay->getValue<uint64_t>("received_events");
    const DeliveryCheck check = check_delivery(summary.subscriber_events, receiver.event_texts());
    if (!check.exact()) {
      ++lost_runs;
      ADD_FAILURE() << "run " << run << ": " << check.missing << " of " << check.expected
                    << " events never reached the collector; extension received " << received
                    << ", sink http received " << sink_counter(relay, "http", "received")
                    << ", delivered " << sink_counter(relay, "http", "delivered")
                    << ", dropped_at_shutdown "
                    << sink_counter(relay, "http", "dropped_at_shutdown") << ", still queued "
                    << sink_counter(relay, "http", "queued");
    }
    // Whatever happens, the sink's counters must account for every event the pipeline took.
    EXPECT_EQ(sink_counter(relay, "http", "received"), received) << "run " << run;
    end_run();
  }
  EXPECT_EQ(lost_runs, 0) << "of " << kRuns << " runs";
}

TEST_F(IntegrationTest, WithoutPostUriTelemetryIsDiscarded) {
  Receiver receiver;  // started but never named: nothing may reach it
  receiver.start();
  Options options = relay_options(3);
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(3));
  EXPECT_GT(summary.events_delivered, 0u) << "the listener still took the telemetry";
  EXPECT_EQ(receiver.request_count(), 0u);
  const auto log = relay_log();
  EXPECT_EQ(count_lines_with(log, "telemetry is discarded"), 1u);
  EXPECT_THAT(log, Contains(HasSubstr("DISPATCH_POST_URI is not set")));
  const auto relay = relay_summary();
  ASSERT_TRUE(relay);
  EXPECT_EQ(relay->getValue<uint64_t>("received_events"), summary.events_for_subscriber);
}

TEST_F(IntegrationTest, ServerErrorsAreRetriedWithoutLossOrDuplicates) {
  Receiver receiver;
  receiver.start();
  receiver.push_statuses({500, 503, 500});
  Options options = relay_options(3);
  options.env["DISPATCH_POST_URI"] = receiver.url();
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(3));
  const DeliveryCheck check = check_delivery(summary.subscriber_events, receiver.event_texts());
  EXPECT_TRUE(check.exact()) << "missing " << check.missing << " duplicates " << check.duplicates;
  const auto requests = receiver.requests();
  EXPECT_EQ(std::count_if(requests.begin(), requests.end(),
                          [](const auto& r) { return r.status >= 500; }),
            3);
  const auto relay = relay_summary();
  ASSERT_TRUE(relay);
  EXPECT_GE(sink_counter(relay, "http", "calls_retry"), 3u);
  EXPECT_EQ(sink_counter(relay, "http", "delivered"), summary.events_for_subscriber);
  EXPECT_EQ(sink_counter(relay, "http", "dropped_by_sink"), 0u);
}

TEST_F(IntegrationTest, ClientErrorsDropAndCountTheBatch) {
  Receiver receiver;
  receiver.start();
  receiver.set_default_status(400);
  Options options = relay_options(3);
  options.env["DISPATCH_POST_URI"] = receiver.url();
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(3));
  EXPECT_EQ(receiver.event_count(), 0u);
  const size_t sent = receiver.event_count(/*accepted_only=*/false);
  EXPECT_EQ(sent, summary.events_for_subscriber) << "each event sent once, never retried";
  const auto relay = relay_summary();
  ASSERT_TRUE(relay);
  EXPECT_EQ(sink_counter(relay, "http", "dropped_by_sink"), sent);
  EXPECT_EQ(sink_counter(relay, "http", "delivered"), 0u);
  EXPECT_EQ(sink_counter(relay, "http", "calls_retry"), 0u);
  EXPECT_THAT(relay_log(), Contains(AllOf(HasSubstr("dropped"), HasSubstr("HTTP 400"))));
}

TEST_F(IntegrationTest, CollectorDownAtFirstGetsEverythingOnceItIsUp) {
  ReservedPort reserved;
  Receiver receiver(receiver_on(reserved.port()));
  Options options = relay_options(4);
  // Settled, INVOKE 1 finds the init events held and tries them against the refused port.
  options.settle_telemetry_before_events = true;
  options.env["DISPATCH_POST_URI"] = receiver.url();
  options.between_invocations = [&](int next) {
    if (next != 2) return;
    reserved.release();
    receiver.start();
  };
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(4));
  EXPECT_EQ(receiver.port(), reserved.port());
  const DeliveryCheck check = check_delivery(summary.subscriber_events, receiver.event_texts());
  EXPECT_TRUE(check.exact()) << "missing " << check.missing << " duplicates " << check.duplicates;
  const auto relay = relay_summary();
  ASSERT_TRUE(relay);
  EXPECT_GT(sink_counter(relay, "http", "calls_retry"), 0u) << "the first attempts were refused";
}

TEST_F(IntegrationTest, MalformedTelemetryIsRefusedOrItsInvalidEventsDropped) {
  Receiver receiver;
  receiver.start();
  Options options = relay_options(3);
  options.env["DISPATCH_POST_URI"] = receiver.url();
  options.raw_posts = {
      RawPost{1, R"({"not":"an array"})"},
      RawPost{1, R"([{"time":"2024-05-14T09:12:05.320Z","type":"function","record":"a"},{"ti)"},
      RawPost{2, "[1,2,3]"},
      // Good events around a record that is not JSON: the good ones go on, in valid JSON.
      RawPost{2, R"([{"time":"t","type":"function","record":"good one"},)"
                 R"({"time":"t","type":"function","record":{"a":[1,}},)"
                 R"({"time":"t","type":"function","record":"good two"}])"},
  };
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(3));
  // What cannot be parsed as an array is refused; an array's invalid elements are dropped and
  // counted, and the batch answered 200 (Lambda would only send a refused batch again).
  EXPECT_EQ(summary.raw_post_statuses, (std::vector<int>{400, 400, 200, 200}));
  std::vector<std::string> expected = summary.subscriber_events;
  expected.push_back(R"({"time":"t","type":"function","record":"good one"})");
  expected.push_back(R"({"time":"t","type":"function","record":"good two"})");
  EXPECT_TRUE(check_delivery(expected, receiver.event_texts()).exact());
  EXPECT_EQ(receiver.unparsed_bodies(), 0u) << "a delivery that is not valid JSON";
  EXPECT_GE(count_lines_with(relay_log(), "malformed"), 2u);
  EXPECT_EQ(count_lines_with(relay_log(), "dropped 3 invalid events"), 1u);
  EXPECT_EQ(count_lines_with(relay_log(), "dropped 1 invalid events"), 1u);
  const auto relay = relay_summary();
  ASSERT_TRUE(relay);
  EXPECT_EQ(relay->getObject("listener")->getValue<uint64_t>("invalid_events"), 4u);
}

// A sink that cannot load is reported with its file and stage; the others work regardless.
TEST_F(IntegrationTest, BrokenSinkBesideAWorkingOne) {
  Receiver receiver;
  receiver.start();
  Options options = relay_options(3);
  const std::string plugins = plugin_dir({RELAY_HTTP_PLUGIN, RELAY_ABIMAJOR2_PLUGIN});
  options.env["RELAY_PLUGIN_DIR"] = plugins;
  options.env["RELAY_SINKS"] = "http,abimajor2,missing";
  options.env["DISPATCH_POST_URI"] = receiver.url();
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(3));
  EXPECT_TRUE(check_delivery(summary.subscriber_events, receiver.event_texts()).exact());
  const auto log = relay_log();
  EXPECT_THAT(log, Contains(AllOf(HasSubstr("Error"), HasSubstr("sink abimajor2 is disabled"),
                                  HasSubstr("ABI mismatch"),
                                  HasSubstr(plugins + "/librelay-sink-abimajor2.so"))));
  EXPECT_THAT(log, Contains(AllOf(HasSubstr("Error"), HasSubstr("sink missing is disabled"),
                                  HasSubstr("not found"),
                                  HasSubstr(plugins + "/librelay-sink-missing.so"))));
  const auto relay = relay_summary();
  ASSERT_TRUE(relay);
  EXPECT_EQ(relay->getObject("sinks")->getNames(), std::vector<std::string>{"http"});
}

TEST_F(IntegrationTest, TelemetryApiNotSupportedStillServesTheLifecycle) {
  Receiver receiver;
  receiver.start();
  Options options = relay_options(3);
  options.telemetry_supported = false;
  options.env["DISPATCH_POST_URI"] = receiver.url();
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(3));
  EXPECT_EQ(summary.subscribe_status, 202);
  EXPECT_EQ(receiver.request_count(), 0u);
  EXPECT_THAT(relay_log(),
              Contains(AllOf(HasSubstr("Warning"), HasSubstr("not supported"), HasSubstr("202"))));
}

// Lambda freezes the process between invocations; the collector closes the idle pooled
// connection meanwhile, so each thawed delivery starts on a dead socket.
TEST_F(IntegrationTest, FreezeThawWithDeadPooledConnectionLosesNothing) {
  Receiver::Options closing;
  closing.keep_alive_timeout_ms = 50;
  Receiver receiver(closing);
  receiver.start();
  Options options = relay_options(4);
  options.freeze = true;
  options.gap_ms = 300;
  options.env["DISPATCH_POST_URI"] = receiver.url();
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(4));
  EXPECT_EQ(summary.freezes, 4) << "the extension was seen stopped after every invocation";
  const DeliveryCheck check = check_delivery(summary.subscriber_events, receiver.event_texts());
  EXPECT_TRUE(check.exact()) << "missing " << check.missing << " duplicates " << check.duplicates;
  std::set<std::string> connections;
  for (const auto& request : receiver.requests()) connections.insert(request.client);
  EXPECT_GT(connections.size(), 1u) << "the dead connection was replaced";
  const auto relay = relay_summary();
  ASSERT_TRUE(relay);
  EXPECT_EQ(sink_counter(relay, "http", "calls_retry"), 0u) << "replaced transparently";
}

TEST_F(IntegrationTest, HttpsWithTrustedCaDeliversEverything) {
  const TestCerts certs = make_test_certs(dir_ + "/certs");
  Receiver receiver(https_receiver(certs));
  receiver.start();
  Options options = relay_options(3);
  options.env["DISPATCH_POST_URI"] = receiver.url();
  options.env["RELAY_HTTP_CA_FILE"] = certs.ca_cert;
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(3));
  EXPECT_EQ(receiver.url().rfind("https://", 0), 0u);
  EXPECT_TRUE(check_delivery(summary.subscriber_events, receiver.event_texts()).exact());
}

TEST_F(IntegrationTest, HttpsWithUntrustedCertificateDeliversNothingAndSaysWhy) {
  const TestCerts certs = make_test_certs(dir_ + "/certs");
  Receiver receiver(https_receiver(certs));
  receiver.start();
  Options options = relay_options(2);
  options.env["DISPATCH_POST_URI"] = receiver.url();
  // Leaves a wide margin before the SIGKILL while the sink keeps failing its handshakes.
  options.env["RELAY_SHUTDOWN_MARGIN_MS"] = "600";
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(2));
  EXPECT_EQ(receiver.request_count(), 0u);
  const auto relay = relay_summary();
  ASSERT_TRUE(relay);
  EXPECT_EQ(sink_counter(relay, "http", "delivered"), 0u);
  EXPECT_EQ(sink_counter(relay, "http", "received"), summary.events_for_subscriber);
  // Not lost: spooled for a later process (the spool is on by default).
  EXPECT_EQ(sink_counter(relay, "http", "still_spooled"), summary.events_for_subscriber);
  EXPECT_THAT(relay_log(), Contains(AllOf(HasSubstr("TLS"), HasSubstr("certificate verify"))));
}

TEST_F(IntegrationTest, RefusedRegistrationExitsNonZeroPromptly) {
  for (const int status : {403, 500}) {
    SCOPED_TRACE(status);
    Options options = relay_options(1);
    options.register_status = status;
    const Summary summary = Emulator(options).run();

    EXPECT_FALSE(summary.init_ok);
    // "Extension.Crash" means it exited by itself; a hang would read "timeout" (10 s later).
    EXPECT_EQ(summary.init_error, "Extension.Crash");
    EXPECT_FALSE(summary.killed);
    EXPECT_EQ(summary.exit_signal, 0);
    EXPECT_NE(summary.exit_code, 0);
    EXPECT_THAT(relay_log(),
                Contains(AllOf(HasSubstr("refused"), HasSubstr("status " + std::to_string(status)),
                               HasSubstr("Emulator.InjectedFault"))));
    end_run();
  }
}

TEST_F(IntegrationTest, RegistersUnderItsOwnFileName) {
  const std::string renamed = dir_ + "/my-relay";
  fs::create_symlink(RELAY_BINARY, renamed);
  Receiver receiver;
  receiver.start();
  Options options = relay_options(2);
  options.extension_path = renamed;
  options.env["DISPATCH_POST_URI"] = receiver.url();
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(2));
  EXPECT_EQ(summary.extension_name, "my-relay");
  EXPECT_THAT(relay_log(), Contains(HasSubstr("registered as my-relay")));
  EXPECT_TRUE(check_delivery(summary.subscriber_events, receiver.event_texts()).exact());
}

TEST_F(IntegrationTest, CheckAndVersionCommandLines) {
  Poco::Process::Env env{
      {"RELAY_PLUGIN_DIR", plugin_dir({RELAY_HTTP_PLUGIN, RELAY_ABIMAJOR2_PLUGIN})},
      {"DISPATCH_POST_URI", "http://127.0.0.1:9/collector"},
      {"RELAY_HTTP_HEADER_AUTHORIZATION", "Bearer s3cr3t"}};

  const ProcessResult good = run_relay({"--check"}, env);
  EXPECT_EQ(good.exit_code, 0) << good.output;
  EXPECT_THAT(good.output, HasSubstr("DISPATCH_POST_URI=http://127.0.0.1:9/collector    "
                                     "[environment]"));
  EXPECT_THAT(good.output, HasSubstr("RELAY_SINKS=http    [default]"));
  EXPECT_THAT(good.output, HasSubstr("RELAY_HTTP_HEADER_AUTHORIZATION=<redacted>    "
                                     "[environment]"));
  EXPECT_THAT(good.output, HasSubstr("Plugins ("));
  EXPECT_THAT(good.output, HasSubstr("  http  OK  version "));
  EXPECT_THAT(good.output, Not(HasSubstr("s3cr3t")));

  env["RELAY_SINKS"] = "http,abimajor2";
  const ProcessResult bad = run_relay({"--check"}, env);
  EXPECT_NE(bad.exit_code, 0) << bad.output;
  EXPECT_THAT(bad.output, HasSubstr("  http  OK  "));
  EXPECT_THAT(bad.output, AllOf(HasSubstr("abimajor2  FAILED"), HasSubstr("ABI mismatch"),
                                HasSubstr("librelay-sink-abimajor2.so")));
  EXPECT_THAT(bad.output, HasSubstr("PROBLEMS FOUND"));
  EXPECT_THAT(bad.output, Not(HasSubstr("s3cr3t")));

  const ProcessResult version = run_relay({"--version"}, {});
  EXPECT_EQ(version.exit_code, 0);
#if defined(__x86_64__)
  const std::string arch = "x86_64";
#else
  const std::string arch = "arm64";
#endif
  EXPECT_THAT(version.output, AllOf(HasSubstr("telemetry-relay " RELAY_EXPECTED_VERSION),
                                    HasSubstr("commit " RELAY_EXPECTED_COMMIT), HasSubstr(arch)));
}

// Credentials in DISPATCH_POST_URI's user info become Basic authentication; like header values
// they are secrets, so neither the running extension nor --check may print them.
TEST_F(IntegrationTest, PostUriCredentialsAreUsedButNeverPrinted) {
  Receiver receiver;
  receiver.start();
  const std::string uri = "http://relay:s3cr3t@127.0.0.1:" + std::to_string(receiver.port()) + "/c";
  Options options = relay_options(2);
  options.env["DISPATCH_POST_URI"] = uri;
  options.env["RELAY_LOG_LEVEL"] = "debug";
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(2));
  const auto requests = receiver.requests();
  ASSERT_FALSE(requests.empty());
  EXPECT_EQ(requests.front().header("Authorization"), "Basic cmVsYXk6czNjcjN0");  // relay:s3cr3t
  EXPECT_TRUE(check_delivery(summary.subscriber_events, receiver.event_texts()).exact());
  EXPECT_THAT(read_file(stderr_path()), Not(HasSubstr("s3cr3t")));

  const ProcessResult check = run_relay(
      {"--check"},
      {{"RELAY_PLUGIN_DIR", options.env["RELAY_PLUGIN_DIR"]}, {"DISPATCH_POST_URI", uri}});
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_THAT(check.output, HasSubstr("127.0.0.1:" + std::to_string(receiver.port())));
  EXPECT_THAT(check.output, Not(HasSubstr("s3cr3t")));
}

TEST_F(IntegrationTest, EverySinkGetsEveryEvent) {
  Receiver receiver;
  receiver.start();
  const std::string record = dir_ + "/record.jsonl";
  Options options = relay_options(3);
  options.env["RELAY_PLUGIN_DIR"] = plugin_dir({RELAY_HTTP_PLUGIN, RELAY_RECORD_PLUGIN});
  options.env["RELAY_SINKS"] = "http,record";
  options.env["RELAY_RECORD_PATH"] = record;
  options.env["DISPATCH_POST_URI"] = receiver.url();
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(3));
  EXPECT_TRUE(check_delivery(summary.subscriber_events, receiver.event_texts()).exact());
  std::vector<std::string> recorded;
  for (const auto& line : read_lines(record)) {
    const auto events = split_event_array(line);
    ASSERT_TRUE(events.has_value()) << line;
    recorded.insert(recorded.end(), events->begin(), events->end());
  }
  EXPECT_TRUE(check_delivery(summary.subscriber_events, recorded).exact());
  const auto relay = relay_summary();
  ASSERT_TRUE(relay);
  for (const char* sink : {"http", "record"}) {
    EXPECT_EQ(sink_counter(relay, sink, "delivered"), summary.events_for_subscriber) << sink;
  }
}

// The shutdown contract (sink_abi.h), seen by a plugin in the real process: create, then the
// deliveries, then at SHUTDOWN flush once and destroy once, in that order.
TEST_F(IntegrationTest, ShutdownFlushesThenDestroysEachSinkOnce) {
  Options options = relay_options(3);
  use_record_sink(options, RELAY_RECORD_PLUGIN);
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(3)) << summary.exit_code;
  const std::vector<std::string> lines = read_lines(calls_path());
  ASSERT_GE(lines.size(), 4u) << ::testing::PrintToString(lines);
  EXPECT_EQ(lines.front(), "create");
  EXPECT_EQ(lines[lines.size() - 2], "flush") << ::testing::PrintToString(lines);
  EXPECT_EQ(lines.back(), "destroy") << ::testing::PrintToString(lines);
  for (size_t i = 1; i + 2 < lines.size(); ++i) {
    EXPECT_EQ(lines[i].rfind("deliver ", 0), 0u) << "line " << i << ": " << lines[i];
  }
  EXPECT_EQ(count_lines_with(lines, "create"), 1u);
  EXPECT_EQ(count_lines_with(lines, "flush"), 1u);
  EXPECT_EQ(count_lines_with(lines, "destroy"), 1u);
  const auto relay = relay_summary();
  ASSERT_TRUE(relay);
  EXPECT_EQ(sink_counter(relay, "record", "delivered"), summary.events_for_subscriber);
  EXPECT_FALSE(relay->getObject("sinks")->getObject("record")->has("flush_failed"));
}

// A flush that fails is one error line with the sink's message and `flush_failed` in the summary;
// the sink is still destroyed.
TEST_F(IntegrationTest, AFailedFlushAtShutdownIsLoggedAndCounted) {
  Options options = relay_options(2);
  use_record_sink(options, RELAY_RECORD_PLUGIN);
  options.env["RELAY_RECORD_FLUSH_STATUS"] = "retry";
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(2)) << summary.exit_code;
  const std::vector<std::string> lines = read_lines(calls_path());
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back(), "destroy");
  EXPECT_EQ(count_lines_with(relay_log(),
                             "flush at shutdown answered RETRY: record: configured "
                             "flush status"),
            1u);
  const auto relay = relay_summary();
  ASSERT_TRUE(relay);
  EXPECT_TRUE(
      relay->getObject("sinks")->getObject("record")->optValue<bool>("flush_failed", false));
}

TEST_F(IntegrationTest, ExtraHeaderReachesTheCollectorAndNeverTheLog) {
  Receiver receiver;
  receiver.start();
  Options options = relay_options(2);
  options.env["DISPATCH_POST_URI"] = receiver.url();
  options.env["RELAY_HTTP_HEADER_AUTHORIZATION"] = "Bearer s3cr3t";
  options.env["RELAY_LOG_LEVEL"] = "debug";  // the most the extension ever says
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(2));
  const auto requests = receiver.requests();
  ASSERT_FALSE(requests.empty());
  for (const auto& request : requests) {
    EXPECT_EQ(request.header("Authorization"), "Bearer s3cr3t");
  }
  EXPECT_TRUE(check_delivery(summary.subscriber_events, receiver.event_texts()).exact());
  const std::string log = read_file(stderr_path());
  EXPECT_THAT(log, HasSubstr("[relay.lifecycle] summary"));
  EXPECT_THAT(log, Not(HasSubstr("s3cr3t")));
}

}  // namespace
}  // namespace relay::emu

namespace relay::emu {
namespace {

// Subscribed to `extension`, Lambda hands the extension its own stderr lines back as telemetry;
// re-shipping them would loop (each delivery logs, each log is delivered). They are dropped and
// counted; nothing else is.
TEST_F(IntegrationTest, OwnLogLinesNeverLoopBackAsTelemetry) {
  Receiver receiver;
  receiver.start();
  Options options = relay_options(3);
  options.env["DISPATCH_POST_URI"] = receiver.url();
  options.env["RELAY_TELEMETRY_TYPES"] = "platform,function,extension";
  options.env["RELAY_LOG_LEVEL"] = "debug";  // plenty of own lines while subscribed
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(3));
  ASSERT_GT(summary.delivered_by_type.count("extension"), 0u) << "own lines reached the listener";
  const Poco::JSON::Object::Ptr totals = relay_summary();
  ASSERT_TRUE(totals);
  const uint64_t own = totals->getValue<uint64_t>("own_log_lines_dropped");
  EXPECT_EQ(own, summary.delivered_by_type.at("extension"));
  for (const auto& event : receiver.event_texts()) {
    EXPECT_EQ(event.find("telemetry-relay "), std::string::npos) << event;
  }
  // Everything else still arrives.
  EXPECT_EQ(receiver.event_texts().size(), summary.events_delivered - own);
}

// RELAY_STRICT: a requested sink that cannot load fails the init through init/error instead of
// running with a gap.
TEST_F(IntegrationTest, StrictModeTurnsABrokenSinkIntoAnInitError) {
  Options options = relay_options(1);
  options.env["RELAY_STRICT"] = "true";
  options.env["RELAY_SINKS"] = "http,missing";
  options.env["DISPATCH_POST_URI"] = "http://127.0.0.1:9/";
  const Summary summary = Emulator(options).run();

  EXPECT_FALSE(summary.init_ok);
  ASSERT_EQ(summary.error_calls.size(), 1u);
  EXPECT_EQ(summary.error_calls[0].path, "init/error");
  EXPECT_EQ(summary.error_calls[0].error_type, "Extension.PluginLoadFailed");
  EXPECT_THAT(summary.error_calls[0].body, HasSubstr("librelay-sink-missing.so"));
  EXPECT_NE(summary.exit_code, 0);
}

// A subscription Lambda refuses is logged with Lambda's answer, and the extension keeps serving
// the lifecycle so the function stays healthy.
TEST_F(IntegrationTest, RefusedSubscriptionIsLoggedWithTheBodyAndTheLifecycleGoesOn) {
  Options options = relay_options(2);
  options.subscribe_status = 400;
  options.env["DISPATCH_POST_URI"] = "http://127.0.0.1:9/";
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(2));
  EXPECT_EQ(summary.subscribe_status, 400);
  EXPECT_THAT(relay_log(),
              Contains(AllOf(HasSubstr("Error"), HasSubstr("subscription refused"),
                             HasSubstr("status 400"), HasSubstr("injected by the emulator"))));
}

// The same refusal under RELAY_STRICT is an init error naming it.
TEST_F(IntegrationTest, StrictModeTurnsARefusedSubscriptionIntoAnInitError) {
  Options options = relay_options(1);
  options.subscribe_status = 400;
  options.env["RELAY_STRICT"] = "true";
  const Summary summary = Emulator(options).run();

  EXPECT_FALSE(summary.init_ok);
  ASSERT_EQ(summary.error_calls.size(), 1u);
  EXPECT_EQ(summary.error_calls[0].error_type, "Extension.SubscribeFailed");
  EXPECT_THAT(summary.error_calls[0].body, HasSubstr("status 400"));
}

// Events of the subscriber up to and including the n-th (0-based) platform.runtimeDone: all the
// telemetry of invocation n but its platform.report, which Lambda emits only after every
// extension called next.
std::vector<std::string> through_runtime_done(const Summary& summary, int n) {
  const size_t at = index_of_type(summary.subscriber_events, "platform.runtimeDone", n);
  if (at == std::string::npos) return {};
  return {summary.subscriber_events.begin(), summary.subscriber_events.begin() + at + 1};
}

// RELAY_FLUSH=end: with a healthy collector, the telemetry of invocation N is at the collector
// before invocation N+1 starts (checked while the extension is frozen between the two). The
// same run in next-invoke mode shows the check can fail: there it arrives one INVOKE later.
TEST_F(IntegrationTest, EndModeDeliversEachInvocationBeforeTheNextStarts) {
  constexpr int kInvocations = 4;
  struct Run {
    Summary summary;
    std::vector<std::vector<std::string>> at_collector;  // before invocation n+1, per n
    std::vector<std::string> received;
  };
  auto run = [&](const std::string& flush) {
    Receiver receiver;
    receiver.start();
    Options options = relay_options(kInvocations);
    options.settle_telemetry_before_events = false;
    options.env["DISPATCH_POST_URI"] = receiver.url();
    options.env["RELAY_FLUSH"] = flush;
    // Generous: on a loaded machine the wait for runtimeDone plus the POST may take a while;
    // the point here is the order, the budget has unit tests.
    options.env["RELAY_INVOKE_BUDGET_MS"] = "20000";
    Run result;
    options.between_invocations = [&](int) {
      result.at_collector.push_back(receiver.event_texts());
    };
    result.summary = Emulator(options).run();
    result.received = receiver.event_texts();
    end_run();
    return result;
  };

  const Run end = run("end");
  ASSERT_TRUE(end.summary.clean(kInvocations));
  ASSERT_EQ(end.at_collector.size(), static_cast<size_t>(kInvocations));
  EXPECT_EQ(end.summary.buffering.timeout_ms, 25u) << "end mode asks Lambda for short buffering";
  for (int n = 0; n < kInvocations; ++n) {
    SCOPED_TRACE(n);
    const auto expected = through_runtime_done(end.summary, n);
    ASSERT_FALSE(expected.empty());
    const std::set<std::string> delivered(end.at_collector[n].begin(), end.at_collector[n].end());
    for (const auto& event : expected) {
      EXPECT_TRUE(delivered.contains(event))
          << "not at the collector before invocation " << n + 1 << ": " << event;
    }
  }
  const DeliveryCheck check = check_delivery(end.summary.subscriber_events, end.received);
  EXPECT_TRUE(check.exact()) << "missing " << check.missing << " duplicates " << check.duplicates;

  const Run next_invoke = run("next-invoke");
  ASSERT_TRUE(next_invoke.summary.clean(kInvocations));
  const auto first = through_runtime_done(next_invoke.summary, 0);
  ASSERT_FALSE(first.empty());
  EXPECT_THAT(next_invoke.at_collector[0], Not(Contains(first.back())))
      << "next-invoke holds invocation 1's runtimeDone until INVOKE 2";
  EXPECT_EQ(next_invoke.summary.buffering.timeout_ms, 100u);
}

// Lambda Managed Instances end to end, detected from AWS_LAMBDA_INITIALIZATION_TYPE (set by the
// emulator): SHUTDOWN-only registration, schema 2025-01-29, concurrent invocations with tenant
// ids and no INVOKE, continuous delivery (RELAY_FLUSH=end is not possible there: one warning),
// everything delivered exactly once and a clean exit.
TEST_F(IntegrationTest, ManagedInstancesEndToEnd) {
  constexpr int kInvocations = 12;
  Receiver receiver;
  receiver.start();
  Options options = relay_options(kInvocations);
  options.managed_instances = true;
  options.concurrency = 4;
  options.tenant_id = "tenant-7";
  options.log_format = LogFormat::kJson;
  options.settle_telemetry_before_events = false;
  options.env["DISPATCH_POST_URI"] = receiver.url();
  options.env["RELAY_FLUSH"] = "end";
  bool delivered_before_shutdown = false;
  // Runs once, before SHUTDOWN: continuous flushing has delivered without any INVOKE.
  options.between_invocations = [&](int) {
    delivered_before_shutdown = receiver.wait_for_events(1, std::chrono::seconds(20));
  };
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(kInvocations));
  EXPECT_TRUE(summary.managed_instances);
  EXPECT_EQ(summary.registered_events, std::vector<std::string>{"SHUTDOWN"});
  EXPECT_EQ(summary.schema_version, "2025-01-29");
  EXPECT_EQ(summary.subscribe_schemas, std::vector<std::string>{"2025-01-29"});
  EXPECT_TRUE(delivered_before_shutdown);
  const DeliveryCheck check = check_delivery(summary.subscriber_events, receiver.event_texts());
  EXPECT_TRUE(check.exact()) << "missing " << check.missing << " duplicates " << check.duplicates
                             << " unexpected " << check.unexpected;
  EXPECT_EQ(count_lines_with(receiver.event_texts(), "\"tenantId\":\"tenant-7\""),
            count_lines_with(summary.subscriber_events, "\"tenantId\":\"tenant-7\""));
  const auto log = relay_log();
  EXPECT_EQ(count_lines_with(log, "not possible on Lambda Managed Instances"), 1u);
  EXPECT_THAT(log, Contains(AllOf(HasSubstr("Warn"), HasSubstr("RELAY_FLUSH=end"),
                                  HasSubstr("using continuous instead"))));
  EXPECT_THAT(log, Contains(HasSubstr("Lambda Managed Instances: SHUTDOWN only")));
  const auto relay = relay_summary();
  ASSERT_TRUE(relay);
  EXPECT_EQ(sink_counter(relay, "http", "delivered"), summary.events_for_subscriber);
}

// Forcing Managed Instances off where Lambda runs them: the INVOKE registration is refused, and
// the extension says so and exits instead of hanging the init.
TEST_F(IntegrationTest, ManagedInstancesForcedOffIsRefusedByLambda) {
  Options options = relay_options(1);
  options.managed_instances = true;
  options.env["RELAY_MANAGED_INSTANCES"] = "off";
  const Summary summary = Emulator(options).run();
  EXPECT_FALSE(summary.init_ok);
  EXPECT_NE(summary.exit_code, 0);
  EXPECT_THAT(relay_log(), Contains(AllOf(HasSubstr("refused (status 403)"),
                                          HasSubstr("Extension.InvalidEventType"))));
}

// Schema negotiation: Lambda refuses the configured schema version; the extension retries once
// with the next one, says which it used, and everything is delivered.
TEST_F(IntegrationTest, RefusedSchemaFallsBackOnceAndDeliversEverything) {
  Receiver receiver;
  receiver.start();
  Options options = relay_options(2);
  options.refused_schema_versions = {"2025-01-29"};
  options.env["RELAY_TELEMETRY_SCHEMA"] = "2025-01-29";
  options.env["DISPATCH_POST_URI"] = receiver.url();
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(2));
  EXPECT_EQ(summary.subscribe_schemas, (std::vector<std::string>{"2025-01-29", "2022-12-13"}));
  EXPECT_EQ(summary.schema_version, "2022-12-13");
  EXPECT_EQ(summary.subscribe_status, 200);
  EXPECT_THAT(relay_log(),
              Contains(HasSubstr("subscribed with schema 2022-12-13 (Lambda refused 2025-01-29)")));
  EXPECT_TRUE(check_delivery(summary.subscriber_events, receiver.event_texts()).exact());
}

// Both schema versions refused: one retry only, then the refusal is handled as before (logged,
// the lifecycle goes on).
TEST_F(IntegrationTest, SchemaNegotiationRetriesOnlyOnce) {
  Options options = relay_options(1);
  options.refused_schema_versions = {"2022-12-13", "2025-01-29"};
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(1));
  EXPECT_EQ(summary.subscribe_schemas, (std::vector<std::string>{"2022-12-13", "2025-01-29"}));
  EXPECT_EQ(summary.subscribe_status, 400);
  EXPECT_THAT(relay_log(),
              Contains(AllOf(HasSubstr("subscription refused"), HasSubstr("2025-01-29"))));
}

}  // namespace
}  // namespace relay::emu
