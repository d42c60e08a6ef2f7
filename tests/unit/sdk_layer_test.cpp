// The header-only C++ layer on its own: config lookup, views, error text and the generated entry.
#include <gtest/gtest.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <telemetry_relay/sink.hpp>
#include <telemetry_relay/testing.hpp>
#include <vector>

namespace {

namespace sdk = relay::sdk;
namespace sdk_testing = relay::sdk::testing;

relay_str str(const char* s) { return relay_str{s, std::strlen(s)}; }

TEST(SdkConfig, LooksUpKeysAndTheLastDuplicateWins) {
  relay_kv kvs[] = {{str("a"), str("1")}, {str("empty"), str("")}, {str("a"), str("2")}};
  sdk::Config config(kvs, 3);
  EXPECT_EQ(config.get("a"), "2");
  EXPECT_EQ(config.get("empty"), "");
  EXPECT_EQ(config.get("missing"), std::nullopt);
  EXPECT_EQ(config.get_or("missing", "fallback"), "fallback");
  EXPECT_EQ(config.get_or("empty", "fallback"), "");
  EXPECT_EQ(sdk::Config().get("a"), std::nullopt);
}

TEST(SdkConfig, GetIntChecksSyntaxAndRange) {
  relay_kv kvs[] = {{str("n"), str("42")},    {str("neg"), str("-3")}, {str("big"), str("70000")},
                    {str("text"), str("4x")}, {str("empty"), str("")}, {str("space"), str(" 1")}};
  sdk::Config config(kvs, 6);
  EXPECT_EQ(config.get_int("n", 0, 1, 100), 42);
  EXPECT_EQ(config.get_int("missing", 7, 1, 100), 7);
  EXPECT_EQ(config.get_int("empty", 7, 1, 100), 7);
  EXPECT_EQ(config.get_int("neg", 0, -10, 10), -3);
  try {
    config.get_int("big", 0, 1, 60000);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "big=70000 is out of range: expected an integer in [1, 60000]");
  }
  EXPECT_THROW(config.get_int("text", 0, 1, 100), std::invalid_argument);
  EXPECT_THROW(config.get_int("space", 0, 1, 100), std::invalid_argument);
}

TEST(SdkConfig, WithPrefixListsEachKeyOnce) {
  relay_kv kvs[] = {{str("header_a"), str("1")},
                    {str("post_uri"), str("x")},
                    {str("header_b"), str("2")},
                    {str("header_a"), str("3")}};
  sdk::Config config(kvs, 4);
  auto headers = config.with_prefix("header_");
  ASSERT_EQ(headers.size(), 2u);
  EXPECT_EQ(headers[0].key, "header_b");
  EXPECT_EQ(headers[0].value, "2");
  EXPECT_EQ(headers[1].key, "header_a");
  EXPECT_EQ(headers[1].value, "3");
}

TEST(SdkWriteError, TruncatesWithoutSplittingUtf8AndAlwaysTerminates) {
  char buffer[8];
  relay_error err{buffer, sizeof(buffer)};
  sdk::detail::write_error(&err, "short");
  EXPECT_STREQ(buffer, "short");
  sdk::detail::write_error(&err, "0123456789");
  EXPECT_STREQ(buffer, "0123456");
  sdk::detail::write_error(&err, "012345\xC3\xA9");  // é would straddle the last byte
  EXPECT_STREQ(buffer, "012345");
  relay_error one{buffer, 1};
  sdk::detail::write_error(&one, "anything");
  EXPECT_STREQ(buffer, "");
  sdk::detail::write_error(nullptr, "ignored");
  relay_error none{nullptr, 16};
  sdk::detail::write_error(&none, "ignored");
}

TEST(SdkBatch, ViewsEventsAndJsonAsBuilt) {
  sdk_testing::BatchBuilder builder;
  builder.add(R"({"time":"t1","type":"platform.report","record":{"metrics":{"durationMs":1.5}}})")
      .add(R"( { "record" : "line \"quoted\"" , "type":"function", "time":"t2" } )");
  sdk::Batch batch(builder.build());
  ASSERT_EQ(batch.size(), 2u);
  EXPECT_EQ(batch.json().front(), '[');
  EXPECT_EQ(batch[0].type(), "platform.report");
  EXPECT_EQ(batch[0].time(), "t1");
  EXPECT_EQ(batch[0].record(), R"({"metrics":{"durationMs":1.5}})");
  EXPECT_EQ(batch[1].type(), "function");
  EXPECT_EQ(batch[1].record(), R"("line \"quoted\"")");
  std::vector<std::string_view> types;
  for (sdk::Event event : batch) {
    types.push_back(event.type());
  }
  EXPECT_EQ(types, (std::vector<std::string_view>{"platform.report", "function"}));
  EXPECT_EQ(std::string(batch.json()),
            "[" + std::string(batch[0].json()) + "," + std::string(batch[1].json()) + "]");
}

