# The independent validator the parser is held to (Debian nlohmann-json3-dev, header only).
find_package(nlohmann_json 3 REQUIRED)
target_link_libraries(fuzz_batch_parser PRIVATE nlohmann_json::nlohmann_json)
