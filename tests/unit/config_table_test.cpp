// The configuration tables: the host's (config_table.h) and a sink's declared keys, validated by
// the one relay::sdk::validate(), shown in --check with their sources, secrets nowhere.
#include "config_table.h"

#include <Poco/PipeStream.h>
#include <Poco/Process.h>
#include <Poco/TemporaryFile.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include "config.h"
#include "plugin_loader.h"

namespace relay {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using Env = std::map<std::string, std::string>;

// One key of every kind, as a sink declares them; "s" and "http" declare these here.
constexpr relay_config_key kSinkKeys[] = {
    sdk::key::integer("timeout_ms", "1000", 1, 60000, "A bounded number"),
    sdk::key::boolean("gzip", "false", "A switch"),
    sdk::key::choice("level", "info", "debug|info", "One of two"),
    sdk::key::uri("post_uri", "", "https|http", "Where to POST"),
    sdk::key::string("ca_file", "", "A path"),
    sdk::key::string("dsn", "", "A secret whose name does not say so", RELAY_KEY_SECRET),
    sdk::key::prefix("header_", "Extra headers", RELAY_KEY_SECRET),
};

std::optional<SinkKeyTable> fake_keys(const std::string&, const std::string& sink) {
  if (sink == "http" || sink == "s")
    return SinkKeyTable(std::begin(kSinkKeys), std::end(kSinkKeys));
  return std::nullopt;
}

Config load(const Env& env) { return load_config(env, fake_keys); }

std::string value_of(const SinkConfig& config, const std::string& key) {
  for (const auto& [k, v] : config) {
    if (k == key) return v;
  }
  return "<absent>";
}

const ConfigEntry* sink_entry(const Config& c, const std::string& sink, const std::string& key) {
  for (const ConfigEntry& e : c.sink_entries.at(sink)) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

std::vector<std::string> messages(const Config& c) {
  std::vector<std::string> out;
  for (const ConfigIssue& issue : c.issues) out.push_back(issue.message);
  return out;
}

TEST(HostTable, EveryKeyOnceWithHelpAndADefaultItsOwnRulesAccept) {
  std::set<std::string> names;
  for (const relay_config_key& k : host_config_keys()) {
    EXPECT_TRUE(names.insert(k.name).second) << k.name << " declared twice";
    EXPECT_NE(k.help, nullptr) << k.name;
    EXPECT_GT(std::string(k.help != nullptr ? k.help : "").size(), 10u) << k.name;
    const std::string fallback = host_default(k.name);
    if (fallback.empty()) continue;
    const std::pair<std::string_view, std::string_view> given[] = {{k.name, fallback}};
    EXPECT_TRUE(sdk::validate(host_config_keys(), given).issues.empty()) << k.name;
  }
  // Every key the host read before the table existed, and the seed variables.
  for (const char* key : {"RELAY_LOG_LEVEL",
                          "RELAY_SINKS",
                          "RELAY_PLUGIN_DIR",
                          "RELAY_STRICT",
                          "RELAY_LISTENER_PORT",
                          "RELAY_LISTENER_MAX_BODY_BYTES",
                          "RELAY_TELEMETRY_TYPES",
                          "RELAY_TELEMETRY_SCHEMA",
                          "RELAY_TELEMETRY_MAX_ITEMS",
                          "RELAY_TELEMETRY_MAX_BYTES",
                          "RELAY_TELEMETRY_TIMEOUT_MS",
                          "RELAY_BUFFER_MAX_BYTES",
                          "RELAY_BUFFER_FLUSH_BYTES",
                          "RELAY_DELIVERY_MAX_BYTES",
                          "RELAY_FLUSH",
                          "RELAY_INVOKE_BUDGET_MS",
                          "RELAY_SPOOL",
                          "RELAY_SPOOL_DIR",
                          "RELAY_SPOOL_MAX_BYTES",
                          "RELAY_SPOOL_MAX_FILES",
                          "RELAY_RETRY_MAX_ATTEMPTS",
                          "RELAY_RETRY_MAX_AGE_S",
                          "RELAY_MANAGED_INSTANCES",
                          "RELAY_SHUTDOWN_QUIET_MS",
                          "RELAY_SHUTDOWN_MARGIN_MS",
                          "DISPATCH_MIN_BATCH_SIZE",
                          "DISPATCH_POST_URI",
                          "RELAY_CONFIG_FILE"}) {
    EXPECT_NE(host_config_key(key), nullptr) << key;
  }
  EXPECT_EQ(names.size(), 28u) << "a new key: add it to the list above";
  // The special rules parse the defaults too.
  EXPECT_TRUE(parse_flush_policy(host_default("RELAY_FLUSH")));
  EXPECT_THROW(host_default("RELAY_NO_SUCH_KEY"), std::out_of_range);
}

// Config's member initialisers and the table must say the same (defaults live in the table).
TEST(HostTable, ConfigMemberInitialisersEqualTheTable) {
  const Config c;
  auto number = [](const char* key) { return std::stoll(host_default(key)); };
  EXPECT_EQ(c.log_level, host_default("RELAY_LOG_LEVEL"));
  EXPECT_EQ(c.sinks, std::vector<std::string>{host_default("RELAY_SINKS")});
  EXPECT_EQ(c.plugin_dir, host_default("RELAY_PLUGIN_DIR"));
  EXPECT_EQ(c.strict, host_default("RELAY_STRICT") == "true");
  EXPECT_EQ(c.listener_port, number("RELAY_LISTENER_PORT"));
  EXPECT_EQ(c.min_batch_size, number("DISPATCH_MIN_BATCH_SIZE"));
  EXPECT_EQ(static_cast<int64_t>(c.buffer_max_bytes), number("RELAY_BUFFER_MAX_BYTES"));
  EXPECT_EQ(static_cast<int64_t>(c.buffer_flush_bytes), number("RELAY_BUFFER_FLUSH_BYTES"));
  EXPECT_EQ(static_cast<int64_t>(c.delivery_max_bytes), number("RELAY_DELIVERY_MAX_BYTES"));
  EXPECT_EQ(c.shutdown_quiet_ms, number("RELAY_SHUTDOWN_QUIET_MS"));
  EXPECT_EQ(c.shutdown_margin_ms, number("RELAY_SHUTDOWN_MARGIN_MS"));
  EXPECT_EQ(to_string(c.flush), host_default("RELAY_FLUSH"));
  EXPECT_EQ(c.invoke_budget_ms, number("RELAY_INVOKE_BUDGET_MS"));
  EXPECT_EQ(c.spool, host_default("RELAY_SPOOL") == "on");
  EXPECT_EQ(c.spool_dir, host_default("RELAY_SPOOL_DIR"));
  EXPECT_EQ(static_cast<int64_t>(c.spool_max_bytes), number("RELAY_SPOOL_MAX_BYTES"));
  EXPECT_EQ(c.spool_max_files, number("RELAY_SPOOL_MAX_FILES"));
  EXPECT_EQ(c.retry_max_attempts, number("RELAY_RETRY_MAX_ATTEMPTS"));
  EXPECT_EQ(c.retry_max_age_s, number("RELAY_RETRY_MAX_AGE_S"));
  EXPECT_EQ(c.managed_instances_setting, host_default("RELAY_MANAGED_INSTANCES"));
  // And what load_config makes of an empty environment.
  const Config loaded = load({});
  EXPECT_TRUE(loaded.issues.empty());
  EXPECT_EQ(loaded.log_level, c.log_level);
  EXPECT_EQ(loaded.sinks, c.sinks);
  EXPECT_EQ(loaded.buffer_flush_bytes, c.buffer_flush_bytes);
  EXPECT_EQ(loaded.spool, c.spool);
  EXPECT_EQ(loaded.spool_max_bytes, c.spool_max_bytes);
  EXPECT_EQ(loaded.subscription.max_items, std::stoul(host_default("RELAY_TELEMETRY_MAX_ITEMS")));
  EXPECT_EQ(loaded.subscription.timeout_ms, std::stoul(host_default("RELAY_TELEMETRY_TIMEOUT_MS")));
}

TEST(HostTable, SinkVariablesAreUpperCasedWithUnderscores) {
  EXPECT_EQ(sink_variable("my-sink", "connect_timeout_ms"), "RELAY_MY_SINK_CONNECT_TIMEOUT_MS");
  EXPECT_EQ(sink_variable("http", ""), "RELAY_HTTP_");
  EXPECT_EQ(sink_key_alias("http", "post_uri"), "DISPATCH_POST_URI");
  EXPECT_EQ(sink_key_alias("s", "post_uri"), "");
}

struct BadValue {
  const char* variable;
  const char* value;
  const char* line;  // the whole issue after "<variable>="
};

// One error line per issue, naming the variable, the value and what is used instead.
TEST(SinkKeys, EveryTypeIsValidatedWithOneLineNamingTheVariable) {
  for (const BadValue& bad : {
           BadValue{"RELAY_S_TIMEOUT_MS", "0",
                    "0: not an integer in [1, 60000]; using 1000 instead"},
           BadValue{"RELAY_S_TIMEOUT_MS", "60001",
                    "60001: not an integer in [1, 60000]; using 1000 instead"},
           BadValue{"RELAY_S_TIMEOUT_MS", "1e3",
                    "1e3: not an integer in [1, 60000]; using 1000 instead"},
           BadValue{"RELAY_S_GZIP", "maybe",
                    "maybe: not a boolean (true/false, on/off, yes/no, 1/0); using false instead"},
           BadValue{"RELAY_S_LEVEL", "loud", "loud: not one of debug, info; using info instead"},
           BadValue{"RELAY_S_POST_URI", "ftp://host/in",
                    "ftp://host/in: not an absolute URI with scheme https, http; left unset"},
           BadValue{
               "RELAY_S_POST_URI", "https:///in",
               "https://<no host> (not a valid URI: the rest is not shown): a URI without a host; "
               "left unset"},
           BadValue{"RELAY_S_CA_FILE", "/etc/ca\x01",
                    "/etc/ca\\x01: text with control characters; left unset"},
           BadValue{"RELAY_S_BOGUS", "1",
                    "1: not a key of the s sink (it reads timeout_ms, gzip, level, post_uri, "
                    "ca_file, dsn, header_*); ignored"},
       }) {
    const Config c = load({{"RELAY_SINKS", "s"}, {bad.variable, bad.value}});
    ASSERT_EQ(c.issues.size(), 1u) << bad.variable << "=" << bad.value;
    EXPECT_EQ(c.issues[0].key, bad.variable);
    EXPECT_EQ(c.issues[0].message, std::string(bad.variable) + "=" + bad.line);
    EXPECT_EQ(value_of(c.sink_configs.at("s"), "bogus"), "<absent>") << "undeclared: not passed";
  }
  // Three bad keys are three lines.
  const Config three = load({{"RELAY_SINKS", "s"},
                             {"RELAY_S_TIMEOUT_MS", "x"},
                             {"RELAY_S_LEVEL", "x"},
                             {"RELAY_S_NOPE", "x"}});
  EXPECT_EQ(three.issues.size(), 3u);
  for (const ConfigIssue& issue : three.issues)
    EXPECT_EQ(issue.message.find('\n'), std::string::npos);
}

TEST(SinkKeys, ValidValuesArePassedNormalisedAndDefaultsFillTheRest) {
  for (const auto& [spelling, normal] :
       std::vector<std::pair<const char*, const char*>>{{"YES", "true"},
                                                        {"on", "true"},
                                                        {"1", "true"},
                                                        {"True", "true"},
                                                        {"no", "false"},
                                                        {"OFF", "false"},
                                                        {"0", "false"},
                                                        {"false", "false"}}) {
    const Config c = load({{"RELAY_SINKS", "s"}, {"RELAY_S_GZIP", spelling}});
    EXPECT_TRUE(c.issues.empty()) << spelling;
    EXPECT_EQ(value_of(c.sink_configs.at("s"), "gzip"), normal) << spelling;
  }
  const Config c = load({{"RELAY_SINKS", "s"},
                         {"RELAY_S_TIMEOUT_MS", " 250 "},
                         {"RELAY_S_LEVEL", "DEBUG"},
                         {"RELAY_S_POST_URI", "HTTPS://collector.example/in"},
                         {"RELAY_S_HEADER_X_API_KEY", "k3y-value"}});
  EXPECT_TRUE(c.issues.empty()) << ::testing::PrintToString(messages(c));
  EXPECT_TRUE(c.sinks_with_keys.count("s"));
  EXPECT_EQ(c.sink_configs.at("s"), (SinkConfig{{"timeout_ms", "250"},
                                                {"gzip", "false"},
                                                {"level", "debug"},
                                                {"post_uri", "https://collector.example/in"},
                                                {"header_x_api_key", "k3y-value"}}));
}

// The seed variable of the AWS sample sets http's post_uri, and its issue names it.
TEST(SinkKeys, DispatchPostUriIsHttpsPostUriAndItsIssueNamesIt) {
  const Config seeded = load({{"DISPATCH_POST_URI", "http://collector:8080/in"}});
  EXPECT_TRUE(seeded.issues.empty());
  EXPECT_EQ(value_of(seeded.sink_configs.at("http"), "post_uri"), "http://collector:8080/in");
  EXPECT_EQ(sink_entry(seeded, "http", "DISPATCH_POST_URI")->source, "environment");

  const Config bad = load({{"DISPATCH_POST_URI", "ftp://u:s3cr3t@collector/in"}});
  ASSERT_EQ(bad.issues.size(), 1u);
  EXPECT_THAT(bad.issues[0].message,
              AllOf(HasSubstr("DISPATCH_POST_URI=ftp://<redacted>@collector/in: not an absolute "
                              "URI"),
                    Not(HasSubstr("s3cr3t"))));
  EXPECT_EQ(value_of(bad.sink_configs.at("http"), "post_uri"), "<absent>");

  const Config own =
      load({{"DISPATCH_POST_URI", "http://seed/"}, {"RELAY_HTTP_POST_URI", "http://own/"}});
  EXPECT_EQ(value_of(own.sink_configs.at("http"), "post_uri"), "http://own/");
}

TEST(SinkKeys, CheckEntriesShowEveryDeclaredKeyWithItsSource) {
  Poco::TemporaryFile file;
  std::ofstream(file.path()) << "RELAY_S_LEVEL=debug\nRELAY_S_TIMEOUT_MS=5\n";
  const Config c = load({{"RELAY_CONFIG_FILE", file.path()},
                         {"RELAY_SINKS", "s"},
                         {"RELAY_S_TIMEOUT_MS", "70"},
                         {"RELAY_S_GZIP", "maybe"}});
  ASSERT_EQ(c.issues.size(), 1u);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"RELAY_S_TIMEOUT_MS", "70 [environment]"},
      {"RELAY_S_GZIP", "false [default, environment value invalid]"},
      {"RELAY_S_LEVEL", "debug [file " + file.path() + "]"},
      {"RELAY_S_POST_URI", " [default]"},
      {"RELAY_S_CA_FILE", " [default]"},
      {"RELAY_S_DSN", " [default]"}};
  ASSERT_EQ(c.sink_entries.at("s").size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const ConfigEntry& e = c.sink_entries.at("s")[i];
    EXPECT_EQ(e.key, expected[i].first);
    EXPECT_EQ(e.value + " [" + e.source + "]", expected[i].second) << e.key;
  }
  // Sink keys are listed under their sink, not among the host's.
  for (const ConfigEntry& e : c.entries) EXPECT_THAT(e.key, Not(HasSubstr("RELAY_S_"))) << e.key;
}

