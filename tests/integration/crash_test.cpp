// A plugin that crashes the process (a fault, abort(), exit()) takes the extension with it: a
// plugin runs in the host's address space. These scenarios run the real binary in the emulator
// beside the http sink and show exactly what survives: the crash is named in one log line, the
// process ends by the same signal (Lambda reports Extension.Crash), there is no summary, what
// the other sinks had spooled is delivered by the next process, and what they held only in
// memory is lost.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "emulator.h"
#include "extension_run_fixture.h"
#include "receiver.h"
#include "test_files.h"

namespace relay::emu {
namespace {

namespace fs = std::filesystem;

class CrashTest : public ExtensionRunFixture {
 protected:
  CrashTest() : ExtensionRunFixture("relay_crash") {}

  std::string trigger() const { return dir_ + "/crash-now"; }
  std::string http_spool() const { return dir_ + "/spool/http"; }

  // http and the crashing fixture side by side; the fixture crashes in deliver (continuous, so
  // on the first batch after the trigger file appears).
  Options relay_options(int invocations, const std::string& post_uri) const {
    Options options = extension_options(invocations);
    options.runtime_ms = 200;
    options.env["RELAY_PLUGIN_DIR"] = plugin_dir({RELAY_HTTP_PLUGIN, RELAY_CRASHES_PLUGIN});
    options.env["RELAY_SINKS"] = "http,crashes";
    options.env["DISPATCH_POST_URI"] = post_uri;
    options.env["RELAY_HTTP_CONNECT_TIMEOUT_MS"] = "500";
    options.env["RELAY_CRASHES_CRASH_IN"] = "deliver";
    options.env["RELAY_CRASHES_TRIGGER"] = trigger();
    options.env["RELAY_CRASHES_FLUSH"] = "continuous";
    // Under a sanitizer build the crash must reach the host's handler and the default action,
    // not be reported as the sanitizer's own finding.
    const char* kLeaveSignalsAlone =
        "handle_segv=0:handle_sigbus=0:handle_abort=0:handle_sigill=0:handle_sigfpe=0";
    options.env["ASAN_OPTIONS"] = kLeaveSignalsAlone;
    options.env["TSAN_OPTIONS"] = kLeaveSignalsAlone;
    return options;
  }

  // Runs until the fixture crashes: the trigger appears before invocation `crash_at`.
  Summary run_until_crash(Options options, int crash_at) {
    options.between_invocations = [this, crash_at](int next) {
      if (next == crash_at) std::ofstream{trigger()};  // empty: any batch
    };
    return Emulator(options).run();
  }

  size_t log_lines_with(const std::string& needle) const {
    const auto lines = relay_log();
    return static_cast<size_t>(std::count_if(lines.begin(), lines.end(), [&](const auto& line) {
      return line.find(needle) != std::string::npos;
    }));
  }

  // Every event in the http sink's spool files (each file's payload is the JSON array at its
  // end).
  std::vector<std::string> spooled_events() const {
    std::vector<std::string> events;
    if (!fs::exists(http_spool())) return events;
    for (const auto& entry : fs::directory_iterator(http_spool())) {
      if (entry.path().extension() != ".batch") continue;
      const std::string bytes = read_file(entry.path().string());
      const size_t start = bytes.find("[{");
      const auto in_file = split_event_array(start == std::string::npos ? "" : bytes.substr(start));
      EXPECT_TRUE(in_file) << entry.path();
      if (in_file) events.insert(events.end(), in_file->begin(), in_file->end());
    }
    return events;
  }

  // The events the listener acknowledged before the crash: the emulator posts one batch at a
  // time, in generation order, so they are the first events_delivered of subscriber_events.
  static std::vector<std::string> acknowledged(const Summary& summary) {
    const auto n = std::min<size_t>(summary.events_delivered, summary.subscriber_events.size());
    return {summary.subscriber_events.begin(),
            summary.subscriber_events.begin() + static_cast<std::ptrdiff_t>(n)};
  }

  static size_t count_in(const std::vector<std::string>& events, const std::set<std::string>& in) {
    return static_cast<size_t>(std::count_if(events.begin(), events.end(),
                                             [&](const auto& event) { return in.count(event); }));
  }

