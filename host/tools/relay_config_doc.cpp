// relay-config-doc: prints or rewrites the configuration documentation generated from the key
// tables (config_doc.h). Sink tables come from the built plugins in the plugin folder.
//   relay-config-doc markdown host
//   relay-config-doc markdown <sink> <plugin_dir>
//   relay-config-doc properties <plugin_dir>
//   relay-config-doc update <README.md> <relay.properties> <plugin_dir>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "config_doc.h"

namespace {

using namespace relay;

SinkKeyTable keys_of(const std::string& plugin_dir, const std::string& sink) {
  return read_sink_keys(plugin_dir, sink).value_or(SinkKeyTable{});
}

std::vector<std::pair<std::string, SinkKeyTable>> documented_sinks(const std::string& dir) {
  std::vector<std::pair<std::string, SinkKeyTable>> sinks;
  for (const std::string& sink : kDocumentedSinks) sinks.emplace_back(sink, keys_of(dir, sink));
  return sinks;
}

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int update(const std::string& readme, const std::string& properties, const std::string& dir) {
  std::string text = read(readme);
  std::vector<std::pair<std::string, std::string>> tables = {{"host", host_keys_markdown()}};
  for (const auto& [sink, keys] : documented_sinks(dir)) {
    tables.emplace_back(sink, sink_keys_markdown(sink, keys));
  }
  for (const auto& [name, table] : tables) {
    const auto replaced = replace_between_markers(text, name, table);
    if (!replaced) {
      std::cerr << readme << ": no " << begin_marker(name) << " ... " << end_marker(name)
                << " markers\n";
      return 1;
    }
    text = *replaced;
  }
  std::ofstream(readme, std::ios::binary) << text;
  std::ofstream(properties, std::ios::binary) << properties_file(documented_sinks(dir));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 2 && args[0] == "markdown" && args[1] == "host") {
    std::cout << host_keys_markdown();
    return 0;
  }
  if (args.size() == 3 && args[0] == "markdown") {
    std::cout << sink_keys_markdown(args[1], keys_of(args[2], args[1]));
    return 0;
  }
  if (args.size() == 2 && args[0] == "properties") {
    std::cout << properties_file(documented_sinks(args[1]));
    return 0;
  }
  if (args.size() == 4 && args[0] == "update") return update(args[1], args[2], args[3]);
  std::cerr << "usage: relay-config-doc markdown host | markdown <sink> <plugin_dir> |\n"
               "       properties <plugin_dir> | update <README.md> <relay.properties> "
               "<plugin_dir>\n";
  return 2;
}
