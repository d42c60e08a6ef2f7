// The fault-injection suite (issue 4 §7): the real telemetry-relay binary in the emulator while
// the collector, the plugins, the process or the spool misbehave. Each scenario proves that
// nothing was lost (every event the emulator generated for the subscriber reached the receiver,
// a duplicate only ever with the same X-Telemetry-Relay-Batch-Id) or that exactly what was lost
// is counted in the extension's `summary` line. Waits are on conditions with generous bounds;
// the only timing assertions are upper bounds seconds away from the expected figure.

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/NullStream.h>
#include <Poco/StreamCopier.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "emulator.h"
#include "extension_run_fixture.h"
#include "receiver.h"
#include "reserved_port.h"
#include "test_files.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RELAY_UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define RELAY_UNDER_SANITIZER 1
#endif
#endif

namespace relay::emu {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

constexpr std::string_view kBatchIdHeader = "X-Telemetry-Relay-Batch-Id";

Receiver::Options receiver_on(uint16_t port) {
  Receiver::Options options;
  options.port = port;
  return options;
}

// What the receiver accepted, against what was expected.
struct Delivered {
  size_t expected = 0;
  size_t missing = 0;
  size_t unexpected = 0;
  size_t duplicates = 0;           // extra accepted copies of an expected event
  size_t duplicates_other_id = 0;  // ...of which arrived under a different batch id
  size_t requests_without_id = 0;  // accepted requests lacking the batch id header
};

Delivered check_no_loss(const std::vector<std::string>& expected,
                        const std::vector<ReceivedRequest>& requests) {
  Delivered result;
  result.expected = expected.size();
  std::map<std::string, std::vector<std::string>> ids_of;  // event text -> batch id per copy
  for (const auto& request : requests) {
    if (request.status < 200 || request.status >= 300) continue;
    const std::string id = request.header(kBatchIdHeader);
    if (id.empty()) result.requests_without_id++;
    for (const auto& event : split_event_array(request.body).value_or(std::vector<std::string>{})) {
      ids_of[event].push_back(id);
    }
  }
  std::map<std::string, size_t> wanted;
  for (const auto& event : expected) wanted[event]++;
  for (const auto& [event, count] : wanted) {
    const auto it = ids_of.find(event);
    const size_t got = it == ids_of.end() ? 0 : it->second.size();
    if (got < count) {
      result.missing += count - got;
      continue;
    }
    if (got > count) {
      result.duplicates += got - count;
      const std::set<std::string> ids(it->second.begin(), it->second.end());
      if (ids.size() > count || ids.count("") != 0) result.duplicates_other_id += got - count;
    }
  }
  for (const auto& [event, copies] : ids_of) {
    if (wanted.count(event) == 0) result.unexpected += copies.size();
  }
  return result;
}

// Why Summary::clean() failed, for the assertion message.
std::string describe(const Summary& s) {
  return "init_ok " + std::to_string(s.init_ok) + ", fatal_error '" + s.fatal_error +
         "', invocations " + std::to_string(s.invocations_completed) + ", shutdown_sent " +
         std::to_string(s.shutdown_sent) + ", exit_code " + std::to_string(s.exit_code) +
         ", exit_signal " + std::to_string(s.exit_signal) + ", killed " + std::to_string(s.killed) +
         ", before deadline " + std::to_string(s.exited_before_deadline) + ", shutdown took " +
         std::to_string(s.shutdown_duration_ms) + " ms";
}

std::ostream& operator<<(std::ostream& out, const Delivered& d) {
  return out << "expected " << d.expected << ", missing " << d.missing << ", unexpected "
             << d.unexpected << ", duplicates " << d.duplicates << " (under another batch id "
             << d.duplicates_other_id << "), accepted requests without a batch id "
             << d.requests_without_id;
}

// Every expected event accepted at least once; extra copies only under the same batch id.
void expect_nothing_lost(const std::vector<std::string>& expected,
                         const std::vector<ReceivedRequest>& requests) {
  const Delivered delivered = check_no_loss(expected, requests);
  EXPECT_GT(delivered.expected, 0u);
  EXPECT_EQ(delivered.missing, 0u) << delivered;
  EXPECT_EQ(delivered.unexpected, 0u) << delivered;
  EXPECT_EQ(delivered.duplicates_other_id, 0u) << delivered;
  EXPECT_EQ(delivered.requests_without_id, 0u) << delivered;
}

// The events the listener acknowledged before the process died: the emulator posts one batch at
// a time, in generation order, so they are the first events_delivered of subscriber_events.
std::vector<std::string> acknowledged(const Summary& summary) {
  const auto n = std::min<size_t>(summary.events_delivered, summary.subscriber_events.size());
  return {summary.subscriber_events.begin(),
          summary.subscriber_events.begin() + static_cast<std::ptrdiff_t>(n)};
}

class FaultTest : public ExtensionRunFixture {
 protected:
  FaultTest() : ExtensionRunFixture("relay_faults") {}

  // HangingReceiverNeverHoldsTheInvocation and HungRequestTimesOutAcrossFreezes.
  void hung_request_is_retried_within_the_budget(bool freeze);

  // A test-owned spool, so parallel tests never replay each other's telemetry.
  std::string spool_dir() const { return dir_ + "/spool"; }
  std::string http_spool() const { return spool_dir() + "/http"; }

  Options relay_options(int invocations, const std::string& post_uri) const {
    // The extension holds everything generated so far when each INVOKE arrives, so deliveries
    // (and the faults they meet) happen during the invocations, not all at SHUTDOWN.
    Options options = extension_options(invocations);
    options.runtime_ms = 200;
    options.log_bursts = 2;
    options.env["RELAY_PLUGIN_DIR"] = fs::path(RELAY_HTTP_PLUGIN).parent_path().string();
    options.env["DISPATCH_POST_URI"] = post_uri;
    // Fast retries keep the scenarios short; the policy itself is unit-tested.
    options.env["RELAY_HTTP_CONNECT_TIMEOUT_MS"] = "500";
    // e.g. RELAY_TEST_LOG_LEVEL=debug to see every delivery when a scenario fails.
    if (const char* level = std::getenv("RELAY_TEST_LOG_LEVEL")) {
      options.env["RELAY_LOG_LEVEL"] = level;
    }
    return options;
  }

  size_t log_lines_with(const std::string& needle) const {
    const auto lines = relay_log();
    return static_cast<size_t>(std::count_if(lines.begin(), lines.end(), [&](const auto& line) {
      return line.find(needle) != std::string::npos;
    }));
  }

