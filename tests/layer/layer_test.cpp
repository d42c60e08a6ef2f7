// The layer zips as Lambda gets them: unzipped into an otherwise empty root (the layers under
// /opt, an empty /tmp, /dev/null, nothing else), the extension run there with chroot(2) by the
// emulator, which stays outside on loopback. Proves the base layer needs nothing from the machine
// it runs on, and that a sink layer stacked on it is loaded and delivers.
//
// Parametrised for any architecture (tests/layer/CMakeLists.txt, relay_add_layer_tests):
//   --layer-dir=DIR   holds telemetry-relay-<version>-<arch>.zip and one
//                     telemetry-relay-sink-stdout-*-<arch>.zip
//   --arch=x86_64|arm64
//   --emulator=FILE   optional user-mode emulator (qemu-aarch64-static), copied into the root and
//                     run as /<its name> /opt/extensions/telemetry-relay
//   --commit=HASH     optional: the commit --version must print (else any 12-hex or unknown)
// Needs root (chroot, mknod): without it the tests fail, they never skip.

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Pipe.h>
#include <Poco/PipeStream.h>
#include <Poco/Process.h>
#include <Poco/StreamCopier.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "emulator.h"
#include "receiver.h"
#include "test_files.h"

namespace relay::emu {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

struct LayerParams {
  std::string layer_dir;
  std::string arch;
  std::string emulator;
  std::string commit;
};
LayerParams g_params;

// Lambda's own value: its folders come before anything a layer sets up, and hold Amazon Linux's
// older glibc and libstdc++.
constexpr const char* kLambdaLibraryPath =
    "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/"
    "lib";

std::string loader_name() {
  return g_params.arch == "arm64" ? "ld-linux-aarch64.so.1" : "ld-linux-x86-64.so.2";
}

struct ProcessResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr, interleaved
};

ProcessResult run(const std::string& program, const std::vector<std::string>& args,
                  const Poco::Process::Env& env = {}) {
  Poco::Pipe output;
  Poco::ProcessHandle handle = Poco::Process::launch(
      program, args, fs::temp_directory_path().string(), nullptr, &output, &output, env);
  Poco::PipeInputStream stream(output);
  ProcessResult result;
  Poco::StreamCopier::copyToString(stream, result.output);
  result.exit_code = handle.wait();
  return result;
}

std::string find_program(const std::string& name) {
  std::string path = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
  path += ":/usr/sbin:/sbin:/usr/bin:/bin";
  size_t begin = 0;
  while (begin <= path.size()) {
    const size_t end = std::min(path.find(':', begin), path.size());
    const fs::path candidate = fs::path(path.substr(begin, end - begin)) / name;
    if (end > begin && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    begin = end + 1;
  }
  return {};
}

// The one file matching `pattern` (a regex on file names) in the layer folder.
std::string one_zip(const std::string& pattern) {
  const std::regex re(pattern);
  std::vector<std::string> found;
  if (fs::is_directory(g_params.layer_dir)) {
    for (const auto& entry : fs::directory_iterator(g_params.layer_dir)) {
      if (std::regex_match(entry.path().filename().string(), re)) found.push_back(entry.path());
    }
  }
  if (found.size() != 1) {
    ADD_FAILURE() << "expected exactly one file matching " << pattern << " in "
                  << g_params.layer_dir << ", found " << found.size();
    return {};
  }
  return found.front();
}

std::string base_zip() {
  return one_zip("telemetry-relay-" + std::string(RELAY_EXPECTED_VERSION) + "-" + g_params.arch +
                 "\\.zip");
}
std::string sink_zip() {
  return one_zip("telemetry-relay-sink-stdout-[0-9A-Za-z.+_-]+-" + g_params.arch + "\\.zip");
}

std::string otlp_zip() {
  return one_zip("telemetry-relay-sink-otlp-" + std::string(RELAY_EXPECTED_VERSION) + "-" +
                 g_params.arch + "\\.zip");
}

std::vector<std::string> zip_entries(const std::string& zip) {
  const ProcessResult listed = run("unzip", {"-Z1", zip});
  EXPECT_EQ(listed.exit_code, 0) << listed.output;
  std::vector<std::string> entries;
  std::istringstream in(listed.output);
  for (std::string line; std::getline(in, line);) entries.push_back(line);
  return entries;
}

struct ElfInfo {
  std::string interpreter;
  std::vector<std::string> rpath;    // DT_RPATH entries
  std::vector<std::string> runpath;  // DT_RUNPATH entries
  std::vector<std::string> needed;
};

ElfInfo read_elf(const fs::path& file) {
  const ProcessResult shown = run("readelf", {"-dlW", file.string()});
  EXPECT_EQ(shown.exit_code, 0) << file << ": " << shown.output;
  ElfInfo info;
  const std::regex interp(R"(Requesting program interpreter: (.*)\])");
  const std::regex dynamic(R"(\((NEEDED|RPATH|RUNPATH)\)\s+[^\[]*\[(.*)\])");
  std::istringstream in(shown.output);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, interp)) info.interpreter = m[1];
    if (!std::regex_search(line, m, dynamic)) continue;
    if (m[1] == "NEEDED") {
      info.needed.push_back(m[2]);
    } else {
      (m[1] == "RPATH" ? info.rpath : info.runpath).push_back(m[2]);
    }
  }
  return info;
}

class LayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(g_params.layer_dir.empty()) << "--layer-dir=DIR is required";
    ASSERT_TRUE(g_params.arch == "x86_64" || g_params.arch == "arm64")
        << "--arch must be x86_64 or arm64, got '" << g_params.arch << "'";
    std::string pattern = (fs::temp_directory_path() / "relay_layer.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    root_ = dir_ / "root";
  }

  void TearDown() override {
    if (HasFailure()) {
      for (const char* name : {"relay.stderr", "relay.stdout"}) {
        if (fs::exists(dir_ / name)) {
          std::cerr << "---- extension " << name << " ----\n"
                    << read_file(dir_ / name) << "---- end ----\n";
        }
      }
    }
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  // The empty root with the given layers unzipped under /opt, in order (later ones on top, as
  // Lambda stacks them). Fails loudly when the machine does not allow it: this proof must run.
  void make_root(const std::vector<std::string>& zips) {
    fs::create_directories(root_ / "opt");
    fs::create_directories(root_ / "dev");
    fs::create_directories(root_ / "tmp");
    fs::permissions(root_ / "tmp", fs::perms::all | fs::perms::sticky_bit);
    const fs::path null = root_ / "dev/null";
    ASSERT_EQ(::mknod(null.c_str(), S_IFCHR | 0666, ::makedev(1, 3)), 0)
        << "mknod " << null << " (1:3) failed: " << std::strerror(errno)
        << "; the layer proof needs root (CAP_MKNOD, chroot)";
    ASSERT_EQ(::chmod(null.c_str(), 0666), 0);
    for (const auto& zip : zips) {
      ASSERT_FALSE(zip.empty());
      const ProcessResult unzipped =
          run("unzip", {"-q", "-o", zip, "-d", (root_ / "opt").string()});
      ASSERT_EQ(unzipped.exit_code, 0) << "unzip " << zip << ": " << unzipped.output;
    }
    if (!g_params.emulator.empty()) {
      const fs::path inside = root_ / fs::path(g_params.emulator).filename();
      fs::copy_file(g_params.emulator, inside);
      fs::permissions(inside,
                      fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    }
    write_wrapper();
  }

  // What the emulator launches: a script named like the extension (Lambda registers it under its
  // file name) that exec's chroot, so the extension keeps this pid for the emulator's signals.
  void write_wrapper() {
    const std::string chroot = find_program("chroot");
    ASSERT_FALSE(chroot.empty()) << "chroot(8) not found";
    fs::create_directories(dir_ / "bin");
    wrapper_ = dir_ / "bin/telemetry-relay";
    std::ofstream script(wrapper_);
    script << "#!/bin/sh\nexec " << chroot << " '" << root_.string() << "' ";
    if (!g_params.emulator.empty()) script << "/" << fs::path(g_params.emulator).filename() << " ";
    script << "/opt/extensions/telemetry-relay \"$@\"\n";
    script.close();
    fs::permissions(wrapper_, fs::perms::owner_all);
  }

  Options relay_options(int invocations) const {
    Options options;
    options.extension_path = wrapper_.string();
    options.invocations = invocations;
    options.logs_per_invoke = 10;
    options.log_bursts = 2;
    options.settle_telemetry_before_events = true;
    // Generous: under a user-mode emulator everything is several times slower.
    options.init_timeout_ms = 60000;
    options.stderr_path = (dir_ / "relay.stderr").string();
    options.stdout_path = (dir_ / "relay.stdout").string();
    options.env["LD_LIBRARY_PATH"] = kLambdaLibraryPath;
    return options;
  }

  // The extension's final `summary {json}` line; null when it never logged one.
  Poco::JSON::Object::Ptr relay_summary() const {
    const std::string marker = "[relay.lifecycle] summary ";
    for (const auto& line : read_lines((dir_ / "relay.stderr").string())) {
      const auto at = line.find(marker);
      if (at == std::string::npos) continue;
      return Poco::JSON::Parser()
          .parse(line.substr(at + marker.size()))
          .extract<Poco::JSON::Object::Ptr>();
    }
    return nullptr;
  }

  static uint64_t sink_counter(const Poco::JSON::Object::Ptr& summary, const std::string& sink,
                               const std::string& counter) {
    return summary->getObject("sinks")->getObject(sink)->getValue<uint64_t>(counter);
  }

  fs::path dir_;
  fs::path root_;
  fs::path wrapper_;
};

// Lambda starts every file directly in /opt/extensions: the base layer has exactly one there,
// executable once unzipped; the sink layer adds nothing but its plugin.
TEST_F(LayerTest, ZipsHaveTheLambdaLayout) {
  const std::string base = base_zip();
  const std::string sink = sink_zip();
  ASSERT_FALSE(base.empty());
  ASSERT_FALSE(sink.empty());

  std::vector<std::string> top_level;
  for (const auto& entry : zip_entries(base)) {
    if (entry.rfind("extensions/", 0) == 0 && entry.find('/', 11) == std::string::npos &&
        entry.size() > 11) {
      top_level.push_back(entry);
    }
  }
  EXPECT_THAT(top_level, ElementsAre("extensions/telemetry-relay"));
  EXPECT_THAT(zip_entries(sink), ElementsAre("extensions/lib/librelay-sink-stdout.so"));

  ASSERT_NO_FATAL_FAILURE(make_root({base, sink}));
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(root_ / "opt/extensions")) {
    if (!entry.is_directory()) files.push_back(entry.path().filename());
  }
  EXPECT_THAT(files, ElementsAre("telemetry-relay"));
  const auto mode = fs::status(root_ / "opt/extensions/telemetry-relay").permissions();
  EXPECT_NE(mode & fs::perms::owner_exec, fs::perms::none) << "the zip lost the execute bit";
  EXPECT_TRUE(fs::is_regular_file(root_ / "opt/extensions/lib/librelay-sink-http.so"));
  EXPECT_TRUE(fs::is_regular_file(root_ / "opt/extensions/lib/librelay-sink-stdout.so"));
  EXPECT_TRUE(fs::is_regular_file(root_ / "opt/telemetry-relay/lib" / loader_name()));
  // The http sink's TLS build is runtime, not a sink: outside the plugin folder.
  EXPECT_TRUE(fs::is_regular_file(root_ / "opt/telemetry-relay/lib/librelay-http-tls.so"));
  EXPECT_FALSE(fs::exists(root_ / "opt/extensions/lib/librelay-http-tls.so"));
}

