// The configuration documentation, generated from the key tables: the README's tables (between
// <!-- config-table:<name> --> and <!-- /config-table:<name> --> markers) and
// config/relay.properties. tests/unit/config_doc_test.cpp fails when the checked-in text drifts;
// host/tools/relay_config_doc.cpp rewrites it.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "plugin_loader.h"

namespace relay {

// The sinks whose keys the README and relay.properties document (loaded from the plugin folder).
inline const std::vector<std::string> kDocumentedSinks = {"http", "otlp"};

// A Markdown table of every host key, then the RELAY_<SINK>_* patterns.
std::string host_keys_markdown();
// A Markdown table of one sink's declared keys, as environment variables.
std::string sink_keys_markdown(const std::string& sink, std::span<const relay_config_key> keys);
// The whole config/relay.properties: every host key (set to its default, or commented out when
// it adapts), then each sink's keys commented out.
std::string properties_file(const std::vector<std::pair<std::string, SinkKeyTable>>& sinks);

// The text between the markers of `name` (without the marker lines), nullopt without markers.
std::optional<std::string> between_markers(const std::string& text, const std::string& name);
// text with what stands between the markers of `name` replaced; nullopt without markers.
std::optional<std::string> replace_between_markers(const std::string& text, const std::string& name,
                                                   const std::string& content);
std::string begin_marker(const std::string& name);  // "<!-- config-table:host -->"
std::string end_marker(const std::string& name);    // "<!-- /config-table:host -->"

}  // namespace relay