  // One sink's counter in the summary; absent counters read as 0.
  static uint64_t counter(const Poco::JSON::Object::Ptr& summary, const std::string& sink,
                          const std::string& name) {
    if (!summary || !summary->getObject("sinks") || !summary->getObject("sinks")->getObject(sink))
      return 0;
    return summary->getObject("sinks")->getObject(sink)->optValue<uint64_t>(name, 0);
  }

  static uint64_t dropped(const Poco::JSON::Object::Ptr& summary, const std::string& sink) {
    uint64_t total = 0;
    for (const char* name : {"dropped_by_cap", "dropped_by_sink", "dropped_at_shutdown",
                             "dropped_disabled", "dropped_corrupt"}) {
      total += counter(summary, sink, name);
    }
    return total;
  }

  // The summary exists and its balance holds (received + inherited = delivered + dropped + ...).
  static void expect_balanced(const Poco::JSON::Object::Ptr& summary, const std::string& sink) {
    ASSERT_TRUE(summary) << "no summary line";
    ASSERT_TRUE(summary->getObject("sinks") && summary->getObject("sinks")->getObject(sink))
        << "no counters for sink " << sink;
    EXPECT_TRUE(summary->getObject("sinks")->getObject(sink)->optValue<bool>("balanced", false))
        << "counters do not reconcile for " << sink;
    EXPECT_EQ(counter(summary, sink, "queued"), 0u) << "nothing stays in memory after shutdown";
  }

  // The collector answers 503 to everything; the extension is SIGKILLed, frozen, after three
  // invocations. Returns what its listener had acknowledged.
  std::vector<std::string> outage_then_sigkill(Receiver& receiver) {
    receiver.set_default_status(503);
    Options options = relay_options(5, receiver.url());
    options.runtime_ms = 100;
    Emulator* running = nullptr;
    options.between_invocations = [&](int next) {
      if (next == 3) running->kill_extension();
    };
    Emulator run(options);
    running = &run;
    const Summary killed = run.run();
    EXPECT_EQ(killed.fatal_error, "Extension.Crash") << describe(killed);
    return acknowledged(killed);
  }

  std::vector<fs::path> spool_files(const std::string& dir) const {
    std::vector<fs::path> files;
    if (!fs::exists(dir)) return files;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.is_regular_file() && entry.path().extension() == ".batch") {
        files.push_back(entry.path());
      }
    }
    std::sort(files.begin(), files.end());
    return files;
  }
};

// The receiver's faults themselves, with a plain client: what the scenarios below rely on.
TEST(ReceiverFaults, AnswerHangResetAndTimedFailureBehaveAsScripted) {
  Receiver receiver;
  receiver.start();
  // Status, the Retry-After header and -1 for a transport error, for one POST of `body`.
  auto post = [&](const std::string& body, int timeout_ms, std::string* retry_after = nullptr) {
    try {
      Poco::Net::HTTPClientSession session("127.0.0.1", receiver.port());
      session.setTimeout(Poco::Timespan(timeout_ms * Poco::Timespan::MILLISECONDS));
      Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, "/",
                                     Poco::Net::HTTPMessage::HTTP_1_1);
      request.setContentLength(static_cast<std::streamsize>(body.size()));
      session.sendRequest(request) << body;
      Poco::Net::HTTPResponse response;
      Poco::NullOutputStream sink;
      Poco::StreamCopier::copyStream(session.receiveResponse(response), sink);
      if (retry_after) *retry_after = response.get("Retry-After", "");
      return static_cast<int>(response.getStatus());
    } catch (const Poco::Exception&) {
      return -1;
    }
  };
  const std::string body = R"([{"type":"function","record":")" + std::string(4000, 'x') + R"("}])";
  receiver.push_faults({Fault::answer(429, "7"), Fault::reset(), Fault::hang()});
  std::string retry_after;
  EXPECT_EQ(post(body, 5000, &retry_after), 429);
  EXPECT_EQ(retry_after, "7");
  EXPECT_EQ(post(body, 5000), -1) << "reset";
  EXPECT_EQ(post(body, 300), -1) << "hang: the client times out";
  EXPECT_EQ(receiver.hung_now(), 1u);
  receiver.release_hangs();
  receiver.fail_for(503, std::chrono::hours(1));
  EXPECT_EQ(post(body, 5000), 503);
  receiver.fail_for(503, milliseconds(0));
  EXPECT_EQ(post(body, 5000), 200);

  const auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 5u);
  EXPECT_EQ(requests[1].status, ReceivedRequest::kReset);
  EXPECT_LT(requests[1].body.size(), body.size()) << "reset after part of the body";
  EXPECT_EQ(requests[2].status, ReceivedRequest::kHung);
  EXPECT_EQ(requests[2].body, body);
  EXPECT_EQ(receiver.event_count(), 1u) << "only the 200 counts as accepted";

  // Down, then up again on the same port; stop() also releases a request still held.
  receiver.set_default_fault(Fault::hang());
  std::thread held([&] { post(body, 10000); });
  ASSERT_TRUE(receiver.wait_for_hung(1, seconds(10)));
  const uint16_t port = receiver.port();
  receiver.stop();
  held.join();
  EXPECT_EQ(post(body, 1000), -1) << "down";
  receiver.set_default_status(200);
  receiver.start();
  EXPECT_EQ(receiver.port(), port);
  EXPECT_EQ(post(body, 5000), 200);
}

// The collector answers 500 for 1.5 s, then recovers: every event arrives, retries carry the
// same batch id, nothing is dropped and the counters show the retries.
TEST_F(FaultTest, ReceiverFailingForAWhileLosesNothing) {
  Receiver receiver;
  receiver.start();
  receiver.fail_for(500, milliseconds(1500));
  Options options = relay_options(6, receiver.url());
  options.gap_ms = 300;
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(6)) << describe(summary);
  const auto requests = receiver.requests();
  EXPECT_GT(std::count_if(requests.begin(), requests.end(),
                          [](const auto& r) { return r.status == 500; }),
            0)
      << "the fault never hit a delivery";
  expect_nothing_lost(summary.subscriber_events, requests);
  const auto counters = relay_summary();
  expect_balanced(counters, "http");
  EXPECT_EQ(dropped(counters, "http"), 0u);
  EXPECT_GT(counter(counters, "http", "events_retried"), 0u);
}