TEST(SinkKeys, ASinkWithoutDeclaredKeysGetsItsConfigurationAsBefore) {
  const Config c = load({{"RELAY_SINKS", "old"}, {"RELAY_OLD_ANYTHING", "goes"}});
  EXPECT_TRUE(c.issues.empty());
  EXPECT_FALSE(c.sinks_with_keys.count("old"));
  EXPECT_EQ(c.sink_configs.at("old"), (SinkConfig{{"anything", "goes"}}));
  ASSERT_EQ(c.sink_entries.at("old").size(), 1u);
  EXPECT_EQ(c.sink_entries.at("old")[0].key, "RELAY_OLD_ANYTHING");
}

// RELAY_STRICT turns any issue into an init error (main: Extension.ConfigInvalid); a sink key's
// issue is an issue like any other.
TEST(SinkKeys, UnderStrictASinkKeyIssueIsAConfigurationIssue) {
  const Config c = load({{"RELAY_STRICT", "true"}, {"RELAY_SINKS", "s"}, {"RELAY_S_LEVEL", "x"}});
  EXPECT_TRUE(c.strict);
  ASSERT_EQ(c.issues.size(), 1u);
  EXPECT_THAT(c.issues.front().message, HasSubstr("RELAY_S_LEVEL=x"));
}