// The executable runs on the bundled loader with an RPATH (which LD_LIBRARY_PATH does not
// override, unlike RUNPATH), and every library any binary of the layers needs is bundled.
TEST_F(LayerTest, BinariesUseOnlyTheBundledRuntime) {
  ASSERT_NO_FATAL_FAILURE(make_root({base_zip(), sink_zip(), otlp_zip()}));
  const fs::path opt = root_ / "opt";
  const fs::path lib = opt / "telemetry-relay/lib";

  const ElfInfo exe = read_elf(opt / "extensions/telemetry-relay");
  EXPECT_EQ(exe.interpreter, "/opt/telemetry-relay/lib/" + loader_name());
  EXPECT_THAT(exe.rpath, ElementsAre("/opt/telemetry-relay/lib"));
  EXPECT_THAT(exe.runpath, IsEmpty());
  for (const char* plugin :
       {"librelay-sink-http.so", "librelay-sink-stdout.so", "librelay-sink-otlp.so"}) {
    const ElfInfo info = read_elf(opt / "extensions/lib" / plugin);
    EXPECT_THAT(info.rpath, ElementsAre("$ORIGIN/../../telemetry-relay/lib")) << plugin;
    EXPECT_THAT(info.runpath, IsEmpty()) << plugin;
  }
  // Its own folder, whatever LD_LIBRARY_PATH says, for anything it may need there.
  for (const char* tls_build : {"librelay-http-tls.so", "librelay-otlp-tls.so"}) {
    EXPECT_THAT(read_elf(lib / tls_build).rpath, ElementsAre("$ORIGIN")) << tls_build;
  }
  // librelay-sink-http.so itself needs no OpenSSL: that is the TLS build's.
  for (const auto& needed : read_elf(opt / "extensions/lib/librelay-sink-http.so").needed) {
    EXPECT_THAT(needed, ::testing::Not(::testing::AnyOf(HasSubstr("ssl"), HasSubstr("crypto"))));
  }

  std::vector<fs::path> binaries = {opt / "extensions/telemetry-relay"};
  for (const auto& dir : {opt / "extensions/lib", lib}) {
    for (const auto& entry : fs::directory_iterator(dir)) binaries.push_back(entry.path());
  }
  std::set<std::string> missing;
  for (const auto& binary : binaries) {
    const ElfInfo info = read_elf(binary);
    EXPECT_THAT(info.runpath, IsEmpty()) << binary;
    for (const auto& needed : info.needed) {
      if (!fs::is_regular_file(lib / needed))
        missing.insert(binary.filename().string() + " -> " + needed);
    }
  }
  EXPECT_THAT(missing, IsEmpty()) << "libraries needed but not bundled";
}

