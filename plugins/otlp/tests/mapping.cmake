# The Lambda-to-OTLP mapping: unit tests, and a benchmark run by hand (no CTest entry).
if(TARGET relay_otlp_core)
  add_executable(otlp_mapping_test ${CMAKE_CURRENT_LIST_DIR}/mapping_test.cpp)
  target_link_libraries(otlp_mapping_test PRIVATE relay_otlp_core GTest::gtest_main relay_warnings)
  gtest_discover_tests(otlp_mapping_test PROPERTIES LABELS unit DISCOVERY_TIMEOUT 60)

  add_executable(otlp_mapping_bench ${CMAKE_CURRENT_LIST_DIR}/mapping_bench.cpp)
  target_link_libraries(otlp_mapping_bench PRIVATE relay_otlp_core benchmark::benchmark relay_warnings)
endif()