// The real source of sink keys: the plugin's descriptor, read from the plugin folder.
TEST(SinkKeys, ReadFromThePluginsDescriptor) {
  const Config c = load_config({{"RELAY_PLUGIN_DIR", RELAY_FIXTURE_PLUGIN_DIR},
                                {"RELAY_SINKS", "keyed,record,missing"},
                                {"RELAY_KEYED_COUNT", "500"},
                                {"RELAY_KEYED_MODE", "FAST"},
                                {"RELAY_RECORD_WHATEVER", "x"}});
  ASSERT_EQ(c.issues.size(), 1u);
  EXPECT_THAT(c.issues[0].message, HasSubstr("RELAY_KEYED_COUNT=500: not an integer in [1, 100]"));
  EXPECT_TRUE(c.sinks_with_keys.count("keyed"));
  EXPECT_EQ(value_of(c.sink_configs.at("keyed"), "count"), "5");
  EXPECT_EQ(value_of(c.sink_configs.at("keyed"), "mode"), "fast");
  EXPECT_FALSE(c.sinks_with_keys.count("record"));
  EXPECT_EQ(value_of(c.sink_configs.at("record"), "whatever"), "x");
  EXPECT_TRUE(c.sink_configs.at("missing").empty());
}

// ---- secrets: every key marked secret, the host's and a sink's ----

