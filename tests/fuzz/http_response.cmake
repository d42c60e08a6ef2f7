# fuzz_http_response drives the network toolkit's response handling
# (sdk/include/telemetry_relay/net/response.hpp, header-only) with POCO's client session, which
# relay_core already links.
target_link_libraries(fuzz_http_response PRIVATE relay_sdk_headers)
# POCO 1.11 keeps any three-digit status ("999", "-5") in its HTTPStatus enum, whose range ends at
# 511, so UBSan's enum check fires inside HTTPResponse::getStatus() for every such answer; the
# toolkit reads the value as an int and judges a status outside 100-599 invalid itself.
target_compile_options(fuzz_http_response PRIVATE -fno-sanitize=enum)
