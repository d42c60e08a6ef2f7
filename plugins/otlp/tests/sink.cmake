# The built otlp plugin, loaded like the host loads it, against local HTTP servers; requests
# decoded with the official schema (relay_otlp_proto).
add_executable(otlp_sink_test ${CMAKE_CURRENT_LIST_DIR}/sink_test.cpp)
target_include_directories(otlp_sink_test PRIVATE ${PROJECT_SOURCE_DIR}/sdk/tests)
target_link_libraries(otlp_sink_test PRIVATE relay_sdk_headers relay_otlp_proto relay_warnings
  GTest::gtest_main Poco::NetSSL Poco::Crypto Poco::Net Poco::Foundation ${CMAKE_DL_LIBS})
target_compile_definitions(otlp_sink_test PRIVATE RELAY_PLUGIN_DIR="${RELAY_PLUGIN_OUTPUT_DIR}")
add_dependencies(otlp_sink_test relay-sink-otlp)
gtest_discover_tests(otlp_sink_test PROPERTIES LABELS unit DISCOVERY_TIMEOUT 60)