std::string run_check(const Env& env) {
  Poco::Pipe out;
  Poco::Process::Env process_env(env.begin(), env.end());
  Poco::ProcessHandle handle = Poco::Process::launch(RELAY_BINARY_DIR "/host/telemetry-relay",
                                                     {"--check"}, nullptr, &out, &out, process_env);
  Poco::PipeInputStream stream(out);
  std::string text((std::istreambuf_iterator<char>(stream)), std::istreambuf_iterator<char>());
  handle.wait();
  return text;
}

// Secret values: one plain, one a URI with credentials, one with a control character (so the
// value is also invalid and quoted in an issue).
const std::vector<std::string> kSecrets = {"plain-s3cr3t-value", "https://u:pa55word@h.example/",
                                           "ctl-s3cr3t\x01value"};

std::vector<std::string> secret_variables(const std::string& sink,
                                          std::span<const relay_config_key> keys) {
  std::vector<std::string> variables;
  for (const relay_config_key& k : keys) {
    if ((k.flags & RELAY_KEY_SECRET) == 0) continue;
    const bool prefix = (k.flags & RELAY_KEY_PREFIX) != 0;
    variables.push_back(sink.empty()
                            ? std::string(k.name)
                            : sink_variable(sink, std::string(k.name) + (prefix ? "x" : "")));
  }
  return variables;
}

