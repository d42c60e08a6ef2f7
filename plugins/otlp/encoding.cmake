# The OTLP encoders (protobuf and JSON) and the export response parser.
set(RELAY_OTLP_ENCODING_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/src/protobuf_encoder.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/json_encoder.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/export_response.cpp)
