// A sink's configuration issues in the running extension (the emulator drives the real binary):
// one error line each, a declared secret in none of them, and under RELAY_STRICT an init error
// Extension.ConfigInvalid that names the variable but not a secret value.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "emulator.h"

namespace relay::emu {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecret[] = "dsn-s3cr3t-value";

class ConfigStrictTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "relay_config_strict.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // One invocation with the keyed fixture sink: count out of range, an undeclared key, and the
  // secret dsn with a control character (so invalid, and quoted in an issue if anything is).
  Options options(bool strict) const {
    Options o;
    o.extension_path = RELAY_BINARY;
    o.invocations = 1;
    o.stderr_path = dir_ + "/relay.stderr";
    o.stdout_path = dir_ + "/relay.stdout";
    o.env["RELAY_SPOOL_DIR"] = dir_ + "/spool";
    o.env["RELAY_PLUGIN_DIR"] = RELAY_FIXTURE_PLUGIN_DIR;
    o.env["RELAY_SINKS"] = "keyed";
    o.env["RELAY_KEYED_COUNT"] = "500";
    o.env["RELAY_KEYED_TYPO"] = "1";
    o.env["RELAY_KEYED_DSN"] = std::string(kSecret) + "\x01";
    o.env["RELAY_STRICT"] = strict ? "true" : "false";
    return o;
  }
  std::string log() const {
    std::ifstream in(dir_ + "/relay.stderr");
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  std::string dir_;
};

TEST_F(ConfigStrictTest, EachSinkKeyIssueIsOneErrorLineWithoutTheSecret) {
  const Summary summary = Emulator(options(false)).run();
  EXPECT_TRUE(summary.init_ok);
  EXPECT_TRUE(summary.error_calls.empty());
  const std::string text = log();
  EXPECT_THAT(text,
              HasSubstr("RELAY_KEYED_COUNT=500: not an integer in [1, 100]; using 5 instead"));
  EXPECT_THAT(text, HasSubstr("RELAY_KEYED_TYPO=1: not a key of the keyed sink"));
  EXPECT_THAT(text, HasSubstr("RELAY_KEYED_DSN=<redacted>: text with control characters"));
  EXPECT_THAT(text, Not(HasSubstr(kSecret)));
}

TEST_F(ConfigStrictTest, UnderStrictASinkKeyIssueIsAnInitErrorWithoutTheSecret) {
  Options o = options(true);
  o.env.erase("RELAY_KEYED_COUNT");
  o.env.erase("RELAY_KEYED_TYPO");
  const Summary summary = Emulator(o).run();
  EXPECT_FALSE(summary.init_ok);
  ASSERT_EQ(summary.error_calls.size(), 1u);
  EXPECT_EQ(summary.error_calls[0].path, "init/error");
  EXPECT_EQ(summary.error_calls[0].error_type, "Extension.ConfigInvalid");
  EXPECT_THAT(summary.error_calls[0].body, HasSubstr("RELAY_KEYED_DSN=<redacted>"));
  EXPECT_THAT(summary.error_calls[0].body, Not(HasSubstr(kSecret)));
  EXPECT_THAT(log(), Not(HasSubstr(kSecret)));
  EXPECT_NE(summary.exit_code, 0);
}

}  // namespace
}  // namespace relay::emu
