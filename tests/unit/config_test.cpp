#include "config.h"

#include <Poco/TemporaryFile.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

namespace relay {
namespace {

using ::testing::HasSubstr;
using Env = std::map<std::string, std::string>;

const ConfigEntry* entry(const Config& c, const std::string& key) {
  for (const auto& e : c.entries) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

std::string sink_value(const Config& c, const std::string& sink, const std::string& key) {
  for (const auto& [k, v] : c.sink_configs.at(sink)) {
    if (k == key) return v;
  }
  return "<absent>";
}

TEST(Config, DefaultsWithAnEmptyEnvironment) {
  const Config c = load_config({});
  EXPECT_TRUE(c.issues.empty());
  EXPECT_EQ(c.sinks, std::vector<std::string>{"http"});
  EXPECT_EQ(c.plugin_dir, "/opt/extensions/lib");
  EXPECT_EQ(c.listener_port, 0);
  EXPECT_EQ(c.subscription.schema_version, "2022-12-13");
  EXPECT_EQ(c.subscription.types, (std::vector<std::string>{"platform", "function"}));
  EXPECT_EQ(c.subscription.max_bytes, 262144u);
  EXPECT_EQ(c.listener_max_body_bytes, 4u * 262144u);
  EXPECT_EQ(c.min_batch_size, 0);
  EXPECT_EQ(sink_value(c, "http", "post_uri"), "");
  ASSERT_NE(entry(c, "RELAY_SINKS"), nullptr);
  EXPECT_EQ(entry(c, "RELAY_SINKS")->source, "default");
}

TEST(Config, SeedVariablesKeepTheirMeaning) {
  const Config c = load_config({{"DISPATCH_POST_URI", "https://collector.example/ingest"},
                                {"DISPATCH_MIN_BATCH_SIZE", "10"}});
  EXPECT_TRUE(c.issues.empty());
  EXPECT_EQ(c.min_batch_size, 10);
  EXPECT_EQ(sink_value(c, "http", "post_uri"), "https://collector.example/ingest");
  EXPECT_EQ(entry(c, "DISPATCH_MIN_BATCH_SIZE")->source, "environment");
}

TEST(Config, InvalidMinBatchSizeIsOneLineNamingKeyValueAndFallback) {
  for (const char* bad : {"abc", "-5", " ", "10x", "0x10", "99999999999"}) {
    const Config c = load_config({{"DISPATCH_MIN_BATCH_SIZE", bad}});
    ASSERT_EQ(c.issues.size(), 1u) << bad;
    EXPECT_EQ(c.min_batch_size, 0) << bad;
    EXPECT_THAT(c.issues[0].message, HasSubstr("DISPATCH_MIN_BATCH_SIZE="));
    EXPECT_THAT(c.issues[0].message, HasSubstr("using 0 instead"));
  }
}

TEST(Config, BufferingOutsideTheTelemetryApiRangesFallsBack) {
  const Config c = load_config({{"RELAY_TELEMETRY_MAX_ITEMS", "999"},
                                {"RELAY_TELEMETRY_MAX_BYTES", "2000000"},
                                {"RELAY_TELEMETRY_TIMEOUT_MS", "24"}});
  ASSERT_EQ(c.issues.size(), 3u);
  EXPECT_EQ(c.subscription.max_items, 1000u);
  EXPECT_EQ(c.subscription.max_bytes, 262144u);
  EXPECT_EQ(c.subscription.timeout_ms, 100u);
  EXPECT_THAT(c.issues[0].message, HasSubstr("from 1000 to 10000"));
}

TEST(Config, SinkNamesAreValidatedAndDeduplicated) {
  const Config c = load_config({{"RELAY_SINKS", "http, ../../etc/x ,otlp,HTTP,,s3_v2"}});
  EXPECT_EQ(c.sinks, (std::vector<std::string>{"http", "otlp", "s3_v2"}));
  ASSERT_EQ(c.issues.size(), 1u);
  EXPECT_THAT(c.issues[0].message, HasSubstr("../../etc/x"));
}

TEST(Config, PerSinkKeysComeFromRelaySinkPrefix) {
  const Config c = load_config({{"RELAY_SINKS", "http,my-sink"},
                                {"RELAY_HTTP_CONNECT_TIMEOUT_MS", "250"},
                                {"RELAY_HTTP_HEADER_AUTHORIZATION", "Bearer s3cr3t"},
                                {"RELAY_MY_SINK_PATH", "/tmp/out"},
                                {"RELAY_HTTP_POST_URI", "http://own"},
                                {"DISPATCH_POST_URI", "http://seed"}});
  EXPECT_EQ(sink_value(c, "http", "connect_timeout_ms"), "250");
  EXPECT_EQ(sink_value(c, "http", "header_authorization"), "Bearer s3cr3t");
  EXPECT_EQ(sink_value(c, "http", "post_uri"), "http://own");
  EXPECT_EQ(sink_value(c, "my-sink", "path"), "/tmp/out");
}

TEST(Config, SecretsAreNeverShown) {
  const Config c = load_config({{"RELAY_HTTP_HEADER_AUTHORIZATION", "Bearer s3cr3t"}});
  const ConfigEntry* e = entry(c, "RELAY_HTTP_HEADER_AUTHORIZATION");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->value, "<redacted>");
  for (const auto& each : c.entries) EXPECT_EQ(each.value.find("s3cr3t"), std::string::npos);
}

TEST(Config, FileLayerUnderTheEnvironment) {
  Poco::TemporaryFile file;
  {
    std::ofstream out(file.path());
    out << "RELAY_LOG_LEVEL=debug\nRELAY_LISTENER_PORT=4243\nDISPATCH_MIN_BATCH_SIZE=7\n";
  }
  const Config c =
      load_config({{"RELAY_CONFIG_FILE", file.path()}, {"DISPATCH_MIN_BATCH_SIZE", "9"}});
  EXPECT_TRUE(c.issues.empty());
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.listener_port, 4243);
  EXPECT_EQ(c.min_batch_size, 9);  // environment wins
  EXPECT_EQ(entry(c, "RELAY_LOG_LEVEL")->source, "file " + file.path());
  EXPECT_EQ(entry(c, "DISPATCH_MIN_BATCH_SIZE")->source, "environment");
}

TEST(Config, UnreadableFileIsAnIssueNotACrash) {
  const Config c = load_config({{"RELAY_CONFIG_FILE", "/nonexistent/relay.properties"}});
  ASSERT_EQ(c.issues.size(), 1u);
  EXPECT_THAT(c.issues[0].message, HasSubstr("/nonexistent/relay.properties"));
}

TEST(Config, ReservedPortAndBadEnumsFallBack) {
  const Config c = load_config({{"RELAY_LISTENER_PORT", "9001"},
                                {"RELAY_LOG_LEVEL", "loud"},
                                {"RELAY_TELEMETRY_SCHEMA", "2021-01-01"},
                                {"RELAY_TELEMETRY_TYPES", "platform,logs"},
                                {"RELAY_STRICT", "maybe"},
                                {"RELAY_PLUGIN_DIR", "relative/dir"}});
  EXPECT_EQ(c.issues.size(), 6u);
  EXPECT_EQ(c.listener_port, 0);
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.subscription.schema_version, "2022-12-13");
  EXPECT_EQ(c.subscription.types, std::vector<std::string>{"platform"});
  EXPECT_FALSE(c.strict);
  EXPECT_EQ(c.plugin_dir, "/opt/extensions/lib");
}

