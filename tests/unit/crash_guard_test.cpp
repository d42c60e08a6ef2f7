// A plugin that crashes the process (a fault, abort(), exit()) cannot be survived, but the host
// must say which sink did it and in which call, still end by the same signal, and leave the
// next process a note of the batch it crashed on. Each crash runs in a gtest death-test child.
#include "crash_guard.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "plugin_loader.h"
#include "sink.h"

// Under a sanitizer the crashes must reach the host's handlers and then the default action, not
// the sanitizer's reports (ASAN_OPTIONS in the environment only adds to these). Exported: the
// sanitizer runtime looks them up by name.
#define RELAY_EXPORTED __attribute__((visibility("default"), used))
extern "C" RELAY_EXPORTED const char* __asan_default_options() {
  return "handle_segv=0:handle_sigbus=0:handle_abort=0:handle_sigill=0:handle_sigfpe=0";
}
extern "C" RELAY_EXPORTED const char* __tsan_default_options() {
  return "handle_segv=0:handle_sigbus=0:handle_abort=0:handle_sigill=0:handle_sigfpe=0";
}

namespace relay {
namespace {

namespace fs = std::filesystem;
using ::testing::ExitedWithCode;
using ::testing::KilledBySignal;

const std::string kFixtures = RELAY_FIXTURE_PLUGIN_DIR;

SinkPtr load_crashing_sink(const std::string& crash_in, const std::string& how) {
  LoadResult result = load_sink(kFixtures, "crashes", {{"crash_in", crash_in}, {"how", how}});
  if (!result.sink) {
    ADD_FAILURE() << result.message;
    std::abort();
  }
  return std::move(result.sink);
}

void deliver_batch(Sink& sink, const std::string& batch_id) {
  Delivery delivery;
  delivery.batch_id = batch_id;
  delivery.json = "[]";
  sink.deliver(delivery, 4102444800000);
}

// The line the host writes before the process ends; a POSIX extended regex.
std::string crash_line(const std::string& call, const std::string& signal) {
  return "telemetry-relay Fatal \\[relay\\.crash\\] sink crashes crashed in " + call + " \\(" +
         signal + "\\)";
}

TEST(CrashGuardDeathTest, FaultInDeliverNamesTheSinkTheCallAndTheBatch) {
  EXPECT_EXIT(deliver_batch(*load_crashing_sink("deliver", "segv"), "batch-7"),
              KilledBySignal(SIGSEGV), crash_line("deliver", "SIGSEGV") + " delivering batch-7");
}

TEST(CrashGuardDeathTest, AbortInDeliverEndsBySigabrt) {
  EXPECT_EXIT(deliver_batch(*load_crashing_sink("deliver", "abort"), "batch-8"),
              KilledBySignal(SIGABRT), crash_line("deliver", "SIGABRT") + " delivering batch-8");
}

TEST(CrashGuardDeathTest, ExitInDeliverIsNamedAndEndsWithFailure) {
  EXPECT_EXIT(deliver_batch(*load_crashing_sink("deliver", "exit"), "batch-9"), ExitedWithCode(1),
              "\\[relay\\.crash\\] sink crashes called exit\\(\\) in deliver delivering batch-9");
}

TEST(CrashGuardDeathTest, FaultInEntryCreateFlushAndDestroyIsNamed) {
  EXPECT_EXIT(
      {
        setenv("RELAY_CRASHES_CRASH_IN", "entry", 1);
        load_sink(kFixtures, "crashes", {});
      },
      KilledBySignal(SIGSEGV), crash_line("entry", "SIGSEGV"));
  EXPECT_EXIT(load_sink(kFixtures, "crashes", {{"crash_in", "create"}}), KilledBySignal(SIGSEGV),
              crash_line("create", "SIGSEGV"));
  EXPECT_EXIT(load_crashing_sink("flush", "segv")->flush(4102444800000), KilledBySignal(SIGSEGV),
              crash_line("flush", "SIGSEGV"));
  EXPECT_EXIT(load_crashing_sink("destroy", "abort").reset(), KilledBySignal(SIGABRT),
              crash_line("destroy", "SIGABRT"));
}

class CrashMarkerDeathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "relay_crash.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

// What the next process reads: the sink, the call, the cause and the batch; read only once.
TEST_F(CrashMarkerDeathTest, FaultInDeliverLeavesTheBatchForTheNextProcess) {
  EXPECT_EXIT(
      {
        SinkPtr sink = load_crashing_sink("deliver", "segv");
        record_crashes_in("crashes", dir_);
        deliver_batch(*sink, "batch-7");
      },
      KilledBySignal(SIGSEGV), crash_line("deliver", "SIGSEGV"));
  const std::optional<CrashRecord> record = read_and_clear_crash_marker(dir_);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->sink, "crashes");
  EXPECT_EQ(record->call, "deliver");
  EXPECT_EQ(record->cause, "SIGSEGV");
  EXPECT_EQ(record->batch_id, "batch-7");
  EXPECT_EQ(record->describe(), "sink crashes crashed in deliver (SIGSEGV) delivering batch-7");
  EXPECT_FALSE(read_and_clear_crash_marker(dir_)) << "read twice";
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(CrashMarkerDeathTest, ExitInCreateIsRecordedAsExit) {
  EXPECT_EXIT(
      {
        record_crashes_in("crashes", dir_);
        load_sink(kFixtures, "crashes", {{"crash_in", "create"}, {"how", "exit"}});
      },
      ExitedWithCode(1), "sink crashes called exit\\(\\) in create");
  const std::optional<CrashRecord> record = read_and_clear_crash_marker(dir_);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->describe(), "sink crashes called exit() in create");
  EXPECT_EQ(record->batch_id, "");
}

// A batch id is bounded and kept to printable ASCII, in the line and in the marker.
TEST_F(CrashMarkerDeathTest, HostileBatchIdIsBoundedAndPrintable) {
  const std::string id = "evil\nline" + std::string(300, 'x');
  EXPECT_EXIT(
      {
        install_crash_guard();
        record_crashes_in("guarded", dir_);
        PluginCallScope call(crash_site("guarded"), PluginCall::kDeliver, id);
        std::raise(SIGSEGV);
      },
      KilledBySignal(SIGSEGV), "crashed in deliver \\(SIGSEGV\\) delivering evil\\?linex+:");
  const std::optional<CrashRecord> record = read_and_clear_crash_marker(dir_);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->batch_id, "evil?line" + std::string(128 - 9, 'x'));
}

