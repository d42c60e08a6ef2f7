# fuzz_http_response drives the http sink's response handling (plugins/http/http_response.h,
# header-only) with POCO's client session, which relay_core already links.
target_include_directories(fuzz_http_response PRIVATE ${PROJECT_SOURCE_DIR}/plugins/http)
# POCO 1.11 keeps any three-digit status ("999", "-5") in its HTTPStatus enum, whose range ends at
# 511, so UBSan's enum check fires inside HTTPResponse::getStatus() for every such answer; the
# sink reads the value as an int and judges a status outside 100-599 invalid itself.
target_compile_options(fuzz_http_response PRIVATE -fno-sanitize=enum)
