// The configuration documentation is generated from the key tables: the README's tables and
// config/relay.properties must be what the generator writes now, from the host's table and the
// real built http plugin's keys (not a copy of them). On drift, regenerate with:
//   build/release/host/relay-config-doc update README.md config/relay.properties build/release/lib
#include "config_doc.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "config.h"
#include "config_table.h"

namespace relay {
namespace {

using ::testing::HasSubstr;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

const std::string kRegenerate =
    "regenerate: relay-config-doc update README.md config/relay.properties " RELAY_PLUGIN_DIR;

std::vector<std::pair<std::string, SinkKeyTable>> documented_sinks() {
  std::vector<std::pair<std::string, SinkKeyTable>> sinks;
  for (const std::string& sink : kDocumentedSinks) {
    sinks.emplace_back(sink, read_sink_keys(RELAY_PLUGIN_DIR, sink).value_or(SinkKeyTable{}));
  }
  return sinks;
}

TEST(ConfigDocs, TheReadmeTablesAreGeneratedFromTheTables) {
  const std::string readme = read_text(RELAY_SOURCE_DIR "/README.md");
  const std::optional<std::string> host = between_markers(readme, "host");
  ASSERT_TRUE(host) << "README.md has no " << begin_marker("host") << " ... " << end_marker("host")
                    << " section";
  EXPECT_EQ(*host, host_keys_markdown()) << kRegenerate;
  for (const auto& [sink, keys] : documented_sinks()) {
    const std::optional<std::string> table = between_markers(readme, sink);
    ASSERT_TRUE(table) << "README.md has no " << begin_marker(sink) << " section";
    EXPECT_EQ(*table, sink_keys_markdown(sink, keys)) << kRegenerate;
  }
}

TEST(ConfigDocs, RelayPropertiesIsGeneratedFromTheTables) {
  EXPECT_EQ(read_text(RELAY_SOURCE_DIR "/config/relay.properties"),
            properties_file(documented_sinks()))
      << kRegenerate;
}

// What the generator writes: every key, its default and what it accepts; and a file that loads
// without an issue to exactly the defaults.
TEST(ConfigDocs, EveryKeyAppearsWithItsDefault) {
  const std::string markdown = host_keys_markdown();
  const std::string properties = properties_file({});
  for (const HostKey& h : host_keys()) {
    const std::string name = h.key.name;
    EXPECT_THAT(markdown, HasSubstr("| `" + name + "` | ")) << name;
    if (h.use == KeyUse::kEnvironment) {
      EXPECT_THAT(properties, ::testing::Not(HasSubstr(name + "="))) << name;
      continue;
    }
    const std::string line = name + "=" + host_default(name) + "\n";
    EXPECT_THAT(properties, HasSubstr(h.use == KeyUse::kAdapts ? "# " + line : "\n" + line))
        << name;
  }
  EXPECT_THAT(markdown, HasSubstr("| `RELAY_SPOOL_MAX_FILES` | `256` | 1 to 100000 | "));
  EXPECT_THAT(markdown, HasSubstr("| `RELAY_<SINK>_FLUSH` |"));
}

TEST(ConfigDocs, SinkTablesNameTheVariablesAndHideNothingButSecrets) {
  constexpr relay_config_key keys[] = {
      sdk::key::uri("post_uri", "", "https|http", "Where to POST"),
      sdk::key::integer("connect_timeout_ms", "1000", 1, 60000, "Connect timeout | ms"),
      sdk::key::prefix("header_", "Extra header <NAME>", RELAY_KEY_SECRET),
  };
  EXPECT_EQ(sink_keys_markdown("http", keys),
            "| Variable | Default | Accepts | Meaning |\n"
            "|---|---|---|---|\n"
            "| `DISPATCH_POST_URI` (or `RELAY_HTTP_POST_URI`) | unset | absolute https or http URI "
            "| Where to POST |\n"
            "| `RELAY_HTTP_CONNECT_TIMEOUT_MS` | `1000` | 1 to 60000 | Connect timeout \\| ms |\n"
            "| `RELAY_HTTP_HEADER_<NAME>` |  | text, secret | Extra header &lt;NAME&gt; |\n");
  EXPECT_EQ(sink_keys_markdown("none", {}), "The `none` sink declares no configuration keys.\n");
  const std::string properties = properties_file({{"http", SinkKeyTable(keys, keys + 3)}});
  EXPECT_THAT(properties, HasSubstr("\n# RELAY_HTTP_CONNECT_TIMEOUT_MS=1000\n"));
  EXPECT_THAT(properties, HasSubstr("\n# RELAY_HTTP_HEADER_<NAME>=\n"));
}

TEST(ConfigDocs, MarkersAreFoundAndReplaced) {
  const std::string text = "a\n<!-- config-table:host -->\nold\n<!-- /config-table:host -->\nz\n";
  EXPECT_EQ(between_markers(text, "host"), "old\n");
  EXPECT_EQ(replace_between_markers(text, "host", "new\n"),
            "a\n<!-- config-table:host -->\nnew\n<!-- /config-table:host -->\nz\n");
  EXPECT_FALSE(between_markers(text, "http"));
  EXPECT_FALSE(replace_between_markers("<!-- config-table:host -->\nno end", "host", "x"));
}

}  // namespace
}  // namespace relay