TEST_F(LayerTest, VersionRunsInAnEmptyRoot) {
  ASSERT_NO_FATAL_FAILURE(make_root({base_zip()}));
  const ProcessResult result =
      run(wrapper_.string(), {"--version"}, {{"LD_LIBRARY_PATH", kLambdaLibraryPath}});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  // "telemetry-relay <version> (commit <12 hex>, <arch>, ...": the commit is the one the layer's
  // build tree was configured at (--commit=, when known: a cross tree is configured apart).
  const std::string commit = g_params.commit.empty() ? "([0-9a-f]{12}|unknown)" : g_params.commit;
  EXPECT_TRUE(std::regex_search(
      result.output,
      std::regex("telemetry-relay " +
                 std::regex_replace(RELAY_EXPECTED_VERSION, std::regex(R"(\.)"), R"(\.)") +
                 R"( \(commit )" + commit + ", " + g_params.arch + "\\b")))
      << result.output;
}

// Broken libraries where Lambda's LD_LIBRARY_PATH points (Amazon Linux keeps its glibc and
// libstdc++ in /lib64 and /usr/lib64): the loader must never look there. With a RUNPATH instead
// of an RPATH it would, and fail on the first of them.
TEST_F(LayerTest, LibrariesOnLambdasLibraryPathAreNeverLoaded) {
  ASSERT_NO_FATAL_FAILURE(make_root({base_zip()}));
  for (const char* dir : {"lib64", "usr/lib64", "var/lang/lib", "opt/lib"}) {
    fs::create_directories(root_ / dir);
    for (const auto& entry : fs::directory_iterator(root_ / "opt/telemetry-relay/lib")) {
      std::ofstream(root_ / dir / entry.path().filename()) << "not a library\n";
    }
  }
  const ProcessResult result =
      run(wrapper_.string(), {"--check"},
          {{"LD_LIBRARY_PATH", kLambdaLibraryPath}, {"DISPATCH_POST_URI", "http://127.0.0.1:9/"}});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("loaded: /opt/extensions/lib/librelay-sink-http.so"));
}

