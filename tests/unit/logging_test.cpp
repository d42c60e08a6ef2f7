#include "logging.h"

#include <gtest/gtest.h>

namespace relay {
namespace {

TEST(OneLine, AnswerBodiesCannotBreakALogLineOrFloodIt) {
  EXPECT_EQ(one_line("{\"errorType\":\"X\"}\n"), "{\"errorType\":\"X\"}");
  EXPECT_EQ(one_line("a\r\nb\tc\x1b[31m"), "a  b c [31m");
  EXPECT_EQ(one_line("  padded  "), "padded");
  EXPECT_EQ(one_line(std::string(600, 'x'), 512), std::string(512, 'x') + "...");
  EXPECT_EQ(one_line(""), "");
  EXPECT_EQ(one_line("\n\n"), "");
}

}  // namespace
}  // namespace relay
