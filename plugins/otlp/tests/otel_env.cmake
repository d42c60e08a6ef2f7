# parse_otel_list (src/otel_env.cpp), compiled into the test itself.
add_executable(otlp_otel_env_test ${CMAKE_CURRENT_LIST_DIR}/otel_env_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/../src/otel_env.cpp)
target_include_directories(otlp_otel_env_test PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../src)
target_link_libraries(otlp_otel_env_test PRIVATE relay_warnings GTest::gtest_main Poco::Foundation)
gtest_discover_tests(otlp_otel_env_test PROPERTIES LABELS unit DISCOVERY_TIMEOUT 60)