// https: the plain plugin finds the TLS build in the runtime folder (create fails otherwise; the
// first delivery loads it).
TEST_F(LayerTest, HttpsLoadsTheTlsBuildFromTheRuntimeFolder) {
  ASSERT_NO_FATAL_FAILURE(make_root({base_zip()}));
  const ProcessResult result = run(wrapper_.string(), {"--check"},
                                   {{"LD_LIBRARY_PATH", kLambdaLibraryPath},
                                    {"DISPATCH_POST_URI", "https://127.0.0.1:9/"},
                                    {"RELAY_LOG_LEVEL", "debug"}});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("loaded: /opt/extensions/lib/librelay-sink-http.so"));
  EXPECT_THAT(result.output, HasSubstr("/telemetry-relay/lib/librelay-http-tls.so"));
}

// Lines of /proc/<pid>/maps naming a file that contains `part`.
std::vector<std::string> mapped(pid_t pid, const std::string& part) {
  std::vector<std::string> found;
  for (const auto& line : read_lines("/proc/" + std::to_string(pid) + "/maps")) {
    if (line.find(part) != std::string::npos) found.push_back(line);
  }
  return found;
}

// The issue's proof: register, subscribe, receive telemetry over several invocations, deliver it
// all to a collector outside the root, and exit cleanly at SHUTDOWN with nothing lost.
TEST_F(LayerTest, ExtensionRunsInAnEmptyRootAndDelivers) {
  ASSERT_NO_FATAL_FAILURE(make_root({base_zip()}));
  Receiver receiver;
  receiver.start();
  Options options = relay_options(4);
  options.env["DISPATCH_POST_URI"] = receiver.url() + "/telemetry";  // 127.0.0.1: no /etc/hosts
  // http:// maps no OpenSSL: neither libssl/libcrypto nor the http sink's TLS build (which links
  // them), checked in the running extension after its first invocation.
  std::vector<std::string> plugin_maps, tls_maps;
  Emulator* running = nullptr;
  options.between_invocations = [&](int next) {
    if (next != 2 || running == nullptr) return;
    plugin_maps = mapped(running->extension_pid(), "librelay-sink-http.so");
    for (const char* part : {"libssl", "libcrypto", "librelay-http-tls"}) {
      for (auto& line : mapped(running->extension_pid(), part)) tls_maps.push_back(line);
    }
  };
  Emulator emulator(options);
  running = &emulator;
  const Summary summary = emulator.run();
  EXPECT_THAT(plugin_maps, ::testing::Not(IsEmpty())) << "the maps check saw no http sink";
  EXPECT_THAT(tls_maps, IsEmpty()) << "an http:// run mapped OpenSSL";

  ASSERT_TRUE(summary.registered);
  EXPECT_EQ(summary.extension_name, "telemetry-relay");
  EXPECT_EQ(summary.subscribe_status, 200);
  ASSERT_TRUE(summary.clean(4)) << "init_error=" << summary.init_error
                                << " fatal=" << summary.fatal_error
                                << " exit_code=" << summary.exit_code;
  EXPECT_GT(summary.freezes, 0) << "the emulator's signals reach the extension through chroot";
  ASSERT_GT(summary.events_for_subscriber, 0u);
  const DeliveryCheck check = check_delivery(summary.subscriber_events, receiver.event_texts());
  EXPECT_TRUE(check.exact()) << "missing " << check.missing << " duplicates " << check.duplicates
                             << " unexpected " << check.unexpected;
  const auto relay = relay_summary();
  ASSERT_TRUE(relay) << "no summary line";
  EXPECT_EQ(relay->getValue<uint64_t>("received_events"), summary.events_for_subscriber);
  EXPECT_EQ(sink_counter(relay, "http", "received"), summary.events_for_subscriber);
  EXPECT_EQ(sink_counter(relay, "http", "delivered"), summary.events_for_subscriber);
}

