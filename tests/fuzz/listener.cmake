# The independent validator delivered events are held to (Debian nlohmann-json3-dev).
find_package(nlohmann_json 3 REQUIRED)
target_link_libraries(fuzz_listener PRIVATE nlohmann_json::nlohmann_json)