// 429 with Retry-After: 2. The same batch comes back no sooner than the collector asked (less
// a second of slack for clock granularity; an upper bound is not asserted), and nothing is lost.
TEST_F(FaultTest, TooManyRequestsHonoursRetryAfter) {
  Receiver receiver;
  receiver.start();
  receiver.push_faults({Fault::answer(429, "2")});
  Options options = relay_options(5, receiver.url());
  options.gap_ms = 600;
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(5)) << describe(summary);
  const auto requests = receiver.requests();
  ASSERT_FALSE(requests.empty());
  ASSERT_EQ(requests[0].status, 429);
  const std::string id = requests[0].header(kBatchIdHeader);
  ASSERT_FALSE(id.empty()) << "no " << kBatchIdHeader << " header";
  const auto retry = std::find_if(requests.begin() + 1, requests.end(),
                                  [&](const auto& r) { return r.header(kBatchIdHeader) == id; });
  ASSERT_NE(retry, requests.end()) << "the refused batch was never retried";
  EXPECT_GE(retry->at - requests[0].at, milliseconds(1000)) << "Retry-After: 2 not honoured";
  EXPECT_EQ(retry->body, requests[0].body) << "a retry sends the same bytes";
  expect_nothing_lost(summary.subscriber_events, requests);
  const auto counters = relay_summary();
  expect_balanced(counters, "http");
  EXPECT_EQ(dropped(counters, "http"), 0u);
}

// The collector takes a POST and never answers. The request timeout fires and the batch is
// retried under the same id; meanwhile no invocation is held past the budget: in `end` mode
// the extension's next `next` comes within runtime + RELAY_INVOKE_BUDGET_MS + 2 s of slack,
// far below the 4 s the hung request takes to time out. Without freezes between invocations
// (the timeout across freezes is the next scenario).
void FaultTest::hung_request_is_retried_within_the_budget(bool freeze) {
  Receiver receiver;
  receiver.start();
  receiver.push_faults({Fault::hang()});
  Options options = relay_options(9, receiver.url());
  options.runtime_ms = 50;
  options.gap_ms = 800;
  options.env["RELAY_FLUSH"] = "end";
  options.env["RELAY_INVOKE_BUDGET_MS"] = "100";
  options.env["RELAY_HTTP_REQUEST_TIMEOUT_MS"] = "4000";
  options.freeze = freeze;
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(9)) << describe(summary);
  EXPECT_LT(summary.invoke_to_next_ms.max, 50 + 100 + 2000)
      << "an invocation waited for the hung collector";
  const auto requests = receiver.requests();
  ASSERT_FALSE(requests.empty());
  ASSERT_EQ(requests[0].status, ReceivedRequest::kHung);
  const std::string id = requests[0].header(kBatchIdHeader);
  ASSERT_FALSE(id.empty()) << "no " << kBatchIdHeader << " header";
  EXPECT_TRUE(std::any_of(requests.begin() + 1, requests.end(), [&](const auto& r) {
    return r.status == 200 && r.header(kBatchIdHeader) == id;
  })) << "the timed-out batch was not retried under its id";
  expect_nothing_lost(summary.subscriber_events, requests);
  const auto counters = relay_summary();
  expect_balanced(counters, "http");
  EXPECT_EQ(dropped(counters, "http"), 0u);
}

TEST_F(FaultTest, HangingReceiverNeverHoldsTheInvocation) {
  hung_request_is_retried_within_the_budget(/*freeze=*/false);
}

// The same hung POST, with the environment frozen between invocations as Lambda does (0.8 s
// frozen, ~0.1 s running, so the 4 s request timeout spans several freezes). The timeout must
// count wall-clock time: a socket timeout that starts again after every thaw (a blocking
// recv with SO_RCVTIMEO returns EINTR after SIGSTOP/SIGCONT or the cgroup freezer, and POCO
// retries it with the full timeout) never fires while the function is invoked more often than
// the timeout, and the delivery stays stuck until SHUTDOWN.
TEST_F(FaultTest, HungRequestTimesOutAcrossFreezes) {
  hung_request_is_retried_within_the_budget(/*freeze=*/true);
}

// The collector resets the connection after half of the body, twice: retried, nothing lost.
TEST_F(FaultTest, ConnectionResetMidRequestIsRetried) {
  Receiver receiver;
  receiver.start();
  receiver.push_faults({Fault::reset(), Fault::reset()});
  Options options = relay_options(5, receiver.url());
  options.gap_ms = 200;
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(5)) << describe(summary);
  const auto requests = receiver.requests();
  ASSERT_GE(requests.size(), 3u);
  EXPECT_EQ(requests[0].status, ReceivedRequest::kReset);
  expect_nothing_lost(summary.subscriber_events, requests);
  const auto counters = relay_summary();
  expect_balanced(counters, "http");
  EXPECT_EQ(dropped(counters, "http"), 0u);
}

// The collector is down (connection refused) for three invocations, then comes up on the same
// port: what failed meanwhile was spooled and is replayed, in full.
TEST_F(FaultTest, ReceiverDownThenUpReplaysTheSpool) {
  ReservedPort reserved;
  Receiver receiver(receiver_on(reserved.port()));
  Options options = relay_options(6, "http://127.0.0.1:" + std::to_string(reserved.port()));
  options.between_invocations = [&](int next) {
    if (next == 3) {
      EXPECT_FALSE(spool_files(http_spool()).empty()) << "nothing was spooled while down";
      reserved.release();
      receiver.start();
    }
  };
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(6)) << describe(summary);
  expect_nothing_lost(summary.subscriber_events, receiver.requests());
  const auto counters = relay_summary();
  expect_balanced(counters, "http");
  EXPECT_EQ(dropped(counters, "http"), 0u);
  EXPECT_GT(counter(counters, "http", "spooled"), 0u);
  EXPECT_GT(counter(counters, "http", "replayed"), 0u);
  EXPECT_EQ(counter(counters, "http", "still_spooled"), 0u);
}

