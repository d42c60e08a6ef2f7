#include "logging.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <iostream>
#include <sstream>

namespace relay {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(OneLine, AnswerBodiesCannotBreakALogLineOrFloodIt) {
  EXPECT_EQ(one_line("{\"errorType\":\"X\"}\n"), "{\"errorType\":\"X\"}");
  EXPECT_EQ(one_line("a\r\nb\tc\x1b[31m"), "a  b c [31m");
  EXPECT_EQ(one_line("  padded  "), "padded");
  EXPECT_EQ(one_line(std::string(600, 'x'), 512), std::string(512, 'x') + "...");
  EXPECT_EQ(one_line(""), "");
  EXPECT_EQ(one_line("\n\n"), "");
}

TEST(EscapeForLog, ControlCharactersAndLineBreaksBecomeEscapes) {
  EXPECT_EQ(escape_for_log("plain text"), "plain text");
  EXPECT_EQ(escape_for_log("a\nb\r\tc\x1b[31m\x7f"), "a\\nb\\r\\tc\\x1b[31m\\x7f");
  EXPECT_EQ(escape_for_log(std::string("nul\0byte", 8)), "nul\\x00byte");
  EXPECT_EQ(escape_for_log("nel\xc2\x85ls\xe2\x80\xa8ps\xe2\x80\xa9"),
            "nel\\u0085ls\\u2028ps\\u2029");
  EXPECT_EQ(escape_for_log("caf\xc3\xa9 \xe2\x82\xac"), "caf\xc3\xa9 \xe2\x82\xac");  // kept
}

TEST(EscapeForLog, LongTextIsCutOnACharacterBoundaryWithItsSize) {
  EXPECT_EQ(escape_for_log(std::string(20, 'x'), 8), "xxxxxxxx...(20 bytes)");
  EXPECT_EQ(escape_for_log(std::string(8, 'x'), 8), "xxxxxxxx");
  // "\xc3\xa9" is one character: never half of it.
  EXPECT_EQ(escape_for_log("abc\xc3\xa9z", 4), "abc...(6 bytes)");
  // An escape is kept whole or not at all.
  EXPECT_EQ(escape_for_log("ab\ncd", 3), "ab...(5 bytes)");
  const std::string huge(50u << 20, 'v');
  EXPECT_LE(escape_for_log(huge).size(), kMaxLogMessageBytes + 32);
}

// Captures what the configured root channel writes to stderr.
class StderrCapture {
 public:
  StderrCapture() : saved_(std::cerr.rdbuf(captured_.rdbuf())) {}
  ~StderrCapture() { std::cerr.rdbuf(saved_); }
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;
  std::string text() const { return captured_.str(); }

 private:
  std::ostringstream captured_;
  std::streambuf* saved_;
};

TEST(Logging, NoMessageCanForgeALineOrFloodTheLog) {
  StderrCapture capture;
  configure_logging("info");
  // What a plugin hands relay_host.log, or a configuration value quoted in an issue.
  logger("sink.evil").error("boom\ntelemetry-relay Information [lifecycle] summary {\"forged\":1}");
  const std::string written = capture.text();
  EXPECT_EQ(std::count(written.begin(), written.end(), '\n'), 1) << written;
  EXPECT_THAT(written,
              StartsWith("telemetry-relay Error [relay.sink.evil] boom\\ntelemetry-relay"));

  StderrCapture flood;
  logger("config").error("RELAY_X=" + std::string(50u << 20, 'v'));
  const std::string line = flood.text();
  EXPECT_LT(line.size(), kMaxLogMessageBytes + 128);
  EXPECT_THAT(line, EndsWith("...(52428808 bytes)\n"));
}

TEST(Logging, TheSummaryLineIsWrittenWhole) {
  StderrCapture capture;
  configure_logging("info");
  // JSON as the pipeline writes it: no control characters, and below the message bound.
  const std::string summary =
      "{\"sinks\":{\"http\":{\"received\":" + std::string(20000, '1') + "}}}";
  logger("lifecycle").information("summary %s", summary);
  EXPECT_THAT(capture.text(), HasSubstr("summary " + summary + "\n"));
}

}  // namespace
}  // namespace relay