  static uint64_t counter(const Poco::JSON::Object::Ptr& summary, const std::string& sink,
                          const std::string& name) {
    if (!summary || !summary->getObject("sinks") || !summary->getObject("sinks")->getObject(sink))
      return 0;
    return summary->getObject("sinks")->getObject(sink)->optValue<uint64_t>(name, 0);
  }

  // The batch id in the crash line; empty when there is none.
  std::string crashed_batch_id() const {
    const std::string marker = "crashed in deliver (SIGSEGV) delivering ";
    for (const auto& line : relay_log()) {
      const size_t at = line.find(marker);
      if (at == std::string::npos) continue;
      const size_t start = at + marker.size();
      return line.substr(start, line.find(':', start) - start);
    }
    return {};
  }

  // How many spool files in `dir` hold `text` (a batch id is stored as is after the header).
  static size_t files_holding(const std::string& dir, const std::string& text) {
    size_t count = 0;
    if (!fs::exists(dir)) return count;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.path().extension() == ".batch" &&
          read_file(entry.path().string()).find(text) != std::string::npos) {
        ++count;
      }
    }
    return count;
  }

  // The process ended by the plugin's SIGSEGV, after one line naming the sink, the call and
  // the batch, and without a summary.
  void expect_crashed_in_deliver(const Summary& crashed) const {
    EXPECT_EQ(crashed.fatal_error, "Extension.Crash");
    EXPECT_EQ(crashed.exit_signal, SIGSEGV);
    EXPECT_EQ(log_lines_with("[relay.crash] sink crashes crashed in deliver (SIGSEGV) delivering "),
              1u);
    EXPECT_TRUE(summary_lines().empty()) << "a crashed process writes no summary";
  }
};

// The collector is down (503) from the start, so the http sink spools every batch before the
// listener acknowledges it; the fixture then crashes in deliver. Nothing acknowledged is lost:
// the next process in the same environment (healthy collector, no trigger) delivers all of it.
TEST_F(CrashTest, WhatTheOtherSinksSpooledSurvivesAPluginCrash) {
  Receiver receiver;
  receiver.start();
  receiver.set_default_status(503);
  Options first = relay_options(6, receiver.url());
  first.env["RELAY_HTTP_FLUSH"] = "continuous";  // its first attempt fails at the first batch
  const Summary crashed = run_until_crash(first, 3);
  ASSERT_NO_FATAL_FAILURE(expect_crashed_in_deliver(crashed));
  EXPECT_LT(crashed.invocations_completed, 6);
  const std::vector<std::string> acked = acknowledged(crashed);
  const std::vector<std::string> spooled = spooled_events();
  ASSERT_GT(acked.size(), 20u);
  const std::set<std::string> on_disk(spooled.begin(), spooled.end());
  EXPECT_EQ(count_in(acked, on_disk), acked.size()) << "acknowledged but only in memory";
  end_run();

  fs::remove(trigger());
  receiver.set_default_status(200);
  const Summary second = Emulator(relay_options(2, receiver.url())).run();
  ASSERT_TRUE(second.clean(2)) << "the next process runs normally";
  const std::vector<std::string> received = receiver.event_texts();
  const std::set<std::string> arrived(received.begin(), received.end());
  EXPECT_EQ(count_in(spooled, arrived), spooled.size()) << "spooled, yet not replayed";
  EXPECT_EQ(count_in(acked, arrived), acked.size());
  EXPECT_EQ(count_in(second.subscriber_events, arrived), second.subscriber_events.size());
  const auto counters = relay_summary();
  EXPECT_EQ(counter(counters, "http", "inherited"), spooled.size());
  EXPECT_EQ(counter(counters, "http", "still_spooled"), 0u);
  EXPECT_EQ(log_lines_with("[relay.crash]"), 0u);
}