// SIGKILL while a delivery is in flight (its first attempt failed, so it is spooled; the retry
// hangs at the collector). A new extension process in the same environment (same spool folder,
// as after Lambda re-initialises the environment) replays it: every event of every batch that
// reached the collector before the kill arrives, duplicates only under the same batch id.
TEST_F(FaultTest, SigkillWhileDeliveringThenNewProcessReplaysTheSpool) {
  Receiver receiver;
  receiver.start();
  receiver.push_faults({Fault::answer(500), Fault::hang()});
  receiver.set_default_fault(Fault::hang());

  Options first = relay_options(3, receiver.url());
  first.runtime_ms = 5000;  // the kill lands inside the first invocation
  Emulator killed_run(first);
  std::thread killer([&] {
    if (receiver.wait_for_hung(1, seconds(20))) killed_run.kill_extension();
  });
  const Summary killed = killed_run.run();
  killer.join();
  ASSERT_EQ(killed.fatal_error, "Extension.Crash") << "the extension was not killed mid-delivery";
  EXPECT_EQ(killed.exit_signal, SIGKILL);
  const std::vector<std::string> seen_before_kill = receiver.event_texts(/*accepted_only=*/false);
  ASSERT_FALSE(seen_before_kill.empty());
  EXPECT_FALSE(spool_files(http_spool()).empty()) << "the failed delivery was not spooled";
  end_run();

  receiver.set_default_status(200);
  receiver.release_hangs();
  Options second = relay_options(2, receiver.url());
  const Summary replayed = Emulator(second).run();
  ASSERT_TRUE(replayed.clean(2)) << describe(replayed);

  // The batches seen before the kill, then everything the second environment generated.
  std::set<std::string> unique_before(seen_before_kill.begin(), seen_before_kill.end());
  std::vector<std::string> expected(unique_before.begin(), unique_before.end());
  expected.insert(expected.end(), replayed.subscriber_events.begin(),
                  replayed.subscriber_events.end());
  const Delivered delivered = check_no_loss(expected, receiver.requests());
  EXPECT_EQ(delivered.missing, 0u) << delivered;
  EXPECT_EQ(delivered.duplicates_other_id, 0u) << delivered;
  EXPECT_EQ(delivered.requests_without_id, 0u) << delivered;
  const auto counters = relay_summary();
  expect_balanced(counters, "http");
  EXPECT_GT(counter(counters, "http", "inherited"), 0u) << "the new process found no spool";
  EXPECT_GT(counter(counters, "http", "replayed"), 0u);
  EXPECT_EQ(dropped(counters, "http"), 0u);
  EXPECT_TRUE(spool_files(http_spool()).empty());
}

// A collector whose parser chokes on one event answers 500 to every delivery holding it. The
// rest is delivered anyway: the refused delivery waits behind fresh telemetry and is halved until
// the poison is alone; a new process on the same spool is not blocked by it either, and once
// past its retry life it moves to the dead-letter folder, logged with its batch id.
TEST_F(FaultTest, APoisonEventNeverBlocksTheRestAndEndsInTheDeadLetterFolder) {
  Receiver receiver;
  receiver.start();
  receiver.refuse_bodies_containing("poison-marker", 500);
  const std::string poison =
      R"({"time":"2024-05-14T09:12:05.321Z","type":"function","record":"poison-marker"})";

  Options first = relay_options(10, receiver.url());
  first.raw_posts.push_back(RawPost{1, "[" + poison + "]"});
  const Summary one = Emulator(first).run();
  ASSERT_TRUE(one.clean(10)) << describe(one);
  ASSERT_EQ(one.raw_post_statuses, std::vector<int>{200});
  auto counters = relay_summary();
  expect_balanced(counters, "http");
  EXPECT_GE(counter(counters, "http", "still_spooled"), 1u) << "the poison is kept, not dropped";
  EXPECT_EQ(counter(counters, "http", "dead_lettered"), 0u) << "not before its retry life ends";
  end_run();

  Options second = relay_options(10, receiver.url());
  second.env["RELAY_RETRY_MAX_ATTEMPTS"] = "2";
  second.env["RELAY_RETRY_MAX_AGE_S"] = "0";
  const Summary two = Emulator(second).run();
  ASSERT_TRUE(two.clean(10)) << describe(two);
  counters = relay_summary();
  expect_balanced(counters, "http");
  EXPECT_EQ(counter(counters, "http", "dead_lettered"), 1u);
  EXPECT_EQ(counter(counters, "http", "still_spooled"), 0u);
  EXPECT_EQ(dropped(counters, "http"), 0u);
  EXPECT_EQ(log_lines_with("will not be replayed"), 1u);
  EXPECT_EQ(spool_files(http_spool() + "/dead-letter").size(), 1u);

  // Everything but the poison reached the collector, across both processes.
  std::vector<std::string> expected = one.subscriber_events;
  expected.insert(expected.end(), two.subscriber_events.begin(), two.subscriber_events.end());
  const Delivered delivered = check_no_loss(expected, receiver.requests());
  EXPECT_EQ(delivered.missing, 0u) << delivered;
  EXPECT_EQ(delivered.requests_without_id, 0u) << delivered;
  for (const std::string& event : receiver.event_texts()) {
    EXPECT_EQ(event.find("poison-marker"), std::string::npos) << "a 500 counted as accepted";
  }
}

// The collector answers 503 to everything; the extension is SIGKILLed between invocations (so
// several batches arrived during the outage, after its first failed delivery). Everything the
// listener acknowledged was on disk: a new process with a healthy collector delivers all of it.
TEST_F(FaultTest, SigkillDuringAnOutageLosesNothingAcknowledged) {
  Receiver receiver;
  receiver.start();
  std::vector<std::string> acked;
  ASSERT_NO_FATAL_FAILURE(acked = outage_then_sigkill(receiver));
  ASSERT_GT(acked.size(), 20u);
  EXPECT_GT(receiver.requests().size(), 0u) << "no delivery was attempted before the kill";
  EXPECT_FALSE(spool_files(http_spool()).empty());
  end_run();

  receiver.set_default_status(200);
  const Summary second = Emulator(relay_options(2, receiver.url())).run();
  ASSERT_TRUE(second.clean(2)) << describe(second);
  std::vector<std::string> expected = acked;
  expected.insert(expected.end(), second.subscriber_events.begin(), second.subscriber_events.end());
  const Delivered delivered = check_no_loss(expected, receiver.requests());
  EXPECT_EQ(delivered.missing, 0u) << delivered;
  EXPECT_EQ(delivered.duplicates_other_id, 0u) << delivered;
  const auto counters = relay_summary();
  expect_balanced(counters, "http");
  EXPECT_GT(counter(counters, "http", "inherited"), 0u);
  EXPECT_EQ(dropped(counters, "http"), 0u);
}

