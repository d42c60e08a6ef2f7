#include "config.h"

#include <Poco/TemporaryFile.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <thread>

namespace relay {
namespace {

using ::testing::HasSubstr;
using Env = std::map<std::string, std::string>;

// Hermetic: no plugin folder is read unless a test passes the keys a sink declares.
std::optional<SinkKeyTable> no_plugins(const std::string&, const std::string&) {
  return std::nullopt;
}
Config load(const Env& env, const SinkKeySource& keys = no_plugins) {
  return load_config(env, keys);
}

// A host key's entry, or a sink key's (RELAY_<SINK>_<KEY>).
const ConfigEntry* entry(const Config& c, const std::string& key) {
  for (const auto& e : c.entries) {
    if (e.key == key) return &e;
  }
  for (const auto& [sink, entries] : c.sink_entries) {
    for (const auto& e : entries) {
      if (e.key == key) return &e;
    }
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
  const Config c = load({});
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
  const Config c = load({{"DISPATCH_POST_URI", "https://collector.example/ingest"},
                         {"DISPATCH_MIN_BATCH_SIZE", "10"}});
  EXPECT_TRUE(c.issues.empty());
  EXPECT_EQ(c.min_batch_size, 10);
  EXPECT_EQ(sink_value(c, "http", "post_uri"), "https://collector.example/ingest");
  EXPECT_EQ(entry(c, "DISPATCH_MIN_BATCH_SIZE")->source, "environment");
}

TEST(Config, InvalidMinBatchSizeIsOneLineNamingKeyValueAndFallback) {
  for (const char* bad : {"abc", "-5", "10x", "0x10", "99999999999", "1 0"}) {
    const Config c = load({{"DISPATCH_MIN_BATCH_SIZE", bad}});
    ASSERT_EQ(c.issues.size(), 1u) << bad;
    EXPECT_EQ(c.min_batch_size, 0) << bad;
    EXPECT_THAT(c.issues[0].message, HasSubstr("DISPATCH_MIN_BATCH_SIZE="));
    EXPECT_THAT(c.issues[0].message, HasSubstr("using 0 instead"));
  }
  // Empty (or blank) means unset, as an empty environment variable does: the default, quietly.
  for (const char* unset : {"", " ", "\t"}) {
    const Config c = load({{"DISPATCH_MIN_BATCH_SIZE", unset}});
    EXPECT_TRUE(c.issues.empty()) << c.issues[0].message;
    EXPECT_EQ(entry(c, "DISPATCH_MIN_BATCH_SIZE")->source, "default");
  }
}

TEST(Config, BufferingOutsideTheTelemetryApiRangesFallsBack) {
  const Config c = load({{"RELAY_TELEMETRY_MAX_ITEMS", "999"},
                         {"RELAY_TELEMETRY_MAX_BYTES", "2000000"},
                         {"RELAY_TELEMETRY_TIMEOUT_MS", "24"}});
  ASSERT_EQ(c.issues.size(), 3u);
  EXPECT_EQ(c.subscription.max_items, 1000u);
  EXPECT_EQ(c.subscription.max_bytes, 262144u);
  EXPECT_EQ(c.subscription.timeout_ms, 100u);
  EXPECT_THAT(c.issues[0].message,
              HasSubstr("RELAY_TELEMETRY_MAX_ITEMS=999: not an integer in [1000, 10000]; using "
                        "1000 instead"));
}

TEST(Config, SinkNamesAreValidatedAndDeduplicated) {
  const Config c = load({{"RELAY_SINKS", "http, ../../etc/x ,otlp,HTTP,,s3_v2"}});
  EXPECT_EQ(c.sinks, (std::vector<std::string>{"http", "otlp", "s3_v2"}));
  ASSERT_EQ(c.issues.size(), 1u);
  EXPECT_THAT(c.issues[0].message, HasSubstr("../../etc/x"));
}

TEST(Config, PerSinkKeysComeFromRelaySinkPrefix) {
  const Config c = load({{"RELAY_SINKS", "http,my-sink"},
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
  const Config c = load({{"RELAY_HTTP_HEADER_AUTHORIZATION", "Bearer s3cr3t"}});
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
  const Config c = load({{"RELAY_CONFIG_FILE", file.path()}, {"DISPATCH_MIN_BATCH_SIZE", "9"}});
  EXPECT_TRUE(c.issues.empty());
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.listener_port, 4243);
  EXPECT_EQ(c.min_batch_size, 9);  // environment wins
  EXPECT_EQ(entry(c, "RELAY_LOG_LEVEL")->source, "file " + file.path());
  EXPECT_EQ(entry(c, "DISPATCH_MIN_BATCH_SIZE")->source, "environment");
}

TEST(Config, UnreadableFileIsAnIssueNotACrash) {
  const Config c = load({{"RELAY_CONFIG_FILE", "/nonexistent/relay.properties"}});
  ASSERT_EQ(c.issues.size(), 1u);
  EXPECT_THAT(c.issues[0].message, HasSubstr("/nonexistent/relay.properties"));
}

TEST(Config, ReservedPortAndBadEnumsFallBack) {
  const Config c = load({{"RELAY_LISTENER_PORT", "9001"},
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
  const Config c = load({{"RELAY_LISTENER_MAX_BODY_BYTES", "100000"}});
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
      "https://<redacted>@collector.example/in?<redacted>");
  EXPECT_EQ(printable_value("post_uri", "http://collector:8080/ingest"),
            "http://collector:8080/ingest");
  // User-only credentials (an API key as the user name) and fragments.
  EXPECT_EQ(printable_value("DISPATCH_POST_URI", "https://APIKEY@host/p"),
            "https://<redacted>@host/p");
  EXPECT_EQ(printable_value("post_uri", "https://host/p#access_token=s3cr3t"),
            "https://host/p#<redacted>");
  EXPECT_EQ(printable_value("post_uri", "http://[::1]:8080/in?k=1"),
            "http://[::1]:8080/in?<redacted>");
  // A URI under a key that does not say so is still recognised.
  EXPECT_EQ(printable_value("RELAY_WEBHOOK_TARGET", "https://u:s3cr3t@h.example/x"),
            "https://<redacted>@h.example/x");
  EXPECT_EQ(printable_value("RELAY_DB_TARGET", "user:s3cr3t@db.example:5432"),
            "db.example:5432 (not a valid URI: the rest is not shown)");
  EXPECT_EQ(printable_value("RELAY_NOTIFY", "ops@example.com"), "ops@example.com");
  EXPECT_EQ(printable_value("RELAY_HTTP_HEADER_X_API_KEY", "k"), "<redacted>");
  EXPECT_EQ(printable_value("RELAY_LOG_LEVEL", "debug"), "debug");
  const Config c = load({{"DISPATCH_POST_URI", "https://u:s3cr3t@h/p?api_key=s3cr3t"}});
  for (const auto& e : c.entries) EXPECT_EQ(e.value.find("s3cr3t"), std::string::npos) << e.key;
}

// Issue 9: an invalid DISPATCH_POST_URI (scheme typo, bad port, no host, '/' in the password)
// printed whole, password and query included.
TEST(Config, InvalidUrisShowOnlySchemeHostAndPort) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"https://u:s3/cr3t@host.example/p?token=s3cr3t",
       "https://host.example (not a valid URI: the rest is not shown)"},
      {"https://u:s3cr3t@host.example:99999/p?token=s3cr3t",
       "https://host.example:99999 (not a valid URI: the rest is not shown)"},
      {"https://u:s3cr3t@/p?token=s3cr3t",
       "https://<no host> (not a valid URI: the rest is not shown)"},
      {"https://u:s3cr3t", "https://u:<invalid port> (not a valid URI: the rest is not shown)"},
      {"u:s3cr3t@host.example:8080/in?token=s3cr3t",
       "host.example:8080 (not a valid URI: the rest is not shown)"},
      {"ht tps://u:s3cr3t@host.example/p", "host.example (not a valid URI: the rest is not shown)"},
      {"htps://u:s3cr3t@host.example/p?token=s3cr3t",
       "htps://<redacted>@host.example/p?<redacted>"},
      {"https://host.example/p a?s3cr3t",
       "https://host.example (not a valid URI: the rest is not shown)"},
  };
  for (const auto& [uri, shown] : cases) {
    EXPECT_EQ(printable_value("DISPATCH_POST_URI", uri), shown) << uri;
    const Config c = load({{"DISPATCH_POST_URI", uri}, {"RELAY_STRICT", "maybe"}});
    for (const auto& e : c.entries) EXPECT_EQ(e.value.find("s3cr3t"), std::string::npos) << uri;
  }
  // A URI in a key that expects something else: the issue (and so the log line, --check and
  // the init/error of RELAY_STRICT) redacts it too.
  const Config c = load({{"RELAY_LOG_LEVEL", "https://u:s3/cr3t@h/?token=s3cr3t"}});
  ASSERT_EQ(c.issues.size(), 1u);
  EXPECT_EQ(c.issues[0].message.find("s3cr3t"), std::string::npos) << c.issues[0].message;
}

// A plugin's own error or log text may quote its configuration; the host hides the same.
TEST(Config, PluginTextQuotingTheConfigurationIsRedacted) {
  const SinkConfig config = {{"password", "hunter22"},
                             {"post_uri", "htps://u:s3/cr3t@h.example:99999/p?token=t0k3n#frag"},
                             {"level", "info"},
                             {"api_key", "abc"}};
  EXPECT_EQ(redact_config_values("invalid post_uri 'htps://u:s3/cr3t@h.example:99999/p?token=t0k3n"
                                 "#frag'; password hunter22 refused",
                                 config),
            "invalid post_uri 'htps://h.example:99999 (not a valid URI: the rest is not shown)'; "
            "password <redacted> refused");
  // Pieces quoted on their own.
  EXPECT_EQ(redact_config_values("user u:s3/cr3t, query token=t0k3n, path /p, level info", config),
            "user <redacted>, query <redacted>, path /p, level info");
  // Too short to be told from ordinary text: left alone.
  EXPECT_EQ(redact_config_values("abc", config), "abc");
}

TEST(Config, KeysNamedLikeCredentialsAreRedacted) {
  for (const char* key : {"RELAY_HTTP_DB_PASSWD", "RELAY_HTTP_CREDENTIALS", "RELAY_HTTP_AUTH",
                          "RELAY_HTTP_BEARER", "RELAY_HTTP_TOKEN", "RELAY_HTTP_SECRET",
                          "RELAY_HTTP_API_KEY", "RELAY_HTTP_PASSWORD", "RELAY_HTTP_COOKIE"}) {
    EXPECT_EQ(printable_value(key, "s3cr3t"), "<redacted>") << key;
    const Config c = load({{key, "s3cr3t"}});
    ASSERT_NE(entry(c, key), nullptr) << key;
    EXPECT_EQ(entry(c, key)->value, "<redacted>") << key;
  }
}

// Issue 9: a newline in a value forged log lines (and --check lines); a 50 MB value became one
// line.
TEST(Config, ShownValuesAreOneBoundedLine) {
  const Config forged =
      load({{"RELAY_LOG_LEVEL", "x\ntelemetry-relay Information [lifecycle] summary {}"}});
  ASSERT_EQ(forged.issues.size(), 1u);
  EXPECT_EQ(forged.issues[0].message.find('\n'), std::string::npos);
  EXPECT_THAT(forged.issues[0].message, HasSubstr("x\\ntelemetry-relay"));
  EXPECT_EQ(entry(forged, "RELAY_LOG_LEVEL")->value.find('\n'), std::string::npos);

  const Config huge = load({{"RELAY_SPOOL_DIR", std::string(10u << 20, 'd')}});
  ASSERT_EQ(huge.issues.size(), 1u);
  EXPECT_LT(huge.issues[0].message.size(), 2 * kMaxShownValueBytes);
  EXPECT_LT(entry(huge, "RELAY_SPOOL_DIR")->value.size(), 2 * kMaxShownValueBytes);
}

TEST(Config, AtMostMaxSinks) {
  std::string names;
  for (size_t i = 0; i < kMaxSinks + 4; ++i) names += "s" + std::to_string(i) + ",";
  const Config c = load({{"RELAY_SINKS", names}});
  EXPECT_EQ(c.sinks.size(), kMaxSinks);
  ASSERT_EQ(c.issues.size(), 1u);
  EXPECT_THAT(c.issues[0].message, HasSubstr("at most"));
}

TEST(Config, ThousandsOfBadItemsAreABoundedNumberOfIssues) {
  std::string types;
  for (int i = 0; i < 5000; ++i) types += "bogus" + std::to_string(i) + ",";
  const Config c = load({{"RELAY_TELEMETRY_TYPES", types + "platform"}});
  ASSERT_EQ(c.issues.size(), kMaxIssues + 1);
  EXPECT_THAT(c.issues.back().message, HasSubstr("4968 more configuration issues not shown"));
  EXPECT_EQ(c.subscription.types, std::vector<std::string>{"platform"});
}

// load_config on its own thread, so a regression that blocks fails the test instead of hanging
// it; the bound is orders of magnitude above the microseconds this takes.
std::optional<Config> load_within_a_minute(const Env& env) {
  auto done = std::make_shared<std::promise<Config>>();
  std::future<Config> result = done->get_future();
  std::thread([env, done] { done->set_value(load_config(env, no_plugins)); }).detach();
  if (result.wait_for(std::chrono::seconds(60)) != std::future_status::ready) return std::nullopt;
  return result.get();
}

// Issue 9: a directory spun forever, a FIFO blocked forever, /dev/zero grew to ~1 GB, a big file
// cost five times its size, all before the extension registers.
TEST(Config, ConfigFileMustBeASmallRegularFile) {
  Poco::TemporaryFile scratch;  // removed with what it holds, whatever the test's outcome
  scratch.createDirectories();
  const std::filesystem::path dir(scratch.path());
  const std::string fifo = (dir / "fifo").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::string big = (dir / "big.properties").string();
  std::ofstream(big).close();
  std::filesystem::resize_file(big, kMaxConfigFileBytes + 1);  // sparse: no disk used
  const std::vector<std::pair<std::string, std::string>> cases = {
      {dir.string(), "a directory"},
      {fifo, "a FIFO"},
      {"/dev/zero", "a character device"},
      {big, "larger than 1048576 bytes"},
  };
  for (const auto& [path, why] : cases) {
    const auto c = load_within_a_minute({{"RELAY_CONFIG_FILE", path}});
    ASSERT_TRUE(c) << path << " still loading after a minute";
    ASSERT_EQ(c->issues.size(), 1u) << path;
    EXPECT_THAT(c->issues[0].message, HasSubstr("RELAY_CONFIG_FILE=" + path + ": "));
    EXPECT_THAT(c->issues[0].message, HasSubstr(why));
    EXPECT_EQ(c->log_level, "info");  // defaults stand
  }
}

}  // namespace
}  // namespace relay

