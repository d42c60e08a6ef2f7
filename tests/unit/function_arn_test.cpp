#include "function_arn.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>

namespace {

// One process-wide value: this binary holds only this test, so the order below is the story.
TEST(FunctionArn, TheFirstNonEmptyArnIsKeptAndReadableFromOtherThreads) {
  EXPECT_TRUE(relay::function_arn().empty());
  relay::publish_function_arn("");
  EXPECT_TRUE(relay::function_arn().empty());
  relay::publish_function_arn("arn:aws:lambda:eu-west-1:123456789012:function:f:prod");
  relay::publish_function_arn("arn:aws:lambda:eu-west-1:123456789012:function:f:7");
  std::string seen;
  std::thread reader([&] { seen = std::string(relay::function_arn()); });
  reader.join();
  EXPECT_EQ(seen, "arn:aws:lambda:eu-west-1:123456789012:function:f:prod");
}

}  // namespace