void expect_hidden(const std::string& text, const std::string& secret, const std::string& where) {
  EXPECT_EQ(text.find(secret), std::string::npos) << where << " shows " << secret << ":\n" << text;
  if (const size_t at = secret.find("pa55word"); at != std::string::npos) {
    EXPECT_EQ(text.find("pa55word"), std::string::npos) << where;
  }
  if (const size_t cut = secret.find('\x01'); cut != std::string::npos) {
    EXPECT_EQ(text.find(secret.substr(0, cut)), std::string::npos) << where;
  }
}

TEST(Secrets, NoSecretValueInAnyIssueEntryOrCheckOutput) {
  const std::optional<SinkKeyTable> keyed = read_sink_keys(RELAY_FIXTURE_PLUGIN_DIR, "keyed");
  ASSERT_TRUE(keyed);
  std::vector<std::string> variables = secret_variables("", host_config_keys());
  for (const std::string& v : secret_variables("keyed", *keyed)) variables.push_back(v);
  ASSERT_GE(variables.size(), 2u);  // the fixture's dsn and header_*
  for (const std::string& variable : variables) {
    for (const std::string& secret : kSecrets) {
      const Env env{{"RELAY_PLUGIN_DIR", RELAY_FIXTURE_PLUGIN_DIR},
                    {"RELAY_SINKS", "keyed"},
                    {variable, secret}};
      const Config c = load_config(env);
      const std::string where = variable + "=" + secret;
      for (const ConfigIssue& issue : c.issues) expect_hidden(issue.message, secret, where);
      for (const ConfigEntry& e : c.entries) expect_hidden(e.value, secret, where);
      for (const auto& [sink, entries] : c.sink_entries) {
        for (const ConfigEntry& e : entries) expect_hidden(e.value, secret, where);
      }
      for (const std::string& warning : c.warnings) expect_hidden(warning, secret, where);
      // The log lines of main are these issues; --check prints them and every entry.
      const std::string check = run_check(env);
      EXPECT_THAT(check, HasSubstr(variable + "=")) << check;
      expect_hidden(check, secret, "--check with " + where);
      // And a create() that fails quoting them: the loader's message (log, --check, init/error).
      const LoadResult failed = load_sink(RELAY_FIXTURE_PLUGIN_DIR, "keyed",
                                          {{"fail", "yes"}, {"dsn", secret}, {"header_x", secret}});
      EXPECT_EQ(failed.stage, LoadStage::kCreateFailed);
      EXPECT_THAT(failed.message, HasSubstr("keyed: refusing dsn"));
      expect_hidden(failed.message, secret, "create error with " + where);
    }
  }
}

