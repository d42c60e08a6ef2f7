#pragma once

// Reading the files a test run leaves behind (an extension's stderr, a sink's output).

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace relay::emu {

inline std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace relay::emu
