# ctest -L sdk: a network sink built out of tree against the installed SDK package (and the
# machine's POCO), as an author would:
#   1. cmake --install <build> --component sdk;
#   2. builds the installed examples/webhook-sink (relay_add_sink(... NETWORK)) out of tree;
#   3. checks both builds export only relay_sink_entry, that the plugin maps no TLS library and
#      its TLS build does (the toolkit is linked into both), and that the layer zip holds both;
#   4. runs it in the emulator through the installed host against an https:// endpoint nobody
#      listens on: the plugin loads its TLS build and the toolkit's client reports the refusal.
foreach(var BUILD_DIR WORK_DIR GENERATOR CXX_COMPILER ARCH)
  if(NOT ${var})
    message(FATAL_ERROR "network_package_test.cmake: -D${var}= is required")
  endif()
endforeach()

function(run step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${step} failed (${rc}):\n${out}")
  endif()
  set(output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
run("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --component sdk --prefix ${prefix})
foreach(file include/telemetry_relay/net/client.hpp
        share/telemetry-relay-sdk/examples/webhook-sink/CMakeLists.txt)
  if(NOT EXISTS ${prefix}/${file})
    message(FATAL_ERROR "the SDK install lacks ${file}")
  endif()
endforeach()

set(build ${WORK_DIR}/build)
set(configure_args -S ${prefix}/share/telemetry-relay-sdk/examples/webhook-sink -B ${build}
  -G ${GENERATOR} -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=${prefix}
  -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if(MAKE_PROGRAM)
  list(APPEND configure_args -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()
run("configure example" ${CMAKE_COMMAND} ${configure_args})
run("build example" ${CMAKE_COMMAND} --build ${build})

set(plugin ${build}/librelay-sink-webhook.so)
set(tls ${build}/librelay-webhook-tls.so)
foreach(library ${plugin} ${tls})
  if(NOT EXISTS ${library})
    message(FATAL_ERROR "the example did not produce ${library}")
  endif()
  run("nm" nm -D --defined-only ${library})
  string(REGEX MATCHALL "[^\n]+" lines "${output}")
  set(exported "")
  foreach(line ${lines})
    string(REGEX REPLACE "^[0-9a-fA-F]* *[A-Za-z] " "" symbol "${line}")
    list(APPEND exported ${symbol})
  endforeach()
  if(NOT exported STREQUAL "relay_sink_entry")
    message(FATAL_ERROR "${library} must export only relay_sink_entry, exports: ${exported}")
  endif()
endforeach()

# The toolkit's client is in both; only the TLS build may need NetSSL or OpenSSL.
run("nm plugin" nm -C ${plugin})
if(NOT output MATCHES "relay::sdk::net::HttpClient::post")
  message(FATAL_ERROR "${plugin} does not hold the toolkit's HttpClient")
endif()
run("readelf plugin" readelf -d ${plugin})
if(output MATCHES "NEEDED[^\n]*(libssl|libcrypto|NetSSL|PocoCrypto)")
  message(FATAL_ERROR "${plugin} needs a TLS library:\n${output}")
endif()
run("nm tls" nm -C ${tls})
if(NOT output MATCHES "relay::sdk::net::detail::make_tls_context")
  message(FATAL_ERROR "${tls} does not hold the toolkit's TLS half")
endif()

run("build layer" ${CMAKE_COMMAND} --build ${build} --target relay-sink-webhook-layer)
set(unzipped ${WORK_DIR}/unzipped)
file(MAKE_DIRECTORY ${unzipped})
run("unzip layer" ${CMAKE_COMMAND} -E chdir ${unzipped} ${CMAKE_COMMAND} -E tar xf
  ${build}/dist/telemetry-relay-sink-webhook-1.0.0-${ARCH}.zip)
file(GLOB_RECURSE entries LIST_DIRECTORIES false RELATIVE ${unzipped} ${unzipped}/*)
list(SORT entries)
if(NOT entries STREQUAL "extensions/lib/librelay-sink-webhook.so;telemetry-relay/lib/librelay-webhook-tls.so")
  message(FATAL_ERROR "the webhook layer must hold the plugin and its TLS build: ${entries}")
endif()

# A port nobody listens on: bound, then closed.
set(host_log ${WORK_DIR}/relay.stderr)
execute_process(COMMAND ${prefix}/bin/relay-run-sink ${plugin} --invocations 1 --json
  --env RELAY_WEBHOOK_ENDPOINT=https://user:S3CR3T@127.0.0.1:9/in?token=S3CR3T
  --env RELAY_LOG_LEVEL=debug --stderr ${host_log}
  RESULT_VARIABLE rc OUTPUT_VARIABLE output ERROR_VARIABLE errors)
file(READ ${host_log} log)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "relay-run-sink failed (${rc}):\n${output}\n${errors}\n${log}")
endif()
foreach(expected "posting to https://127.0.0.1:9" "https: TLS from [^\n]*librelay-webhook-tls\\.so"
        "connection refused by 127\\.0\\.0\\.1:9")
  if(NOT log MATCHES "${expected}")
    message(FATAL_ERROR "the host log lacks '${expected}':\n${log}")
  endif()
endforeach()
if(log MATCHES "S3CR3T")
  message(FATAL_ERROR "a secret of the endpoint reached the log:\n${log}")
endif()
message(STATUS "network sink package OK: ${plugin} and ${tls} hold the toolkit, only the TLS "
  "build maps TLS, the layer holds both, and https loaded the TLS build in the emulator")