TEST(SdkBatch, FieldsBeyondStructSizeAreNotRead) {
  relay_event event{str("{}"), str("t"), str(""), str("{}")};
  relay_batch raw{offsetof(relay_batch, json), &event, 1, str("[{}]"), {}, nullptr, str("arn")};
  sdk::Batch batch(raw);
  EXPECT_EQ(batch.size(), 1u);
  EXPECT_TRUE(batch.json().empty());
  EXPECT_TRUE(batch.function_arn().empty());
  raw.struct_size = sizeof(relay_batch);
  EXPECT_EQ(sdk::Batch(raw).function_arn(), "arn");
}

TEST(SdkDeadline, RemainingIsNeverNegative) {
  EXPECT_EQ(sdk::Deadline(0).remaining().count(), 0);
  EXPECT_TRUE(sdk::Deadline(0).expired());
  auto later = sdk::Deadline::in(std::chrono::hours(1));
  EXPECT_GT(later.remaining(), std::chrono::minutes(59));
  EXPECT_FALSE(later.expired());
}

// A sink compiled into this test, through the same macro plugins use.
class EchoSink final : public sdk::Sink {
 public:
  EchoSink(const sdk::Host& host, const sdk::Config& config)
      : host_(host), status_(config.get_or("status", "ok")) {
    host_.info("created on host " + std::string(host_.version()));
  }
  sdk::Status deliver(const sdk::Batch& batch, sdk::Deadline) override {
    host_.debug("got " + std::to_string(batch.size()));
    if (status_ == "retry") {
      return fail(sdk::Status::kRetry, "try later");
    }
    if (status_ == "silent_drop") {
      return sdk::Status::kDrop;
    }
    if (status_ == "partial") {
      return partially_rejected(batch.size() - 1);
    }
    if (status_ == "bogus") {
      return static_cast<sdk::Status>(77);
    }
    return sdk::Status::kOk;
  }

 private:
  sdk::Host host_;
  std::string status_;
};

}  // namespace

RELAY_SINK_PLUGIN(EchoSink, "echo", "9.9.9");

namespace {

TEST(SdkMacro, GeneratesADescriptorForThisAbiOnly) {
  EXPECT_EQ(relay_sink_entry(RELAY_ABI_MAJOR + 1, 0), nullptr);
  const relay_sink_descriptor* descriptor = relay_sink_entry(RELAY_ABI_MAJOR, RELAY_ABI_MINOR + 5);
  ASSERT_NE(descriptor, nullptr);
  EXPECT_EQ(descriptor->struct_size, sizeof(relay_sink_descriptor));
  EXPECT_STREQ(descriptor->name, "echo");
  EXPECT_STREQ(descriptor->version, "9.9.9");
  EXPECT_NE(descriptor->flush, nullptr);
}

TEST(SdkMacro, StatusesAndMessagesReachTheHost) {
  const relay_sink_descriptor& descriptor = *relay_sink_entry(RELAY_ABI_MAJOR, RELAY_ABI_MINOR);
  sdk_testing::FakeHost host("1.2.3");
  sdk_testing::BatchBuilder batch;
  batch.add(R"({"time":"t","type":"function","record":"x"})");
  {
    auto sink = sdk_testing::SinkInstance::create(descriptor, host);
    ASSERT_TRUE(sink.created());
    EXPECT_TRUE(sink.deliver(batch.build()).ok());
    EXPECT_TRUE(sink.flush().ok());
  }
  EXPECT_TRUE(host.logged("created on host 1.2.3"));
  EXPECT_EQ(host.count(RELAY_LOG_DEBUG), 1u);

  auto retry = sdk_testing::SinkInstance::create(descriptor, host, {{"status", "retry"}});
  auto outcome = retry.deliver(batch.build());
  EXPECT_EQ(outcome.status, RELAY_RETRY);
  EXPECT_EQ(outcome.error, "try later");

  auto silent = sdk_testing::SinkInstance::create(descriptor, host, {{"status", "silent_drop"}});
  outcome = silent.deliver(batch.build());
  EXPECT_EQ(outcome.status, RELAY_DROP);
  EXPECT_EQ(outcome.error, "drop");

  auto bogus = sdk_testing::SinkInstance::create(descriptor, host, {{"status", "bogus"}});
  EXPECT_EQ(bogus.deliver(batch.build()).status, RELAY_DROP);

  // A partial success: OK, with the refused count in the feedback.
  batch.add(R"({"time":"t","type":"function","record":"y"})");
  auto partial = sdk_testing::SinkInstance::create(descriptor, host, {{"status", "partial"}});
  outcome = partial.deliver(batch.build());
  EXPECT_TRUE(outcome.ok());
  EXPECT_EQ(outcome.rejected_events, 1u);
}

}  // namespace
