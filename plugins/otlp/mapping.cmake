# Lambda Telemetry API events to OTLP logs, spans and metrics (lambda_mapping.h).
set(RELAY_OTLP_MAPPING_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/src/lambda_mapping.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/lambda_log_line.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/timestamps.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/xray_trace_header.cpp)