TEST(Config, ListenerBodyCapMustHoldTwiceMaxBytes) {
  const Config c = load_config({{"RELAY_LISTENER_MAX_BODY_BYTES", "100000"}});
  ASSERT_EQ(c.issues.size(), 1u);
  EXPECT_EQ(c.listener_max_body_bytes, 4u * 262144u);
}

}  // namespace
}  // namespace relay

namespace relay {
namespace {

TEST(Config, UriCredentialsAndQueriesAreNeverShown) {
  EXPECT_EQ(
      printable_value("DISPATCH_POST_URI", "https://relay:s3cr3t@collector.example/in?token=x"),
      "https://relay:<redacted>@collector.example/in?<redacted>");
  EXPECT_EQ(printable_value("post_uri", "http://collector:8080/ingest"),
            "http://collector:8080/ingest");
  EXPECT_EQ(printable_value("DISPATCH_POST_URI", "http://user@host/p"), "http://user@host/p");
  EXPECT_EQ(printable_value("RELAY_HTTP_HEADER_X_API_KEY", "k"), "<redacted>");
  EXPECT_EQ(printable_value("RELAY_LOG_LEVEL", "debug"), "debug");
  const Config c = load_config({{"DISPATCH_POST_URI", "https://u:s3cr3t@h/p?api_key=s3cr3t"}});
  for (const auto& e : c.entries) EXPECT_EQ(e.value.find("s3cr3t"), std::string::npos) << e.key;
}

}  // namespace
}  // namespace relay