TEST(Check, ListsEverySinkKeyWithItsSourceAndTheInvalidOnes) {
  Poco::TemporaryFile file;
  std::ofstream(file.path()) << "RELAY_KEYED_MODE=fast\n";
  const std::string check = run_check({{"RELAY_PLUGIN_DIR", RELAY_FIXTURE_PLUGIN_DIR},
                                       {"RELAY_CONFIG_FILE", file.path()},
                                       {"RELAY_SINKS", "keyed,record"},
                                       {"RELAY_KEYED_COUNT", "7"},
                                       {"RELAY_KEYED_VERBOSE", "maybe"},
                                       {"RELAY_KEYED_TYPO", "1"},
                                       {"RELAY_RECORD_PATH", "/tmp/x"}});
  for (const std::string& line :
       {std::string("  INVALID RELAY_KEYED_VERBOSE=maybe: not a boolean"),
        std::string("  INVALID RELAY_KEYED_TYPO=1: not a key of the keyed sink"),
        std::string("  keyed  OK  version 0.0.1"),
        std::string("      RELAY_KEYED_PATH=    [default]\n"),
        std::string("      RELAY_KEYED_COUNT=7    [environment]\n"),
        std::string("      RELAY_KEYED_VERBOSE=false    [default, environment value invalid]\n"),
        std::string("      RELAY_KEYED_MODE=fast    [file " + file.path() + "]\n"),
        std::string("      RELAY_KEYED_FAIL=no    [default]\n"),
        std::string("  record  OK  version 0.0.1"),
        std::string("      (declares no configuration keys: passed unchecked)\n"),
        std::string("      RELAY_RECORD_PATH=/tmp/x    [environment]\n"),
        std::string("PROBLEMS FOUND")}) {
    EXPECT_THAT(check, HasSubstr(line));
  }
}

}  // namespace
}  // namespace relay