// An outage fills the spool; a second process replays it and is SIGKILLed mid-replay (the
// collector hangs on a replayed delivery); a third finishes. Every acknowledged event arrives,
// and any copy the kill caused arrives under the same batch id as the first.
TEST_F(FaultTest, SigkillDuringReplayDuplicatesOnlyUnderTheSameBatchId) {
  Receiver receiver;
  receiver.start();
  std::vector<std::string> acked;
  ASSERT_NO_FATAL_FAILURE(acked = outage_then_sigkill(receiver));
  ASSERT_GE(spool_files(http_spool()).size(), 2u) << "the outage left too little to replay";
  end_run();

  // Replay: the first replayed delivery hangs at the collector, and the process dies with it in
  // flight (its file still spooled).
  receiver.set_default_status(200);
  receiver.push_faults({Fault::hang()});
  Options replay = relay_options(3, receiver.url());
  replay.runtime_ms = 5000;
  replay.env["RELAY_HTTP_REQUEST_TIMEOUT_MS"] = "60000";  // the hang lasts until the kill
  Emulator second(replay);
  std::thread killer([&] {
    if (receiver.wait_for_hung(1, seconds(60))) second.kill_extension();
  });
  const Summary replay_killed = second.run();
  killer.join();
  // Killed with the replayed delivery in flight; a slow (sanitizer) build may still be in init.
  ASSERT_EQ(replay_killed.exit_signal, SIGKILL) << "not killed during the replay";
  const std::vector<std::string> acked_second = acknowledged(replay_killed);
  receiver.release_hangs();
  end_run();

  const Summary third = Emulator(relay_options(2, receiver.url())).run();
  ASSERT_TRUE(third.clean(2)) << describe(third);
  std::vector<std::string> expected = acked;
  expected.insert(expected.end(), acked_second.begin(), acked_second.end());
  expected.insert(expected.end(), third.subscriber_events.begin(), third.subscriber_events.end());
  // Events of the second process acknowledged but still only in its memory are its healthy-
  // path window (documented): they are not required here.
  EXPECT_EQ(check_no_loss(acked, receiver.requests()).missing, 0u) << "lost from the outage";
  const Delivered delivered = check_no_loss(expected, receiver.requests());
  EXPECT_EQ(delivered.duplicates_other_id, 0u) << delivered;
  EXPECT_EQ(delivered.requests_without_id, 0u) << delivered;
  const auto counters = relay_summary();
  expect_balanced(counters, "http");
  EXPECT_EQ(counter(counters, "http", "still_spooled"), 0u);
}

// The environment freezes while a POST is in flight; the collector gives up on it meanwhile
// (closes without an answer). After the thaw the extension finds the dead request and retries
// the same batch under the same id: nothing lost, no duplicate under another id.
TEST_F(FaultTest, FreezeInTheMiddleOfAPostThenThaw) {
  Receiver receiver;
  receiver.start();
  receiver.push_faults({Fault::hang()});
  Options options = relay_options(4, receiver.url());
  options.runtime_ms = 300;
  options.gap_ms = 500;
  bool hung_at_freeze = false;
  options.between_invocations = [&](int next) {
    if (next == 1) {
      hung_at_freeze = receiver.wait_for_hung(1, seconds(10));
      receiver.release_hangs();
    }
  };
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(4)) << describe(summary);
  EXPECT_TRUE(hung_at_freeze) << "no POST was in flight when the environment froze";
  EXPECT_GE(summary.freezes, 1);
  const auto requests = receiver.requests();
  ASSERT_FALSE(requests.empty());
  const std::string id = requests[0].header(kBatchIdHeader);
  ASSERT_FALSE(id.empty()) << "no " << kBatchIdHeader << " header";
  EXPECT_TRUE(std::any_of(requests.begin() + 1, requests.end(), [&](const auto& r) {
    return r.status == 200 && r.header(kBatchIdHeader) == id;
  })) << "the interrupted batch was not retried under its id";
  expect_nothing_lost(summary.subscriber_events, requests);
  const auto counters = relay_summary();
  expect_balanced(counters, "http");
  EXPECT_EQ(dropped(counters, "http"), 0u);
}

// 200,000 function log events in one invocation with the collector down. Memory stays bounded
// by RELAY_BUFFER_MAX_BYTES: peak RSS (VmHWM, from wait4) stays under the idle peak of the same
// binary plus the buffer cap plus 12 MiB for the listener's request bodies (up to 1 MiB each,
// parsed), one delivery being formed (RELAY_DELIVERY_MAX_BYTES) and allocator slack. Everything
// beyond the cap is spooled or dropped, and counted: the counters reconcile.
TEST_F(FaultTest, BurstWithReceiverDownStaysUnderTheMemoryCap) {
  constexpr size_t kBufferMax = 1u << 20;
  constexpr long kSlackKb = 12 * 1024;

  Receiver idle_receiver;
  idle_receiver.start();
  Options idle = relay_options(1, idle_receiver.url());
  idle.logs_per_invoke = 1;
  const Summary idle_summary = Emulator(idle).run();
  ASSERT_TRUE(idle_summary.clean(1)) << describe(idle_summary);
  end_run();
  fs::remove_all(spool_dir());

  ReservedPort down;
  Options options = relay_options(2, "http://127.0.0.1:" + std::to_string(down.port()));
  options.logs_per_invoke = 100000;
  options.log_bursts = 20;
  options.runtime_ms = 2000;
  options.keep_event_texts = false;
  options.max_queued_batches = 100000;  // the emulator itself drops nothing
  options.shutdown_ms = 2000;
  options.env["RELAY_BUFFER_MAX_BYTES"] = std::to_string(kBufferMax);
  options.env["RELAY_TELEMETRY_TYPES"] = "function";
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(2)) << describe(summary);
  ASSERT_GE(summary.generated_by_type.at("function"), 200000u);
  const auto counters = relay_summary();
  expect_balanced(counters, "http");
  EXPECT_GE(counter(counters, "http", "received"), 200000u);
  EXPECT_EQ(counter(counters, "http", "delivered"), 0u);
  EXPECT_EQ(counter(counters, "http", "received"),
            dropped(counters, "http") + counter(counters, "http", "still_spooled"));
  const long bound_kb = idle_summary.max_rss_kb + static_cast<long>(kBufferMax / 1024) + kSlackKb;
  std::cerr << "peak RSS idle " << idle_summary.max_rss_kb << " kB, burst " << summary.max_rss_kb
            << " kB, bound " << bound_kb << " kB\n";
#ifdef RELAY_UNDER_SANITIZER
  std::cerr << "RSS bound not asserted under a sanitizer (shadow memory, quarantine)\n";
#else
  EXPECT_LT(summary.max_rss_kb, bound_kb);
