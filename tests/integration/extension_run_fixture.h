// What the integration and fault suites share: a test-owned folder, the extension's stderr there,
// the sanitizer check of that log, plugin folders made of symlinks, and the `summary` lines.
#pragma once

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "emulator.h"
#include "test_files.h"

namespace relay::emu {

class ExtensionRunFixture : public ::testing::Test {
 protected:
  explicit ExtensionRunFixture(std::string dir_prefix) : dir_prefix_(std::move(dir_prefix)) {}

  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / (dir_prefix_ + ".XXXXXX")).string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }

  void TearDown() override {
    check_sanitizers();
    if (HasFailure()) {
      std::cerr << "---- extension stderr (" << stderr_path() << ") ----\n"
                << read_file(stderr_path()) << "---- end ----\n";
    }
    std::filesystem::remove_all(dir_);
  }

  std::string stderr_path() const { return dir_ + "/relay.stderr"; }

  // The real binary (RELAY_BINARY, defined per test target) with its output and its own spool
  // in this test's folder (tests run in parallel: a shared spool would be replayed by another);
  // the extension holds what was generated when each event arrives, 10 log lines per invocation.
  Options extension_options(int invocations) const {
    Options options;
    options.settle_telemetry_before_events = true;
    options.extension_path = RELAY_BINARY;
    options.invocations = invocations;
    options.logs_per_invoke = 10;
    options.stderr_path = stderr_path();
    options.stdout_path = dir_ + "/relay.stdout";
    options.env["RELAY_SPOOL_DIR"] = dir_ + "/spool";
    return options;
  }
  std::vector<std::string> relay_log() const { return read_lines(stderr_path()); }

  // The record fixture sink alone (RECORD_PLUGIN: its file), its batches in record.jsonl and one
  // line per call (create, deliver <id>, flush, destroy) in calls_path().
  void use_record_sink(Options& options, const std::string& record_plugin) const {
    options.env["RELAY_PLUGIN_DIR"] = plugin_dir({record_plugin});
    options.env["RELAY_SINKS"] = "record";
    options.env["RELAY_RECORD_PATH"] = dir_ + "/record.jsonl";
    options.env["RELAY_RECORD_CALLS"] = calls_path();
  }
  std::string calls_path() const { return dir_ + "/record.calls"; }

  // Under -fsanitize the extension reports there; UBSan does not even change its exit code.
  void check_sanitizers() const {
    for (const auto& line : relay_log()) {
      if (line.find("runtime error:") != std::string::npos ||
          line.find("Sanitizer") != std::string::npos) {
        ADD_FAILURE() << "sanitizer report in the extension's stderr: " << line;
      }
    }
  }

  // Between two extension processes of one test: each writes a fresh log.
  void end_run() const {
    check_sanitizers();
    if (HasFailure()) std::cerr << "---- extension stderr ----\n" << read_file(stderr_path());
    std::filesystem::remove(stderr_path());
  }

  // A plugin folder holding exactly these plugin files (symlinked), as a layer stack would.
  std::string plugin_dir(const std::vector<std::string>& plugins) const {
    const std::string dir = dir_ + "/plugins";
    std::filesystem::create_directories(dir);
    for (const auto& plugin : plugins) {
      const auto link = std::filesystem::path(dir) / std::filesystem::path(plugin).filename();
      if (!std::filesystem::exists(link)) std::filesystem::create_symlink(plugin, link);
    }
    return dir;
  }

  // The extension's `summary {json}` lines: one per invocation at debug, then the final one.
  std::vector<std::string> summary_lines() const {
    const std::string marker = "[relay.lifecycle] summary ";
    std::vector<std::string> found;
    for (const auto& line : relay_log()) {
      const auto at = line.find(marker);
      if (at != std::string::npos) found.push_back(line.substr(at + marker.size()));
    }
    return found;
  }

  // The extension's final `summary {json}` line; null when it never logged one.
  Poco::JSON::Object::Ptr relay_summary() const {
    const auto lines = summary_lines();
    if (lines.empty()) return nullptr;
    return Poco::JSON::Parser().parse(lines.back()).extract<Poco::JSON::Object::Ptr>();
  }

  std::string dir_;

 private:
  std::string dir_prefix_;
};

}  // namespace relay::emu
