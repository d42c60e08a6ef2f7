#pragma once

// Reading the files a test run leaves behind (an extension's stderr, a sink's output).

#include <fstream>
#include <string>
#include <vector>

namespace relay::emu {

inline std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace relay::emu