#endif

  EXPECT_GT(dropped(counters, "http"), 0u) << "the burst did not overflow the spool";

  // Nothing else lost: new processes with a healthy collector deliver all that was spooled (as
  // many as it takes to empty it: a slow build may need more than one environment's lifetime).
  const uint64_t left_in_spool = counter(counters, "http", "still_spooled");
  ASSERT_GT(left_in_spool, 0u);
  Receiver receiver;
  receiver.start();
  uint64_t replayed_in_all = 0;
  size_t generated_after = 0;
  for (int run = 0; run < 10 && !spool_files(http_spool()).empty(); ++run) {
    end_run();
    Options after = relay_options(2, receiver.url());
    after.logs_per_invoke = 1;
    after.runtime_ms = 1000;
    after.env["RELAY_TELEMETRY_TYPES"] = "function";
    const Summary replayed = Emulator(after).run();
    ASSERT_TRUE(replayed.clean(2)) << describe(replayed);
    generated_after += replayed.subscriber_events.size();
    const auto after_counters = relay_summary();
    expect_balanced(after_counters, "http");
    EXPECT_EQ(dropped(after_counters, "http"), 0u);
    replayed_in_all += counter(after_counters, "http", "replayed");
  }
  EXPECT_TRUE(spool_files(http_spool()).empty());
  // A delivery still in flight at a replay run's deadline (a slow sanitizer build) is sent again
  // by the next run under the same id; so is what that run spooled of its own. Count events
  // once, and allow a second copy only under the id of the first.
  EXPECT_GE(replayed_in_all, left_in_spool);
  std::map<std::string, std::set<std::string>> ids_of;  // event text -> batch ids it came under
  for (const auto& request : receiver.requests()) {
    if (request.status < 200 || request.status >= 300) continue;
    for (auto& event : split_event_array(request.body).value_or(std::vector<std::string>{})) {
      ids_of[std::move(event)].insert(request.header(kBatchIdHeader));
    }
  }
  EXPECT_EQ(ids_of.size(), left_in_spool + generated_after);
  for (const auto& [event, ids] : ids_of) {
    EXPECT_EQ(ids.size(), 1u) << "delivered under several batch ids: " << event;
  }
}

// SHUTDOWN while the collector hangs on every request: the extension still exits 0 before the
// deadline, and what it could not deliver is spooled or counted, never silently gone.
TEST_F(FaultTest, ShutdownWhileTheSinkHangsExitsBeforeTheDeadline) {
  Receiver receiver;
  receiver.start();
  receiver.set_default_fault(Fault::hang());
  Options options = relay_options(3, receiver.url());
  options.shutdown_ms = 2000;
  options.env["RELAY_HTTP_REQUEST_TIMEOUT_MS"] = "60000";
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(3)) << describe(summary);
  EXPECT_LT(summary.shutdown_duration_ms, 2000);
  EXPECT_GE(receiver.hung_now(), 1u);
  const auto counters = relay_summary();
  expect_balanced(counters, "http");
  EXPECT_EQ(counter(counters, "http", "delivered"), 0u);
  EXPECT_GT(counter(counters, "http", "still_spooled") + dropped(counters, "http"), 0u);
  receiver.release_hangs();
}

// A sink stuck in deliver past the shutdown deadline is neither flushed nor destroyed (the
// contract: no call while another is running), and the process still exits 0 before deadlineMs.
TEST_F(FaultTest, ASinkStuckAtTheShutdownDeadlineIsNotDestroyedAndTheProcessExitsInTime) {
  Options options = extension_options(2);
  options.shutdown_ms = 2000;
  use_record_sink(options, RELAY_RECORD_PLUGIN);
  options.env["RELAY_RECORD_DELIVER_SLEEP_MS"] = "600000";
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(2)) << describe(summary);
  EXPECT_LT(summary.shutdown_duration_ms, 2000);
  const std::vector<std::string> lines = read_lines(calls_path());
  ASSERT_GE(lines.size(), 2u);
  EXPECT_EQ(lines.front(), "create");
  EXPECT_EQ(lines[1].rfind("deliver ", 0), 0u) << lines[1];
  for (const auto& line : lines) {
    EXPECT_NE(line, "flush");
    EXPECT_NE(line, "destroy");
  }
  EXPECT_EQ(log_lines_with("sink record: still delivering at the shutdown deadline"), 1u);
  EXPECT_EQ(log_lines_with("sink record: still in a call at the shutdown deadline: not destroyed"),
            1u);
  expect_balanced(relay_summary(), "record");
}

// Plugins that misbehave beside the http sink never cost it an event: one throws from deliver
// (caught at the ABI boundary, its batches counted as dropped), one returns FATAL (disabled with
// one error line, its data spooled or counted), one blocks in deliver far past every deadline
// (the invocation is not held, and the process still exits 0 before the SHUTDOWN deadline).
TEST_F(FaultTest, ThrowingFatalAndBlockingPluginsNeverHurtTheOthers) {
  struct Case {
    std::string sink;
    std::string plugin;
    std::map<std::string, std::string> env;
  };
  const std::vector<Case> cases = {
      {"throws", RELAY_THROWS_PLUGIN, {{"RELAY_THROWS_THROW_IN", "deliver"}}},
      {"record", RELAY_RECORD_PLUGIN, {{"RELAY_RECORD_STATUS", "fatal"}}},
      {"slow", RELAY_SLOW_PLUGIN, {{"RELAY_SLOW_SLEEP_MS", "600000"}}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.sink);
    Receiver receiver;
    receiver.start();
    Options options = relay_options(4, receiver.url());
    options.shutdown_ms = 2000;
    options.env["RELAY_PLUGIN_DIR"] = plugin_dir({RELAY_HTTP_PLUGIN, c.plugin});
    options.env["RELAY_SINKS"] = "http," + c.sink;
    options.env["RELAY_RECORD_PATH"] = dir_ + "/record.out";
    for (const auto& [key, value] : c.env) options.env[key] = value;
    const Summary summary = Emulator(options).run();

    EXPECT_TRUE(summary.clean(4)) << describe(summary);
    EXPECT_LT(summary.invoke_to_next_ms.max, 2000);
    expect_nothing_lost(summary.subscriber_events, receiver.requests());
    const auto counters = relay_summary();
    expect_balanced(counters, "http");
    EXPECT_EQ(dropped(counters, "http"), 0u);
    ASSERT_TRUE(counters);
    const uint64_t received = counter(counters, c.sink, "received");
    EXPECT_GT(received, 0u);
    if (c.sink == "throws") {
      EXPECT_EQ(counter(counters, c.sink, "dropped_by_sink"), received);
    } else if (c.sink == "record") {
      EXPECT_TRUE(
          counters->getObject("sinks")->getObject("record")->optValue<bool>("disabled", false));
      EXPECT_EQ(counter(counters, c.sink, "dropped_disabled") +
                    counter(counters, c.sink, "still_spooled"),
                received);
      EXPECT_EQ(log_lines_with("answered FATAL"), 1u) << "one error line for the disabled sink";
    } else {
      expect_balanced(counters, c.sink);
    }
    end_run();
    fs::remove_all(spool_dir());
    fs::remove_all(dir_ + "/plugins");
  }
}

