# fuzz_otlp: the otlp sink's mapping, encoders and response parser (their sources, compiled here).
include(${PROJECT_SOURCE_DIR}/plugins/otlp/encoding.cmake)
include(${PROJECT_SOURCE_DIR}/plugins/otlp/mapping.cmake)
target_sources(fuzz_otlp PRIVATE ${RELAY_OTLP_ENCODING_SOURCES} ${RELAY_OTLP_MAPPING_SOURCES})
target_include_directories(fuzz_otlp PRIVATE ${PROJECT_SOURCE_DIR}/plugins/otlp/src)
