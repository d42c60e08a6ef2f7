// Loads the example sink built out of tree against the installed SDK package. Driven by the
// sdk_package CTest test (tests/fixtures/sdk_package_test.cmake), which passes the plugin path in
// RELAY_PACKAGED_PLUGIN; skipped when run on its own.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <telemetry_relay/testing.hpp>

namespace {

namespace sdk_testing = relay::sdk::testing;

TEST(SdkPackage, ExampleSinkLoadsAndDelivers) {
  const char* path = std::getenv("RELAY_PACKAGED_PLUGIN");
  if (path == nullptr) {
    GTEST_SKIP() << "run through ctest -L sdk (sets RELAY_PACKAGED_PLUGIN)";
  }
  sdk_testing::Library library(path);
  EXPECT_EQ(library.entry()(RELAY_ABI_MAJOR + 1, 0), nullptr) << "must refuse another major";
  const relay_sink_descriptor& descriptor = library.descriptor();
  EXPECT_EQ(descriptor.abi_major, RELAY_ABI_MAJOR);
  EXPECT_EQ(descriptor.struct_size, sizeof(relay_sink_descriptor));
  EXPECT_STREQ(descriptor.name, "stdout");
  EXPECT_STREQ(descriptor.version, "1.0.0");

  auto out = std::filesystem::temp_directory_path() /
             ("relay-sdk-package-" + std::to_string(::getpid()) + ".txt");
  std::filesystem::remove(out);
  sdk_testing::FakeHost host;
  {
    auto sink = sdk_testing::SinkInstance::create(descriptor, host, {{"path", out.string()}});
    ASSERT_TRUE(sink.created()) << sink.create_outcome().error;
    sdk_testing::BatchBuilder batch;
    batch.add(R"({"time":"2024-01-01T00:00:00.000Z","type":"function","record":"a"})")
        .add(R"({"time":"2024-01-01T00:00:00.001Z","type":"function","record":"b"})");
    const relay_batch& built = batch.build();
    EXPECT_TRUE(sink.deliver(built).ok());
    std::ifstream in(out);
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_EQ(text.str(), "batch: 2 events, " + std::to_string(built.json.size) + " bytes\n");
  }
  std::filesystem::remove(out);
}

}  // namespace