// Lambda Managed Instances (concurrent invocations, no INVOKE events, continuous or periodic
// flushing) with the collector answering 500 for a while: still nothing lost.
TEST_F(FaultTest, ManagedInstancesWithAFailingReceiverLosesNothing) {
  Receiver receiver;
  receiver.start();
  receiver.fail_for(500, milliseconds(1000));
  Options options = relay_options(8, receiver.url());
  options.managed_instances = true;
  options.concurrency = 2;
  options.runtime_ms = 200;
  options.gap_ms = 100;
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(8)) << describe(summary);
  expect_nothing_lost(summary.subscriber_events, receiver.requests());
  const auto counters = relay_summary();
  expect_balanced(counters, "http");
  EXPECT_EQ(dropped(counters, "http"), 0u);
  EXPECT_GT(counter(counters, "http", "events_retried"), 0u);
}

// What a second extension process made of a spool that the first one left and the test damaged.
struct DamagedSpoolRun {
  std::vector<std::string> intact_events;  // in the files left alone
  uint64_t truncated_events = 0;           // in the file cut to half its size
  uint64_t flipped_events = 0;             // in the file with one payload byte changed
  Summary second;
  std::vector<ReceivedRequest> requests;
  Poco::JSON::Object::Ptr counters;
};

// The first process spools everything (collector down, several small deliveries); the first
// file is truncated and/or a byte of the second's payload flipped; a second process in the same
// environment then runs with the collector up.
class DamagedSpoolTest : public FaultTest {
 protected:
  void run(bool truncate_first, bool flip_second, DamagedSpoolRun& out) {
    ReservedPort down;
    Options first = relay_options(4, "http://127.0.0.1:" + std::to_string(down.port()));
    first.env["RELAY_DELIVERY_MAX_BYTES"] = "65536";
    first.logs_per_invoke = 200;  // several deliveries, so several spool files
    const Summary spooled = Emulator(first).run();
    ASSERT_TRUE(spooled.clean(4)) << describe(spooled);
    end_run();
    const auto files = spool_files(http_spool());
    ASSERT_GE(files.size(), 3u) << "expected several spool files";

    // The events a file holds: its payload, the JSON array at its end.
    auto events_in = [](const fs::path& file) {
      const std::string bytes = read_file(file.string());
      const size_t start = bytes.find("[{");
      return split_event_array(start == std::string::npos ? "" : bytes.substr(start))
          .value_or(std::vector<std::string>{});
    };
    for (size_t i = 0; i < files.size(); ++i) {
      const auto events = events_in(files[i]);
      ASSERT_FALSE(events.empty()) << files[i];
      if (i == 0 && truncate_first) {
        out.truncated_events = events.size();
      } else if (i == 1 && flip_second) {
        out.flipped_events = events.size();
      } else {
        out.intact_events.insert(out.intact_events.end(), events.begin(), events.end());
      }
    }
    if (truncate_first) fs::resize_file(files[0], fs::file_size(files[0]) / 2);
    if (flip_second) {
      std::fstream f(files[1], std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(fs::file_size(files[1]) - 3));
      f.put('#');  // inside the last event: same length, bad checksum
    }

    Receiver receiver(receiver_on(down.port()));
    down.release();
    receiver.start();
    out.second = Emulator(relay_options(2, receiver.url())).run();
    out.requests = receiver.requests();
    out.counters = relay_summary();
  }

  size_t quarantined_files() const {
    size_t count = 0;
    if (fs::exists(http_spool() + "/corrupt")) {
      for ([[maybe_unused]] const auto& entry : fs::directory_iterator(http_spool() + "/corrupt")) {
        ++count;
      }
    }
    return count;
  }
};

// A truncated and a bit-flipped spool file: the new process quarantines both to
// <spool>/http/corrupt/, says so in its log, replays every intact file, and does not crash.
TEST_F(DamagedSpoolTest, CorruptSpoolFilesAreQuarantinedAndTheRestReplayed) {
  DamagedSpoolRun result;
  ASSERT_NO_FATAL_FAILURE(run(true, true, result));
  ASSERT_TRUE(result.second.clean(2)) << describe(result.second);

  std::vector<std::string> expected = result.intact_events;
  expected.insert(expected.end(), result.second.subscriber_events.begin(),
                  result.second.subscriber_events.end());
  const Delivered delivered = check_no_loss(expected, result.requests);
  EXPECT_EQ(delivered.missing, 0u) << delivered;
  EXPECT_EQ(delivered.duplicates_other_id, 0u) << delivered;
  expect_balanced(result.counters, "http");
  EXPECT_EQ(counter(result.counters, "http", "spool_quarantined_files"), 2u);
  // At least the file found bad when read; the exact count is the next test.
  EXPECT_GE(counter(result.counters, "http", "dropped_corrupt"), result.flipped_events);
  EXPECT_EQ(log_lines_with("corrupt spool file"), 2u) << "each quarantine is logged";
  EXPECT_EQ(quarantined_files(), 2u);
}

// Exactly what was lost is counted: the events of a truncated file (its header still says how
// many) are dropped_corrupt, not just gone from the balance.
TEST_F(DamagedSpoolTest, TruncatedSpoolFileEventsAreCountedAsDropped) {
  DamagedSpoolRun result;
  ASSERT_NO_FATAL_FAILURE(run(true, false, result));
  ASSERT_TRUE(result.second.clean(2)) << describe(result.second);
  std::vector<std::string> expected = result.intact_events;
  expected.insert(expected.end(), result.second.subscriber_events.begin(),
                  result.second.subscriber_events.end());
  EXPECT_EQ(check_no_loss(expected, result.requests).missing, 0u);
  expect_balanced(result.counters, "http");
  EXPECT_EQ(quarantined_files(), 1u);
  EXPECT_EQ(counter(result.counters, "http", "dropped_corrupt"), result.truncated_events)
      << "a truncated spool file's events are not counted";
}