// The healthy path's window, made wide: the http sink holds everything in memory (periodic,
// every 10 minutes), so when the fixture crashes, everything acknowledged is lost: nothing was
// spooled, nothing reaches the collector, the next process inherits nothing.
TEST_F(CrashTest, WhatOnlyMemoryHeldIsLost) {
  Receiver receiver;
  receiver.start();
  Options first = relay_options(6, receiver.url());
  first.env["RELAY_HTTP_FLUSH"] = "periodic:600000";
  const Summary crashed = run_until_crash(first, 3);
  ASSERT_NO_FATAL_FAILURE(expect_crashed_in_deliver(crashed));
  const std::vector<std::string> acked = acknowledged(crashed);
  ASSERT_GT(acked.size(), 20u);
  EXPECT_TRUE(spooled_events().empty());
  EXPECT_TRUE(receiver.requests().empty());
  end_run();

  fs::remove(trigger());
  const Summary second = Emulator(relay_options(2, receiver.url())).run();
  ASSERT_TRUE(second.clean(2));
  const std::vector<std::string> received = receiver.event_texts();
  const std::set<std::string> arrived(received.begin(), received.end());
  EXPECT_EQ(count_in(acked, arrived), 0u) << "memory does not outlive the process";
  EXPECT_EQ(count_in(second.subscriber_events, arrived), second.subscriber_events.size());
  EXPECT_EQ(counter(relay_summary(), "http", "inherited"), 0u);
}

// The crash loop: the fixture answers RETRY to everything, so all it received is spooled, and
// crashes on one of those batches. Replayed by the next process, that batch would crash it too,
// and every process after it, each time losing what every sink held in memory. The crash note
// in the fixture's spool folder lets the next process set that batch aside (dead-letter) and
// log it once; then it runs normally.
TEST_F(CrashTest, ABatchThatCrashedItsSinkIsSetAsideByTheNextProcess) {
  Receiver receiver;
  receiver.start();
  Options first = relay_options(6, receiver.url());
  first.env["RELAY_CRASHES_STATUS"] = "retry";
  const Summary crashed = run_until_crash(first, 3);
  ASSERT_NO_FATAL_FAILURE(expect_crashed_in_deliver(crashed));
  const std::string crashes_spool = dir_ + "/spool/crashes";
  const std::string id = crashed_batch_id();
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(files_holding(crashes_spool, id), 1u) << "the batch it crashed on is not spooled";
  ASSERT_TRUE(fs::exists(crashes_spool + "/crashed")) << "no crash note for the next process";
  end_run();

  std::ofstream(trigger()) << id << "\n";  // from now on the fixture crashes on that batch only
  const Summary second = Emulator(relay_options(2, receiver.url())).run();
  ASSERT_TRUE(second.clean(2)) << "crashed again on the same batch";
  EXPECT_EQ(log_lines_with("sink crashes crashed in deliver (SIGSEGV) delivering " + id), 1u)
      << "the next process says once which batch it set aside";
  EXPECT_EQ(log_lines_with("[relay.crash]"), 0u);
  EXPECT_EQ(files_holding(crashes_spool + "/dead-letter", id), 1u);
  EXPECT_EQ(files_holding(crashes_spool, id), 0u) << "still spooled, so replayed again";
}

// A crash during init (here abort() in create) fails the init, named the same way; a plugin's
// exit() in deliver is named too, and ends the process with status 1.
TEST_F(CrashTest, AbortInCreateAndExitInDeliverAreNamed) {
  Receiver receiver;
  receiver.start();
  Options init = relay_options(2, receiver.url());
  init.env["RELAY_CRASHES_CRASH_IN"] = "create";
  init.env["RELAY_CRASHES_HOW"] = "abort";
  const Summary failed_init = Emulator(init).run();
  EXPECT_EQ(failed_init.init_error, "Extension.Crash");
  EXPECT_EQ(failed_init.exit_signal, SIGABRT);
  EXPECT_EQ(log_lines_with("[relay.crash] sink crashes crashed in create (SIGABRT)"), 1u);
  end_run();

  Options exits = relay_options(4, receiver.url());
  exits.env["RELAY_CRASHES_HOW"] = "exit";
  const Summary exited = run_until_crash(exits, 2);
  EXPECT_EQ(exited.fatal_error, "Extension.Crash");
  EXPECT_EQ(exited.exit_code, 1);
  EXPECT_EQ(log_lines_with("[relay.crash] sink crashes called exit() in deliver delivering "), 1u);
}

}  // namespace
}  // namespace relay::emu
