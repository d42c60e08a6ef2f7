# The OpenTelemetry exporter's "k1=v1,k2=v2" syntax (RELAY_OTLP_HEADERS, OTEL_RESOURCE_ATTRIBUTES).
set(RELAY_OTLP_ENV_SOURCES ${CMAKE_CURRENT_LIST_DIR}/src/otel_env.cpp)
