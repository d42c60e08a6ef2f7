#include "config_doc.h"

#include <Poco/String.h>

#include <sstream>

#include "config_table.h"

namespace relay {
namespace {

std::string text(const char* s) { return s == nullptr ? std::string() : std::string(s); }

// Help text in a table cell: '|' would end the cell, '<' open an HTML tag.
std::string cell(std::string s) {
  Poco::replaceInPlace(s, "|", "\\|");
  Poco::replaceInPlace(s, "<", "&lt;");
  Poco::replaceInPlace(s, ">", "&gt;");
  return s;
}

std::string code(const std::string& s) { return "`" + s + "`"; }

std::string default_cell(const relay_config_key& k) {
  const std::string value = text(k.default_value);
  return value.empty() ? "unset" : code(value);
}

const char* kTableHead =
    "| Variable | Default | Accepts | Meaning |\n"
    "|---|---|---|---|\n";

std::string row(const std::string& variable, const std::string& fallback,
                const std::string& accepts, const std::string& help) {
  return "| " + variable + " | " + fallback + " | " + cell(accepts) + " | " + cell(help) + " |\n";
}

// "# "-prefixed lines of at most 100 columns.
std::string comment(const std::string& words) {
  std::string out, line;
  std::istringstream in(words);
  for (std::string word; in >> word;) {
    if (!line.empty() && line.size() + 1 + word.size() > 98) {
      out += "# " + line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
  }
  if (!line.empty()) out += "# " + line + "\n";
  return out;
}

}  // namespace

std::string host_keys_markdown() {
  std::string out = kTableHead;
  for (const HostKey& h : host_keys()) {
    const relay_config_key& k = h.key;
    std::string help = text(k.help);
    if (h.use == KeyUse::kEnvironment) help += " (environment only)";
    out += row(code(k.name), default_cell(k), host_key_accepts(h), help);
  }
  for (const relay_config_key& k : host_pattern_keys()) {
    out += row(code(k.name), "", "", text(k.help));
  }
  return out;
}

std::string sink_keys_markdown(const std::string& sink, std::span<const relay_config_key> keys) {
  if (keys.empty()) return "The `" + sink + "` sink declares no configuration keys.\n";
  std::string out = kTableHead;
  for (const relay_config_key& k : keys) {
    std::string variable;
    if ((k.flags & RELAY_KEY_PREFIX) != 0) {
      variable = code(sink_variable(sink, k.name) + "<NAME>");
    } else if (const std::string_view alias = sink_key_alias(sink, k.name); !alias.empty()) {
      variable = code(std::string(alias)) + " (or " + code(sink_variable(sink, k.name)) + ")";
    } else {
      variable = code(sink_variable(sink, k.name));
    }
    out += row(variable, (k.flags & RELAY_KEY_PREFIX) != 0 ? "" : default_cell(k), sdk::describe(k),
               text(k.help));
  }
  return out;
}

std::string properties_file(const std::vector<std::pair<std::string, SinkKeyTable>>& sinks) {
  std::string out =
      "# telemetry-relay configuration file (optional). Point RELAY_CONFIG_FILE at a file like "
      "this one.\n"
      "# Same keys as the environment variables; the environment wins over the file, the file "
      "over the\n"
      "# built-in defaults shown here. Invalid values are logged (key, value, what is used "
      "instead) and\n"
      "# replaced by the default; RELAY_STRICT=true turns them into a failed init instead.\n"
      "#\n"
      "# Generated from the configuration tables (host/src/config_table.cpp, each sink's "
      "kConfigKeys)\n"
      "# by relay-config-doc; tests/unit/config_doc_test.cpp fails when it drifts.\n";
  for (const HostKey& h : host_keys()) {
    if (h.use == KeyUse::kEnvironment) continue;
    const relay_config_key& k = h.key;
    if (h.section != nullptr) out += "\n# == " + std::string(h.section) + " ==\n";
    out += "\n" + comment(text(k.help) + " [" + host_key_accepts(h) + "]");
    if (h.use == KeyUse::kAdapts) {
      out += "# Left unset here on purpose: set, it no longer adapts.\n# ";
    }
    out += std::string(k.name) + "=" + text(k.default_value) + "\n";
  }
  for (const auto& [sink, keys] : sinks) {
    out += "\n# == The " + sink + " sink's own keys (RELAY_" + Poco::toUpper(sink) + "_<KEY>) ==\n";
    if (keys.empty()) out += "# (it declares none)\n";
    for (const relay_config_key& k : keys) {
      const bool prefix = (k.flags & RELAY_KEY_PREFIX) != 0;
      out += "\n" + comment(text(k.help) + " [" + sdk::describe(k) + "]");
      out += "# " + sink_variable(sink, k.name) + (prefix ? "<NAME>=" : "=") +
             (prefix ? "" : text(k.default_value)) + "\n";
    }
  }
  return out;
}

std::string begin_marker(const std::string& name) { return "<!-- config-table:" + name + " -->"; }
std::string end_marker(const std::string& name) { return "<!-- /config-table:" + name + " -->"; }

std::optional<std::string> between_markers(const std::string& text, const std::string& name) {
  const std::string begin = begin_marker(name) + "\n";
  const size_t start = text.find(begin);
  if (start == std::string::npos) return std::nullopt;
  const size_t end = text.find(end_marker(name), start + begin.size());
  if (end == std::string::npos) return std::nullopt;
  return text.substr(start + begin.size(), end - start - begin.size());
}

std::optional<std::string> replace_between_markers(const std::string& text, const std::string& name,
                                                   const std::string& content) {
  const std::string begin = begin_marker(name) + "\n";
  const size_t start = text.find(begin);
  if (start == std::string::npos) return std::nullopt;
  const size_t end = text.find(end_marker(name), start + begin.size());
  if (end == std::string::npos) return std::nullopt;
  return text.substr(0, start + begin.size()) + content + text.substr(end);
}

}  // namespace relay
