#include "plugin_loader.h"

#include <Poco/TemporaryFile.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <telemetry_relay/sink_abi.h>

#include <fstream>
#include <sstream>
#include <string>

#include "outlet.h"
#include "test_support.h"

namespace relay {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kFixtures = RELAY_FIXTURE_PLUGIN_DIR;

TEST(PluginLoader, NamesThatCouldLeaveThePluginFolderAreRefused) {
  for (const char* name : {"../http", "a/b", "", "http.so", "x y", "ok;rm"}) {
    const LoadResult r = load_sink(kFixtures, name, {});
    EXPECT_EQ(r.stage, LoadStage::kInvalidName) << name;
    EXPECT_THAT(r.message, HasSubstr("invalid name")) << name;
  }
  EXPECT_TRUE(is_valid_sink_name("my-sink_2"));
}

TEST(PluginLoader, PathFollowsTheNamingConvention) {
  EXPECT_EQ(plugin_path("/opt/extensions/lib", "http"),
            "/opt/extensions/lib/librelay-sink-http.so");
}

struct StageCase {
  const char* name;
  LoadStage stage;
  const char* text;
};

class LoaderStage : public ::testing::TestWithParam<StageCase> {};

TEST_P(LoaderStage, EachFailureHasItsOwnMessageNamingTheFile) {
  const StageCase& c = GetParam();
  const LoadResult r = load_sink(kFixtures, c.name, {});
  EXPECT_EQ(r.stage, c.stage) << r.message;
  EXPECT_EQ(r.sink, nullptr);
  EXPECT_THAT(r.message, AllOf(HasSubstr(to_string(c.stage)),
                               HasSubstr(plugin_path(kFixtures, c.name)), HasSubstr(c.text)));
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, LoaderStage,
    ::testing::Values(StageCase{"missing", LoadStage::kNotFound, "no such plugin file"},
                      StageCase{"notalib", LoadStage::kDlopenFailed, "dlerror"},
                      StageCase{"noentry", LoadStage::kEntryMissing, "relay_sink_entry"},
                      StageCase{"refuses", LoadStage::kEntryRefused, "returned NULL"},
                      StageCase{"abimajor2", LoadStage::kAbiMismatch,
                                "plugin ABI 2.0, host ABI 1."},
                      StageCase{"badsize", LoadStage::kDescriptorInvalid, "struct_size"},
                      StageCase{"nullcallbacks", LoadStage::kDescriptorInvalid, "deliver is NULL"},
                      StageCase{"misnamed", LoadStage::kNameMismatch, "'someone-else'"},
                      StageCase{"createfails", LoadStage::kCreateFailed, "missing key x"},
                      StageCase{"throws", LoadStage::kCreateFailed, ""}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

// Issue 3: a plugin built for a newer ABI major is refused, and the user is told both versions.
TEST(PluginLoader, NewerAbiMajorIsRefusedWithBothVersions) {
  const LoadResult r = load_sink(kFixtures, "abimajor2", {});
  EXPECT_EQ(r.stage, LoadStage::kAbiMismatch);
  EXPECT_EQ(r.sink, nullptr);
  EXPECT_EQ(r.message, "ABI mismatch: " + plugin_path(kFixtures, "abimajor2") +
                           ": plugin ABI 2.0, host ABI " + std::to_string(RELAY_ABI_MAJOR) + "." +
                           std::to_string(RELAY_ABI_MINOR) + " (majors must match)");
}

TEST(PluginLoader, ACreateErrorQuotingItsSettingsLeaksNoSecretAndStaysOneLine) {
  const std::string secret_uri = "https://user:hunter22@collector.example/p?token=abcd1234";
  const LoadResult r =
      load_sink(kFixtures, "createfails", {{"echo", secret_uri + "\nsummary {\"forged\":true}"}});
  EXPECT_EQ(r.stage, LoadStage::kCreateFailed);
  EXPECT_THAT(r.message, HasSubstr("collector.example"));
  EXPECT_THAT(r.message, Not(HasSubstr("hunter22")));
  EXPECT_THAT(r.message, Not(HasSubstr("abcd1234")));
  EXPECT_EQ(r.message.find('\n'), std::string::npos) << r.message;
}

TEST(PluginLoader, LoadsAWorkingPluginAndDeliversThroughTheAbi) {
  Poco::TemporaryFile out;
  const LoadResult r = load_sink(kFixtures, "record", {{"path", out.path()}});
  ASSERT_EQ(r.stage, LoadStage::kLoaded) << r.message;
  ASSERT_NE(r.sink, nullptr);
  EXPECT_EQ(r.sink->name(), "record");
  EXPECT_FALSE(r.plugin_version.empty());

  TelemetryPost batch = testing::make_batch(2);
  Delivery delivery;
  delivery.json =
      "[" + std::string(batch.events[0].json) + "," + std::string(batch.events[1].json) + "]";
  delivery.events = batch.events;
  const DeliveryResult result = r.sink->deliver(delivery, now_unix_ms() + 5000);
  EXPECT_EQ(result.status, DeliveryStatus::kOk) << result.error;
  std::ifstream in(out.path());
  std::stringstream written;
  written << in.rdbuf();
  EXPECT_EQ(written.str(), delivery.json + "\n");
}

TEST(PluginLoader, StatusesFromThePluginMapToTheHostsAndUnknownMeansDrop) {
  Poco::TemporaryFile out;
  for (const auto& [text, expected] :
       std::vector<std::pair<std::string, DeliveryStatus>>{{"retry", DeliveryStatus::kRetry},
                                                           {"drop", DeliveryStatus::kDrop},
                                                           {"fatal", DeliveryStatus::kFatal},
                                                           {"42", DeliveryStatus::kDrop}}) {
    LoadResult r = load_sink(kFixtures, "record", {{"path", out.path()}, {"status", text}});
    ASSERT_EQ(r.stage, LoadStage::kLoaded) << r.message;
    const DeliveryResult result =
        r.sink->deliver(Delivery{"batch-1", "[]", {}}, now_unix_ms() + 5000);
    EXPECT_EQ(result.status, expected) << text;
  }
}

TEST(PluginLoader, ThrowingDeliverIsCaughtAtTheBoundary) {
  const LoadResult r = load_sink(kFixtures, "throws", {{"throw_in", "deliver"}});
  if (r.stage != LoadStage::kLoaded) GTEST_SKIP() << "fixture throws only in create: " << r.message;
  const DeliveryResult result =
      r.sink->deliver(Delivery{"batch-1", "[]", {}}, now_unix_ms() + 5000);
  EXPECT_EQ(result.status, DeliveryStatus::kDrop);
  EXPECT_FALSE(result.error.empty());
}

TEST(PluginLoader, CheckModeValidatesWithoutCreating) {
  const LoadResult r = load_sink(kFixtures, "createfails", {}, /*create_instance=*/false);
  EXPECT_EQ(r.stage, LoadStage::kLoaded) << r.message;
  EXPECT_EQ(r.sink, nullptr);
}

// The descriptor's name is the sink's name: a file carrying another sink is refused, naming both.
TEST(PluginLoader, ADescriptorNamingAnotherSinkIsRefusedNamingBoth) {
  for (const bool create : {true, false}) {
    const LoadResult r = load_sink(kFixtures, "misnamed", {}, create);
    EXPECT_EQ(r.stage, LoadStage::kNameMismatch);
    EXPECT_EQ(r.sink, nullptr);
    EXPECT_EQ(r.message, "name mismatch: " + plugin_path(kFixtures, "misnamed") +
                             ": the plugin's descriptor names it 'someone-else', but it was loaded "
                             "as sink 'misnamed' (RELAY_SINKS, librelay-sink-misnamed.so); rename "
                             "the file to librelay-sink-someone-else.so or fix the descriptor");
  }
  EXPECT_FALSE(read_sink_keys(kFixtures, "misnamed"));
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A plugin that declares its keys gets the validated values in create(): normalised, defaults
// filled in, undeclared keys left out; what was wrong is one line per key.
TEST(PluginLoader, CreateReceivesTheValidatedValuesOfDeclaredKeys) {
  Poco::TemporaryFile out;
  const LoadResult r = load_sink(kFixtures, "keyed",
                                 {{"path", out.path()},
                                  {"count", "500"},
                                  {"verbose", "YES"},
                                  {"mode", "FAST"},
                                  {"endpoint", "HTTP://h.example/in"},
                                  {"header_x", "v"},
                                  {"bogus", "1"}});
  ASSERT_EQ(r.stage, LoadStage::kLoaded) << r.message;
  EXPECT_EQ(read_text(out.path()), "path=" + out.path() +
                                       "\ncount=5\nverbose=true\nmode=fast\nendpoint=http://"
                                       "h.example/in\nfail=no\nheader_x=v\n");
  EXPECT_EQ(r.config_issues,
            (std::vector<std::string>{
                "RELAY_KEYED_COUNT=500: not an integer in [1, 100]; using 5 instead",
                "RELAY_KEYED_BOGUS=1: not a key of the keyed sink (it reads path, count, verbose, "
                "mode, endpoint, dsn, header_*, fail); ignored"}));
}

TEST(PluginLoader, DeclaredKeysAreReadFromTheDescriptor) {
  const std::optional<SinkKeyTable> keys = read_sink_keys(kFixtures, "keyed");
  ASSERT_TRUE(keys);
  std::vector<std::string> names;
  for (const relay_config_key& k : *keys) names.emplace_back(k.name);
  EXPECT_EQ(names, (std::vector<std::string>{"path", "count", "verbose", "mode", "endpoint", "dsn",
                                             "header_", "fail"}));
  EXPECT_FALSE(read_sink_keys(kFixtures, "record")) << "declares none";
  EXPECT_FALSE(read_sink_keys(kFixtures, "createfails")) << "a C plugin with config_keys NULL";
  EXPECT_FALSE(read_sink_keys(kFixtures, "missing"));
}

TEST(PluginLoader, TheRealHttpPluginLoads) {
  const LoadResult r = load_sink(RELAY_PLUGIN_DIR, "http", {{"post_uri", ""}});
  EXPECT_EQ(r.stage, LoadStage::kLoaded) << r.message;
}

}  // namespace
}  // namespace relay
