# The encoders and the response parser, checked by decoding with the official OpenTelemetry
# schema (relay_otlp_proto); a benchmark of ns per log record (not a ctest test).
add_executable(otlp_encoding_test ${CMAKE_CURRENT_LIST_DIR}/encoding_test.cpp)
target_link_libraries(otlp_encoding_test PRIVATE relay_otlp_core relay_otlp_proto
  GTest::gtest_main relay_warnings)
gtest_discover_tests(otlp_encoding_test PROPERTIES LABELS unit)

add_executable(otlp_encoding_bench ${CMAKE_CURRENT_LIST_DIR}/encoding_bench.cpp)
target_link_libraries(otlp_encoding_bench PRIVATE relay_otlp_core relay_warnings
  benchmark::benchmark)