// Lambda writes its events compact with the keys in one order; a producer may not. The same run
// with every event pretty-printed and its keys reversed ("record" before "type", a record's
// requestId after its nested objects, " : " between key and value) must come out the same: each
// invocation's platform.runtimeDone found by request id (`end` mode waits for it), the last
// platform.report found at SHUTDOWN, Lambda's platform.logsDropped counted, the extension's own
// log lines dropped, and every event delivered byte for byte.
TEST_F(FaultTest, PrettyPrintedReorderedEventsGiveTheSameResultsAsCompact) {
  struct Run {
    bool clean = false;
    std::string why;
    size_t runtime_done_seen = 0;
    size_t no_runtime_done = 0;
    size_t report_seen = 0;
    DeliveryCheck delivery;
    size_t platform_and_function = 0;  // generated for the subscriber
    Poco::JSON::Object::Ptr summary;
  };
  constexpr int kInvocations = 3;
  const std::string logs_dropped =
      R"({"time":"2024-05-14T09:12:05.000Z","type":"platform.logsDropped","record":)"
      R"({"droppedBytes":4200,"droppedRecords":42,"reason":"slow consumer"}})";
  auto run = [&](EventStyle style) {
    Receiver receiver;
    receiver.start();
    Options options = relay_options(kInvocations, receiver.url());
    options.event_style = style;
    options.env["RELAY_FLUSH"] = "end";
    // Waits for each runtimeDone as long as it takes: only a missed request id ends it early.
    options.env["RELAY_INVOKE_BUDGET_MS"] = "20000";
    options.env["RELAY_LOG_LEVEL"] = "debug";
    options.env["RELAY_TELEMETRY_TYPES"] = "platform,function,extension";
    const bool pretty = style == EventStyle::kPrettyReordered;
    options.raw_posts = {
        RawPost{1, "[" + (pretty ? pretty_reordered(logs_dropped) : logs_dropped) + "]"}};
    const Summary summary = Emulator(options).run();
    Run result;
    result.clean = summary.clean(kInvocations);
    result.why = describe(summary);
    result.runtime_done_seen = log_lines_with(": platform.runtimeDone seen");
    result.no_runtime_done = log_lines_with(": no platform.runtimeDone");
    result.report_seen = log_lines_with("shutdown drain ended: last platform.report seen");
    // Everything generated for the subscriber but the extension's own lines, which it drops.
    std::vector<std::string> expected;
    for (const std::string& text : summary.subscriber_events) {
      const auto event = Poco::JSON::Parser().parse(text).extract<Poco::JSON::Object::Ptr>();
      const bool own_line =
          event->getValue<std::string>("type") == "extension" &&
          event->getValue<std::string>("record").rfind("telemetry-relay ", 0) == 0;
      if (!own_line) expected.push_back(text);
      if (event->getValue<std::string>("type") != "extension") ++result.platform_and_function;
    }
    expected.push_back(pretty ? pretty_reordered(logs_dropped) : logs_dropped);  // the raw POST
    result.delivery = check_delivery(expected, receiver.event_texts());
    result.summary = relay_summary();
    receiver.stop();
    end_run();
    return result;
  };

  const Run compact = run(EventStyle::kCompact);
  const Run pretty = run(EventStyle::kPrettyReordered);
  for (const Run* r : {&compact, &pretty}) {
    const char* which = r == &compact ? "compact" : "pretty";
    ASSERT_TRUE(r->clean) << which << ": " << r->why;
    EXPECT_EQ(r->runtime_done_seen, size_t(kInvocations)) << which;
    EXPECT_EQ(r->no_runtime_done, 0u) << which;
    EXPECT_EQ(r->report_seen, 1u) << which;
    EXPECT_TRUE(r->delivery.exact())
        << which << ": missing " << r->delivery.missing << ", duplicates " << r->delivery.duplicates
        << ", unexpected " << r->delivery.unexpected;
    ASSERT_TRUE(r->summary) << which;
    expect_balanced(r->summary, "http");
    EXPECT_EQ(r->summary->getValue<uint64_t>("platform_logs_dropped"), 42u) << which;
    EXPECT_GT(r->summary->getValue<uint64_t>("own_log_lines_dropped"), 0u) << which;
    EXPECT_EQ(dropped(r->summary, "http"), 0u) << which;
    const Poco::JSON::Object::Ptr listener = r->summary->getObject("listener");
    ASSERT_TRUE(listener) << which;
    EXPECT_EQ(listener->getValue<uint64_t>("rejected_requests"), 0u) << which;
  }
  // The same run: the same platform and function events, all received and delivered (the
  // number of the extension's own lines, and so of batches, varies with timing).
  EXPECT_EQ(pretty.platform_and_function, compact.platform_and_function);
  for (const Run* r : {&compact, &pretty}) {
    EXPECT_EQ(r->summary->getValue<uint64_t>("received_events"), r->delivery.expected);
    EXPECT_EQ(counter(r->summary, "http", "delivered"), r->delivery.expected);
  }
}

// What Lambda sent reconciles with the summary: requests the listener refused are counted by
// reason, with their bytes, beside what it accepted.
TEST_F(FaultTest, RefusedTelemetryIsCountedInTheSummary) {
  Receiver receiver;
  receiver.start();
  Options options = relay_options(2, receiver.url());
  options.env["RELAY_TELEMETRY_MAX_BYTES"] = "262144";
  options.env["RELAY_LISTENER_MAX_BODY_BYTES"] = std::to_string(2 * 262144 + 65536);
  const std::string malformed = R"([{"time":"t","type":"function","record":"x"},)";
  const std::string too_large = "[" + std::string(2 * 262144 + 65537, ' ') + "]";
  options.raw_posts = {RawPost{0, malformed}, RawPost{1, too_large}, RawPost{1, "[]"}};
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(2)) << describe(summary);
  ASSERT_EQ(summary.raw_post_statuses, (std::vector<int>{400, 413, 200}));
  expect_nothing_lost(summary.subscriber_events, receiver.requests());
  const auto counters = relay_summary();
  expect_balanced(counters, "http");
  const Poco::JSON::Object::Ptr listener = counters->getObject("listener");
  ASSERT_TRUE(listener);
  auto tally = [&](const std::string& reason, const std::string& field) {
    const Poco::JSON::Object::Ptr r = listener->getObject(reason);
    return r ? r->getValue<uint64_t>(field) : UINT64_MAX;
  };
  EXPECT_EQ(listener->getValue<uint64_t>("rejected_requests"), 2u);
  EXPECT_EQ(listener->getValue<uint64_t>("rejected_bytes"), malformed.size() + too_large.size());
  EXPECT_EQ(tally("bad_request", "requests"), 1u);
  EXPECT_EQ(tally("bad_request", "bytes"), malformed.size());
  EXPECT_EQ(tally("too_large", "requests"), 1u);
  EXPECT_EQ(tally("too_large", "bytes"), too_large.size());
  EXPECT_EQ(tally("method_not_allowed", "requests"), 0u);
  // Every POST the platform's sender made was answered 200, plus the empty raw one.
  EXPECT_EQ(listener->getValue<uint64_t>("accepted_requests"), summary.posts_ok + 1);
}

}  // namespace
}  // namespace relay::emu