namespace relay {
namespace {

TEST(ConfigFlush, DefaultsAreNextInvokeWithSpoolOnAndAutoDetection) {
  const Config c = load({});
  EXPECT_TRUE(c.issues.empty());
  EXPECT_TRUE(c.warnings.empty());
  EXPECT_EQ(c.flush.mode, FlushMode::kNextInvoke);
  EXPECT_EQ(c.sink_flush.at("http").mode, FlushMode::kNextInvoke);
  EXPECT_EQ(c.invoke_budget_ms, 100u);
  EXPECT_EQ(c.buffer_max_bytes, 4u << 20);
  EXPECT_EQ(c.buffer_flush_bytes, 1u << 20);
  EXPECT_TRUE(c.spool);
  EXPECT_EQ(c.spool_dir, "/tmp/telemetry-relay-spool");
  EXPECT_EQ(c.spool_max_bytes, 16u << 20);
  EXPECT_EQ(c.spool_max_files, 256u);
  EXPECT_EQ(c.retry_max_attempts, 10u);
  EXPECT_EQ(c.retry_max_age_s, 3600u);
  EXPECT_EQ(c.managed_instances_setting, "auto");
  EXPECT_FALSE(c.managed_instances);
  EXPECT_EQ(c.subscription.timeout_ms, 100u);
  for (const char* key : {"RELAY_FLUSH", "RELAY_INVOKE_BUDGET_MS", "RELAY_BUFFER_MAX_BYTES",
                          "RELAY_SPOOL", "RELAY_SPOOL_DIR", "RELAY_SPOOL_MAX_BYTES",
                          "RELAY_SPOOL_MAX_FILES", "RELAY_MANAGED_INSTANCES"}) {
    ASSERT_NE(entry(c, key), nullptr) << key;
    EXPECT_EQ(entry(c, key)->source, "default") << key;
  }
  EXPECT_EQ(entry(c, "RELAY_QUEUE_MAX_BYTES"), nullptr) << "renamed to RELAY_BUFFER_MAX_BYTES";
}

TEST(ConfigFlush, ParsesEveryModeCaseInsensitively) {
  EXPECT_EQ(parse_flush_policy("next-invoke")->mode, FlushMode::kNextInvoke);
  EXPECT_EQ(parse_flush_policy(" END ")->mode, FlushMode::kEnd);
  EXPECT_EQ(parse_flush_policy("Continuous")->mode, FlushMode::kContinuous);
  const auto periodic = parse_flush_policy("periodic:250");
  ASSERT_TRUE(periodic);
  EXPECT_EQ(periodic->mode, FlushMode::kPeriodic);
  EXPECT_EQ(periodic->period_ms, 250u);
  EXPECT_EQ(parse_flush_policy("periodic:10")->period_ms, 10u);
  EXPECT_EQ(parse_flush_policy("periodic:600000")->period_ms, 600000u);
  for (const char* bad : {"", "never", "periodic", "periodic:", "periodic:9", "periodic:600001",
                          "periodic:-5", "periodic:1e3", "periodic:100ms", "next_invoke"}) {
    EXPECT_FALSE(parse_flush_policy(bad)) << bad;
  }
  EXPECT_EQ(to_string(*parse_flush_policy("periodic:250")), "periodic:250");
  EXPECT_EQ(to_string(FlushPolicy{}), "next-invoke");
}

TEST(ConfigFlush, InvalidFlushIsOneLineNamingKeyValueAndFallback) {
  const Config c = load({{"RELAY_FLUSH", "periodic:5"}});
  ASSERT_EQ(c.issues.size(), 1u);
  EXPECT_THAT(c.issues[0].message, HasSubstr("RELAY_FLUSH=periodic:5: expected next-invoke, end, "
                                             "periodic:<ms> (ms from 10 to 600000) or continuous; "
                                             "using next-invoke instead"));
  EXPECT_EQ(c.flush.mode, FlushMode::kNextInvoke);
  EXPECT_EQ(c.sink_flush.at("http").mode, FlushMode::kNextInvoke);
}

TEST(ConfigFlush, PerSinkOverrideWinsAndIsNotHandedToThePlugin) {
  const Config c = load({{"RELAY_SINKS", "http,my-sink,other"},
                         {"RELAY_FLUSH", "periodic:1000"},
                         {"RELAY_MY_SINK_FLUSH", "continuous"},
                         {"RELAY_OTHER_FLUSH", "bogus"}});
  EXPECT_EQ(c.flush.mode, FlushMode::kPeriodic);
  EXPECT_EQ(c.sink_flush.at("http").mode, FlushMode::kPeriodic);
  EXPECT_EQ(c.sink_flush.at("http").period_ms, 1000u);
  EXPECT_EQ(c.sink_flush.at("my-sink").mode, FlushMode::kContinuous);
  // A bad override falls back to the global policy, in one line naming the sink's key.
  EXPECT_EQ(c.sink_flush.at("other").mode, FlushMode::kPeriodic);
  ASSERT_EQ(c.issues.size(), 1u);
  EXPECT_THAT(c.issues[0].message, HasSubstr("RELAY_OTHER_FLUSH=bogus"));
  EXPECT_THAT(c.issues[0].message, HasSubstr("using periodic:1000 instead"));
  EXPECT_EQ(sink_value(c, "my-sink", "flush"), "<absent>");
  EXPECT_EQ(outlet_options(c, "my-sink").flush.mode, FlushMode::kContinuous);
  EXPECT_EQ(outlet_options(c, "http").flush.period_ms, 1000u);
}

TEST(ConfigFlush, EndModeLowersTheTelemetryTimeoutUnlessItWasSet) {
  const Config lowered = load({{"RELAY_FLUSH", "end"}});
  EXPECT_TRUE(lowered.issues.empty());
  EXPECT_EQ(lowered.flush.mode, FlushMode::kEnd);
  EXPECT_EQ(lowered.subscription.timeout_ms, 25u);
  EXPECT_EQ(entry(lowered, "RELAY_TELEMETRY_TIMEOUT_MS")->value, "25");
  EXPECT_THAT(entry(lowered, "RELAY_TELEMETRY_TIMEOUT_MS")->source, HasSubstr("end"));

  const Config per_sink = load({{"RELAY_HTTP_FLUSH", "end"}});
  EXPECT_EQ(per_sink.subscription.timeout_ms, 25u);

  const Config kept = load({{"RELAY_FLUSH", "end"}, {"RELAY_TELEMETRY_TIMEOUT_MS", "200"}});
  EXPECT_EQ(kept.subscription.timeout_ms, 200u);
}

TEST(ConfigFlush, EndModeWithoutPlatformTelemetryFallsBackToNextInvoke) {
  const Config c = load({{"RELAY_FLUSH", "end"}, {"RELAY_TELEMETRY_TYPES", "function"}});
  ASSERT_EQ(c.issues.size(), 1u);
  EXPECT_THAT(c.issues[0].message, HasSubstr("RELAY_FLUSH=end: end needs platform"));
  EXPECT_THAT(c.issues[0].message, HasSubstr("using next-invoke instead"));
  EXPECT_EQ(c.sink_flush.at("http").mode, FlushMode::kNextInvoke);
  EXPECT_EQ(c.subscription.timeout_ms, 100u);
}

TEST(ConfigBounds, SizesCountsAndBudgetAreBounded) {
  struct Case {
    const char* key;
    const char* value;
    const char* range;
  };
  for (const Case& bad : {Case{"RELAY_INVOKE_BUDGET_MS", "0", "[1, 60000]"},
                          Case{"RELAY_INVOKE_BUDGET_MS", "60001", "[1, 60000]"},
                          Case{"RELAY_BUFFER_MAX_BYTES", "262143", "[262144, 1073741824]"},
                          Case{"RELAY_BUFFER_MAX_BYTES", "2147483648", "[262144, "},
                          Case{"RELAY_SPOOL_MAX_BYTES", "1048575", "[1048576, 10737418240]"},
                          Case{"RELAY_SPOOL_MAX_BYTES", "abc", "[1048576, "},
                          Case{"RELAY_SPOOL_MAX_FILES", "0", "[1, 100000]"},
                          Case{"RELAY_SPOOL_MAX_FILES", "100001", "[1, 100000]"},
                          Case{"RELAY_RETRY_MAX_ATTEMPTS", "0", "[1, 1000]"},
                          Case{"RELAY_RETRY_MAX_AGE_S", "604801", "[0, 604800]"}}) {
    const Config c = load({{bad.key, bad.value}});
    ASSERT_EQ(c.issues.size(), 1u) << bad.key << "=" << bad.value;
    EXPECT_THAT(c.issues[0].message, HasSubstr(std::string(bad.key) + "=" + bad.value + ":"));
    EXPECT_THAT(c.issues[0].message, HasSubstr(bad.range));
  }
  const Config d = load({{"RELAY_INVOKE_BUDGET_MS", "0"},
                         {"RELAY_BUFFER_MAX_BYTES", "1"},
                         {"RELAY_SPOOL_MAX_BYTES", "1"},
                         {"RELAY_SPOOL_MAX_FILES", "0"}});
  EXPECT_EQ(d.invoke_budget_ms, 100u);
  EXPECT_EQ(d.buffer_max_bytes, 4u << 20);
  EXPECT_EQ(d.spool_max_bytes, 16u << 20);
  EXPECT_EQ(d.spool_max_files, 256u);

  const Config good = load({{"RELAY_INVOKE_BUDGET_MS", "60000"},
                            {"RELAY_BUFFER_MAX_BYTES", "262144"},
                            {"RELAY_SPOOL_MAX_BYTES", "10737418240"},
                            {"RELAY_SPOOL_MAX_FILES", "1"}});
  EXPECT_TRUE(good.issues.empty());
  EXPECT_EQ(good.invoke_budget_ms, 60000u);
  EXPECT_EQ(good.buffer_max_bytes, 262144u);
  EXPECT_EQ(good.spool_max_bytes, uint64_t{10} << 30);
  EXPECT_EQ(good.spool_max_files, 1u);
}

TEST(ConfigBuffer, TheHighWaterMarkFollowsTheCapAndStaysBelowHalfOfIt) {
  const Config small = load({{"RELAY_BUFFER_MAX_BYTES", "524288"}});
  EXPECT_TRUE(small.issues.empty());
  EXPECT_EQ(small.buffer_flush_bytes, 131072u);  // unset: a quarter of a smaller cap
  const Config set = load({{"RELAY_BUFFER_FLUSH_BYTES", "65536"}});
  EXPECT_TRUE(set.issues.empty());
  EXPECT_EQ(outlet_options(set, "http").flush_high_water_bytes, 65536u);
  const Config too_high =
      load({{"RELAY_BUFFER_MAX_BYTES", "1048576"}, {"RELAY_BUFFER_FLUSH_BYTES", "1048576"}});
  ASSERT_EQ(too_high.issues.size(), 1u);
  EXPECT_EQ(too_high.issues[0].key, "RELAY_BUFFER_FLUSH_BYTES");
  EXPECT_THAT(too_high.issues[0].message, ::testing::HasSubstr("at most half"));
  EXPECT_EQ(too_high.buffer_flush_bytes, 262144u);
}

TEST(ConfigSpool, OnOffAndAFolderPerSink) {
  const Config off = load({{"RELAY_SPOOL", "off"}});
  EXPECT_TRUE(off.issues.empty());
  EXPECT_FALSE(off.spool);
  EXPECT_FALSE(outlet_options(off, "http").spool.enabled);

  const Config c = load({{"RELAY_SINKS", "http,my-sink"},
                         {"RELAY_SPOOL", "ON"},
                         {"RELAY_SPOOL_DIR", "/tmp/spool/"},
                         {"RELAY_SPOOL_MAX_BYTES", "2097152"},
                         {"RELAY_SPOOL_MAX_FILES", "9"},
                         {"RELAY_BUFFER_MAX_BYTES", "524288"},
                         {"RELAY_DELIVERY_MAX_BYTES", "65536"},
                         {"DISPATCH_MIN_BATCH_SIZE", "3"}});
  EXPECT_TRUE(c.issues.empty());
  const OutletOptions http = outlet_options(c, "http");
  EXPECT_TRUE(http.spool.enabled);
  EXPECT_EQ(http.spool.dir, "/tmp/spool/http");
  EXPECT_EQ(outlet_options(c, "my-sink").spool.dir, "/tmp/spool/my-sink");
  EXPECT_EQ(http.spool.max_bytes, 2097152u);
  EXPECT_EQ(http.spool.max_files, 9u);
  EXPECT_EQ(http.buffer_max_bytes, 524288u);
  EXPECT_EQ(http.delivery_max_bytes, 65536u);
  EXPECT_EQ(http.min_batch_size, 3);

  const Config bad = load({{"RELAY_SPOOL", "maybe"}});
  ASSERT_EQ(bad.issues.size(), 1u);
  EXPECT_THAT(bad.issues[0].message,
              HasSubstr("RELAY_SPOOL=maybe: not a boolean (true/false, on/off, yes/no, "
                        "1/0); using on instead"));
  EXPECT_TRUE(bad.spool);
}

TEST(ConfigSpool, FolderMustBeAbsoluteWithoutParentSteps) {
  for (const char* bad : {"relative/spool", "/tmp/../etc", "/tmp/a/..", "/tmp/a\tb"}) {
    const Config c = load({{"RELAY_SPOOL_DIR", bad}});
    ASSERT_EQ(c.issues.size(), 1u) << bad;
    EXPECT_THAT(c.issues[0].message, HasSubstr("RELAY_SPOOL_DIR="));
    EXPECT_THAT(c.issues[0].message, HasSubstr("using /tmp/telemetry-relay-spool instead"));
    EXPECT_EQ(c.spool_dir, "/tmp/telemetry-relay-spool") << bad;
  }
  const Config long_path = load({{"RELAY_SPOOL_DIR", "/" + std::string(600, 'a')}});
  EXPECT_EQ(long_path.issues.size(), 1u);
}

TEST(ConfigManagedInstances, DetectedFromTheInitializationType) {
  const Config c = load({{"AWS_LAMBDA_INITIALIZATION_TYPE", "lambda-managed-instances"}});
  EXPECT_TRUE(c.issues.empty());
  EXPECT_TRUE(c.warnings.empty()) << "defaults adapt silently";
  EXPECT_TRUE(c.managed_instances);
  EXPECT_THAT(c.managed_instances_why, HasSubstr("AWS_LAMBDA_INITIALIZATION_TYPE"));
  EXPECT_EQ(c.subscription.schema_version, "2025-01-29");
  EXPECT_EQ(c.flush.mode, FlushMode::kContinuous);
  EXPECT_EQ(c.sink_flush.at("http").mode, FlushMode::kContinuous);

  for (const char* type : {"on-demand", "provisioned-concurrency", "snap-start"}) {
    EXPECT_FALSE(load({{"AWS_LAMBDA_INITIALIZATION_TYPE", type}}).managed_instances);
  }
}

TEST(ConfigManagedInstances, ForcedOnOrOff) {
  const Config on = load({{"RELAY_MANAGED_INSTANCES", "on"}});
  EXPECT_TRUE(on.managed_instances);
  EXPECT_EQ(on.subscription.schema_version, "2025-01-29");
  const Config off = load({{"RELAY_MANAGED_INSTANCES", "OFF"},
                           {"AWS_LAMBDA_INITIALIZATION_TYPE", "lambda-managed-instances"}});
  EXPECT_FALSE(off.managed_instances);
  EXPECT_EQ(off.subscription.schema_version, "2022-12-13");
  EXPECT_EQ(off.flush.mode, FlushMode::kNextInvoke);
  const Config bad = load({{"RELAY_MANAGED_INSTANCES", "yes please"}});
  ASSERT_EQ(bad.issues.size(), 1u);
  EXPECT_THAT(bad.issues[0].message,
              HasSubstr("RELAY_MANAGED_INSTANCES=yes please: not one of auto, on, off; "
                        "using auto instead"));
}

// main registers with the events this predicts before it reads the whole configuration.
TEST(ConfigManagedInstances, TheEnvironmentAlonePredictsWhatLoadConfigResolves) {
  for (const char* setting : {"", "auto", "on", " ON ", "off", "Off", "yes please"}) {
    for (const char* type :
         {"", "on-demand", "lambda-managed-instances", " lambda-managed-instances"}) {
      Env env;
      if (*setting != '\0') env["RELAY_MANAGED_INSTANCES"] = setting;
      if (*type != '\0') env["AWS_LAMBDA_INITIALIZATION_TYPE"] = type;
      const std::optional<bool> early = managed_instances_from_environment(env);
      ASSERT_TRUE(early.has_value());
      EXPECT_EQ(*early, load(env).managed_instances)
          << "RELAY_MANAGED_INSTANCES='" << setting << "' type='" << type << "'";
    }
  }
  Poco::TemporaryFile file;
  std::ofstream(file.path()) << "RELAY_MANAGED_INSTANCES=on\n";
  const Env with_file{{"RELAY_CONFIG_FILE", file.path()}};
  EXPECT_FALSE(managed_instances_from_environment(with_file).has_value())
      << "the file may decide it";
  EXPECT_TRUE(load(with_file).managed_instances);
}

TEST(ConfigManagedInstances, ModesNeedingInvokeBecomeContinuousWithOneWarningEach) {
  const Config c = load({{"RELAY_MANAGED_INSTANCES", "on"},
                         {"RELAY_SINKS", "http,a,b"},
                         {"RELAY_FLUSH", "end"},
                         {"RELAY_A_FLUSH", "periodic:500"},
                         {"RELAY_B_FLUSH", "next-invoke"},
                         {"RELAY_TELEMETRY_SCHEMA", "2022-12-13"}});
  EXPECT_TRUE(c.issues.empty());
  EXPECT_EQ(c.sink_flush.at("http").mode, FlushMode::kContinuous);
  EXPECT_EQ(c.sink_flush.at("a").mode, FlushMode::kPeriodic);
  EXPECT_EQ(c.sink_flush.at("a").period_ms, 500u);
  EXPECT_EQ(c.sink_flush.at("b").mode, FlushMode::kContinuous);
  EXPECT_EQ(c.subscription.schema_version, "2025-01-29");
  EXPECT_EQ(c.subscription.timeout_ms, 100u) << "no sink is in end mode any more";
  ASSERT_EQ(c.warnings.size(), 3u);
  EXPECT_THAT(c.warnings, ::testing::Contains(HasSubstr("RELAY_TELEMETRY_SCHEMA=2022-12-13")));
  EXPECT_THAT(c.warnings, ::testing::Contains(::testing::AllOf(
                              HasSubstr("RELAY_FLUSH=end"), HasSubstr("Managed Instances"),
                              HasSubstr("using continuous instead"))));
  EXPECT_THAT(c.warnings, ::testing::Contains(HasSubstr("RELAY_B_FLUSH=next-invoke")));
  EXPECT_EQ(entry(c, "RELAY_TELEMETRY_SCHEMA")->value, "2025-01-29");
}

TEST(ConfigFile, NewKeysComeFromTheFileToo) {
  Poco::TemporaryFile file;
  {
    std::ofstream out(file.path());
    out << "RELAY_FLUSH=periodic:2000\nRELAY_SPOOL=off\nRELAY_INVOKE_BUDGET_MS=250\n";
  }
  const Config c = load({{"RELAY_CONFIG_FILE", file.path()}});
  EXPECT_TRUE(c.issues.empty());
  EXPECT_EQ(c.flush.period_ms, 2000u);
  EXPECT_FALSE(c.spool);
  EXPECT_EQ(c.invoke_budget_ms, 250u);
  EXPECT_EQ(entry(c, "RELAY_FLUSH")->source, "file " + file.path());
}

// Both crashed the extension with an uncaught POCO exception (found by tests/fuzz/fuzz_config).
TEST(ConfigFile, DottedKeysAreIgnoredNotFatal) {
  Poco::TemporaryFile file;
  {
    std::ofstream out(file.path());
    out << "a.b=1\nRELAY_HTTP_X.Y=2\nDISPATCH_MIN_BATCH_SIZE=3\n";
  }
  Config c;
  ASSERT_NO_THROW(c = load({{"RELAY_CONFIG_FILE", file.path()}}));
  EXPECT_EQ(c.min_batch_size, 3);
}

TEST(Config, ValuesAreTakenLiterallyWithoutVariableExpansion) {
  Config c;
  ASSERT_NO_THROW(c = load({{"DISPATCH_POST_URI", "http://127.0.0.1/${HOME}"}}));
  EXPECT_EQ(sink_value(c, "http", "post_uri"), "http://127.0.0.1/${HOME}");
  ASSERT_NO_THROW(c = load({{"RELAY_SINKS", "${RELAY_SINKS}"}}));
  ASSERT_FALSE(c.issues.empty());
  EXPECT_THAT(c.issues[0].message, HasSubstr("${RELAY_SINKS}"));
}

TEST(ConfigFile, TheShippedPropertiesFileIsValidAndMatchesTheDefaults) {
  const Config c = load({{"RELAY_CONFIG_FILE", RELAY_SOURCE_DIR "/config/relay.properties"}});
  EXPECT_TRUE(c.issues.empty());
  const Config d = load({});
  for (const auto& e : d.entries) {
    if (e.key == "RELAY_CONFIG_FILE") continue;  // set to the file here, of course
    const ConfigEntry* in_file = entry(c, e.key);
    ASSERT_NE(in_file, nullptr) << e.key;
    EXPECT_EQ(in_file->value, e.value) << e.key;
  }
}

}  // namespace
}  // namespace relay
