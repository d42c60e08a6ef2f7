// Unit test of the example sink, as a plugin author writes one: the sink's source is linked in,
// and telemetry_relay/testing.hpp stands in for the host (FakeHost) and builds the batches.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <telemetry_relay/testing.hpp>

namespace {

namespace sdk_testing = relay::sdk::testing;

class StdoutSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("stdout-sink-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static const relay_sink_descriptor& descriptor() {
    const relay_sink_descriptor* d = relay_sink_entry(RELAY_ABI_MAJOR, RELAY_ABI_MINOR);
    if (d == nullptr) {
      throw std::runtime_error("the sink refused this SDK's ABI");
    }
    return *d;
  }

  static std::string read(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  std::filesystem::path dir_;
  sdk_testing::FakeHost host_;
};

TEST_F(StdoutSinkTest, DescribesItselfAndRefusesAnotherAbiMajor) {
  EXPECT_STREQ(descriptor().name, "stdout");
  EXPECT_STREQ(descriptor().version, RELAY_SINK_VERSION);
  EXPECT_EQ(descriptor().abi_major, RELAY_ABI_MAJOR);
  EXPECT_EQ(relay_sink_entry(RELAY_ABI_MAJOR + 1, 0), nullptr);
}

TEST_F(StdoutSinkTest, WritesOneSummaryLinePerBatch) {
  const auto out = dir_ / "summary.txt";
  auto sink = sdk_testing::SinkInstance::create(descriptor(), host_, {{"path", out.string()}});
  ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
  EXPECT_TRUE(host_.logged("writing batch summaries to " + out.string()));

  sdk_testing::BatchBuilder first;
  first.add(R"({"time":"2024-01-01T00:00:00.000Z","type":"function","record":"a"})")
      .add(R"({"time":"2024-01-01T00:00:00.001Z","type":"platform.start","record":{}})");
  const relay_batch& one = first.build();
  ASSERT_EQ(one.count, 2u);
  EXPECT_TRUE(sink.deliver(one).ok());

  sdk_testing::BatchBuilder second;
  second.add(R"({"time":"2024-01-01T00:00:01.000Z","type":"function","record":"b"})");
  const relay_batch& two = second.build();
  EXPECT_TRUE(sink.deliver(two).ok());
  EXPECT_TRUE(sink.flush().ok());

  EXPECT_EQ(read(out), "batch: 2 events, " + std::to_string(one.json.size) + " bytes\n" +
                           "batch: 1 events, " + std::to_string(two.json.size) + " bytes\n");
}

TEST_F(StdoutSinkTest, AnUnwritablePathFailsCreateNamingIt) {
  const auto out = dir_ / "no-such-dir" / "summary.txt";
  auto sink = sdk_testing::SinkInstance::create(descriptor(), host_, {{"path", out.string()}});
  EXPECT_FALSE(sink.created());
  EXPECT_NE(sink.create_outcome().status, RELAY_OK);
  EXPECT_EQ(sink.create_outcome().error, "path=" + out.string() + ": cannot open for appending");
}

}  // namespace