// Base layer plus the stdout sink layer in one root, both sinks enabled: both deliver everything.
TEST_F(LayerTest, StackedSinkLayerDeliversBesideHttp) {
  ASSERT_NO_FATAL_FAILURE(make_root({base_zip(), sink_zip()}));
  Receiver receiver;
  receiver.start();
  Options options = relay_options(3);
  options.env["DISPATCH_POST_URI"] = receiver.url();
  options.env["RELAY_SINKS"] = "http,stdout";
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(3)) << "init_error=" << summary.init_error
                                << " exit_code=" << summary.exit_code;
  ASSERT_GT(summary.events_for_subscriber, 0u);
  EXPECT_TRUE(check_delivery(summary.subscriber_events, receiver.event_texts()).exact());

  // The example sink writes "batch: <n> events, <m> bytes" per delivery to its output stream.
  uint64_t stdout_events = 0;
  const std::regex batch_line(R"(batch: (\d+) events)");
  for (const char* name : {"relay.stdout", "relay.stderr"}) {
    for (const auto& line : read_lines((dir_ / name).string())) {
      std::smatch m;
      if (std::regex_search(line, m, batch_line)) stdout_events += std::stoull(m[1]);
    }
  }
  EXPECT_EQ(stdout_events, summary.events_for_subscriber);
  const auto relay = relay_summary();
  ASSERT_TRUE(relay) << "no summary line";
  for (const char* sink : {"http", "stdout"}) {
    EXPECT_EQ(sink_counter(relay, sink, "received"), summary.events_for_subscriber) << sink;
    EXPECT_EQ(sink_counter(relay, sink, "delivered"), summary.events_for_subscriber) << sink;
  }
}

// The otlp sink's layer holds its plugin and its TLS build; stacked on the base layer in an
// empty root, with RELAY_SINKS=http,otlp, both sinks deliver everything (the otlp sink to the
// three OTLP paths of a local collector).
TEST_F(LayerTest, OtlpSinkLayerExportsBesideHttp) {
  const std::string otlp = otlp_zip();
  ASSERT_FALSE(otlp.empty());
  EXPECT_THAT(zip_entries(otlp),
              ::testing::UnorderedElementsAre("extensions/lib/librelay-sink-otlp.so",
                                              "telemetry-relay/lib/librelay-otlp-tls.so"));
  ASSERT_NO_FATAL_FAILURE(make_root({base_zip(), otlp}));
  Receiver http;
  http.start();
  Receiver collector;
  collector.start();
  Options options = relay_options(3);
  options.env["DISPATCH_POST_URI"] = http.url();
  options.env["RELAY_SINKS"] = "http,otlp";
  options.env["RELAY_OTLP_ENDPOINT"] = collector.url();
  const Summary summary = Emulator(options).run();

  ASSERT_TRUE(summary.clean(3)) << "init_error=" << summary.init_error
                                << " exit_code=" << summary.exit_code;
  ASSERT_GT(summary.events_for_subscriber, 0u);
  EXPECT_TRUE(check_delivery(summary.subscriber_events, http.event_texts()).exact());
  std::set<std::string> paths;
  for (const auto& request : collector.requests()) {
    paths.insert(request.uri);
    EXPECT_EQ(request.header("Content-Type"), "application/x-protobuf");
  }
  EXPECT_THAT(paths, ElementsAre("/v1/logs", "/v1/metrics", "/v1/traces"));
  const auto relay = relay_summary();
  ASSERT_TRUE(relay) << "no summary line";
  for (const char* sink : {"http", "otlp"}) {
    EXPECT_EQ(sink_counter(relay, sink, "received"), summary.events_for_subscriber) << sink;
    EXPECT_EQ(sink_counter(relay, sink, "delivered"), summary.events_for_subscriber) << sink;
  }
}

}  // namespace
}  // namespace relay::emu

int main(int argc, char** argv) {
  ::testing::InitGoogleMock(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = arg.substr(arg.find('=') + 1);
    if (arg.rfind("--layer-dir=", 0) == 0) {
      relay::emu::g_params.layer_dir = std::filesystem::absolute(value).string();
    } else if (arg.rfind("--arch=", 0) == 0) {
      relay::emu::g_params.arch = value;
    } else if (arg.rfind("--commit=", 0) == 0) {
      relay::emu::g_params.commit = value;
    } else if (arg.rfind("--emulator=", 0) == 0) {
      relay::emu::g_params.emulator = std::filesystem::absolute(value).string();
    } else {
      std::cerr << "layer_test: unknown argument " << arg << "\n";
      return 2;
    }
  }
  return RUN_ALL_TESTS();
}
