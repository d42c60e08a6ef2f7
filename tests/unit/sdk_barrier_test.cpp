// The SDK's exception barrier, through real fixture plugins loaded like the host loads them:
// exceptions become RELAY_DROP (deliver/flush) or a failed create, with their message.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <telemetry_relay/testing.hpp>

namespace {

namespace sdk_testing = relay::sdk::testing;

std::string fixture(const std::string& name) {
  return std::string(RELAY_FIXTURE_PLUGIN_DIR) + "/librelay-sink-" + name + ".so";
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class SdkBarrierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    batch_.add(R"({"time":"2024-01-01T00:00:00.000Z","type":"platform.start","record":{"a":1}})")
        .add(R"({"time":"2024-01-01T00:00:00.001Z","type":"function","record":"hello\n"})");
  }

  sdk_testing::FakeHost host_;
  sdk_testing::BatchBuilder batch_;
};

TEST_F(SdkBarrierTest, DeliverExceptionBecomesDropWithItsMessage) {
  sdk_testing::Library library(fixture("throws"));
  auto sink =
      sdk_testing::SinkInstance::create(library.descriptor(), host_, {{"throw_in", "deliver"}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  auto outcome = sink.deliver(batch_.build());
  EXPECT_EQ(outcome.status, RELAY_DROP);
  EXPECT_EQ(outcome.error, "throws: deliver failed on purpose");
  EXPECT_TRUE(sink.flush().ok());
}

TEST_F(SdkBarrierTest, ConstructorExceptionFailsCreateWithItsMessage) {
  sdk_testing::Library library(fixture("throws"));
  auto sink = sdk_testing::SinkInstance::create(library.descriptor(), host_);  // the default
  EXPECT_FALSE(sink.created());
  EXPECT_NE(sink.create_outcome().status, RELAY_OK);
  EXPECT_EQ(sink.create_outcome().error, "throws: constructor failed on purpose");
}

TEST_F(SdkBarrierTest, FlushExceptionBecomesDrop) {
  sdk_testing::Library library(fixture("throws"));
  auto sink =
      sdk_testing::SinkInstance::create(library.descriptor(), host_, {{"throw_in", "flush"}});
  ASSERT_TRUE(sink.created());
  auto outcome = sink.flush();
  EXPECT_EQ(outcome.status, RELAY_DROP);
  EXPECT_EQ(outcome.error, "throws: flush failed on purpose");
}

TEST_F(SdkBarrierTest, NonStandardExceptionIsCaughtToo) {
  sdk_testing::Library library(fixture("throws"));
  auto sink = sdk_testing::SinkInstance::create(library.descriptor(), host_,
                                                {{"throw_in", "deliver_nonstd"}});
  ASSERT_TRUE(sink.created());
  auto outcome = sink.deliver(batch_.build());
  EXPECT_EQ(outcome.status, RELAY_DROP);
  EXPECT_EQ(outcome.error, "deliver: unknown exception");
}

TEST_F(SdkBarrierTest, ErrorTextIsTruncatedToTheHostBufferAndTerminated) {
  sdk_testing::Library library(fixture("throws"));
  const relay_sink_descriptor& descriptor = library.descriptor();
  void* instance = nullptr;
  relay_kv deliver_throws{{"throw_in", 8}, {"deliver", 7}};
  ASSERT_EQ(descriptor.create(host_, &deliver_throws, 1, &instance, nullptr), RELAY_OK);
  char buffer[9];
  std::memset(buffer, 'X', sizeof(buffer));
  relay_error err{buffer, 8};  // the last byte is outside the host's buffer
  EXPECT_EQ(descriptor.deliver(instance, &batch_.build(), 0, &err), RELAY_DROP);
  EXPECT_STREQ(buffer, "throws:");
  EXPECT_EQ(buffer[8], 'X');
  relay_error none{nullptr, 0};
  EXPECT_EQ(descriptor.deliver(instance, &batch_.build(), 0, &none), RELAY_DROP);
  descriptor.destroy(instance);
}

TEST_F(SdkBarrierTest, EntryRefusesAnotherAbiMajor) {
  sdk_testing::Library library(fixture("throws"));
  EXPECT_EQ(library.entry()(RELAY_ABI_MAJOR + 1, 0), nullptr);
  const relay_sink_descriptor& descriptor = library.descriptor();
  EXPECT_EQ(descriptor.abi_major, RELAY_ABI_MAJOR);
  EXPECT_EQ(descriptor.abi_minor, RELAY_ABI_MINOR);
  EXPECT_EQ(descriptor.struct_size, sizeof(relay_sink_descriptor));
  EXPECT_STREQ(descriptor.name, "throws");
  EXPECT_NE(descriptor.flush, nullptr);
}

class RecordFixtureTest : public SdkBarrierTest {
 protected:
  void SetUp() override {
    SdkBarrierTest::SetUp();
    path_ = std::filesystem::temp_directory_path() /
            ("relay-record-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".jsonl");
    std::filesystem::remove(path_);
  }
  void TearDown() override { std::filesystem::remove(path_); }

  sdk_testing::Library library_{fixture("record")};
  std::filesystem::path path_;
};

TEST_F(RecordFixtureTest, AppendsEveryBatchJsonAndANewline) {
  auto sink =
      sdk_testing::SinkInstance::create(library_.descriptor(), host_, {{"path", path_.string()}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  const relay_batch& batch = batch_.build();
  std::string json(batch.json.data, batch.json.size);
  EXPECT_TRUE(sink.deliver(batch).ok());
  EXPECT_TRUE(sink.deliver(batch).ok());
  EXPECT_EQ(read_file(path_), json + "\n" + json + "\n");
}

TEST_F(RecordFixtureTest, ReturnsTheConfiguredStatusWithAMessage) {
  for (auto [status, expected] : {std::pair{"retry", RELAY_RETRY}, std::pair{"drop", RELAY_DROP},
                                  std::pair{"fatal", RELAY_FATAL}}) {
    auto sink = sdk_testing::SinkInstance::create(library_.descriptor(), host_,
                                                  {{"path", path_.string()}, {"status", status}});
    ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
    auto outcome = sink.deliver(batch_.build());
    EXPECT_EQ(outcome.status, expected);
    EXPECT_EQ(outcome.error, std::string("record: configured status ") + status);
  }
  EXPECT_EQ(std::count(std::istreambuf_iterator<char>(std::ifstream(path_).rdbuf()), {}, '\n'), 3);
}

TEST_F(RecordFixtureTest, NumericStatusReachesTheHostRaw) {
  auto sink = sdk_testing::SinkInstance::create(library_.descriptor(), host_,
                                                {{"path", path_.string()}, {"status", "42"}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  auto outcome = sink.deliver(batch_.build());
  EXPECT_EQ(static_cast<int>(outcome.status), 42);
  EXPECT_EQ(outcome.error, "record: configured status 42");
}

TEST_F(RecordFixtureTest, BadConfigurationFailsCreateNamingTheProblem) {
  auto missing = sdk_testing::SinkInstance::create(library_.descriptor(), host_);
  EXPECT_FALSE(missing.created());
  EXPECT_EQ(missing.create_outcome().error, "path is required");
  auto bogus = sdk_testing::SinkInstance::create(library_.descriptor(), host_,
                                                 {{"path", path_.string()}, {"status", "maybe"}});
  EXPECT_FALSE(bogus.created());
  EXPECT_EQ(bogus.create_outcome().error,
            "status=maybe: expected ok, retry, drop, fatal or a number");
}

}  // namespace