TEST_F(CrashMarkerDeathTest, TornOrForeignMarkersAreIgnoredAndRemoved) {
  for (const std::string& content :
       {std::string("telemetry-relay crash 1\ncrashes\ndeliver\nSIGSEGV\n"),
        std::string("telemetry-relay crash 1\ncrashes\ndeliver\nSIGSEGV\nbatch\nmore\n"),
        std::string("something else\ncrashes\ndeliver\nSIGSEGV\nbatch\n"),
        std::string("telemetry-relay crash 1\n\ndeliver\nSIGSEGV\nbatch\n"),
        std::string(100000, 'x')}) {
    std::ofstream(crash_marker_path(dir_)) << content;
    EXPECT_FALSE(read_and_clear_crash_marker(dir_)) << content.substr(0, 80);
    EXPECT_FALSE(fs::exists(crash_marker_path(dir_)));
  }
}

// A crash of the host itself (or of a thread a plugin started) is named as such; no marker.
TEST_F(CrashMarkerDeathTest, FaultOutsideAPluginCallIsNamedAsSuch) {
  EXPECT_EXIT(
      {
        install_crash_guard();
        record_crashes_in("guarded", dir_);
        std::raise(SIGBUS);
      },
      KilledBySignal(SIGBUS), "fatal signal SIGBUS on a thread outside any plugin call");
  EXPECT_FALSE(read_and_clear_crash_marker(dir_));
}

// The host's own exits are not a plugin's: nothing logged, the status kept.
TEST(CrashGuardDeathTest, ExitOutsideAPluginCallIsLeftAlone) {
  EXPECT_EXIT(
      {
        install_crash_guard();
        std::exit(7);
      },
      ExitedWithCode(7), "^$");
}

// Deep enough to overflow any thread stack; the volatile keeps every frame.
[[gnu::noinline]] int recurse(int depth) {
  volatile char frame[1024] = {};
  frame[0] = static_cast<char>(depth);
  return depth < 0 ? frame[0] : recurse(depth + 1) + frame[0];
}

// A stack overflow faults on the stack: the handler still runs, on its own stack.
TEST(CrashGuardDeathTest, StackOverflowInAPluginCallIsNamed) {
  EXPECT_EXIT(
      {
        install_crash_guard();
        PluginCallScope call(crash_site("deep"), PluginCall::kFlush);
        recurse(1);
      },
      KilledBySignal(SIGSEGV), "sink deep crashed in flush \\(SIGSEGV\\)");
}

}  // namespace
}  // namespace relay
