# relay_add_sink(): builds a telemetry-relay sink plugin the one way the host can load it.
#
#   relay_add_sink(NAME <name> SOURCES <src>... [VERSION <v>] [OUTPUT_DIRECTORY <dir>]
#                  [LAYER_DIRECTORY <dir>] [SHARED_CXX_RUNTIME] [NETWORK [URI_KEY <key>]])
#
# Produces the MODULE library librelay-sink-<name>.so (target relay-sink-<name>) that exports
# only relay_sink_entry and carries its own static libstdc++/libgcc, because the Lambda image's
# libstdc++ is older than the build machine's. Link further libraries with
# target_link_libraries(relay-sink-<name> PRIVATE ...). The sources see RELAY_SINK_NAME and
# RELAY_SINK_VERSION, e.g. RELAY_SINK_PLUGIN(MySink, RELAY_SINK_NAME, RELAY_SINK_VERSION).
# Target relay-sink-<name>-layer zips the plugin as a sink layer holding only
# extensions/lib/librelay-sink-<name>.so (mode 0755), named
# telemetry-relay-sink-<name>-<version>-<arch>.zip (arch as Lambda names it: x86_64 or arm64)
# in LAYER_DIRECTORY, default RELAY_SINK_LAYER_DIR (${CMAKE_BINARY_DIR}/dist). The target's
# RELAY_LAYER_ZIP property holds the zip's path.
#
# SHARED_CXX_RUNTIME: link libstdc++/libgcc_s dynamically. Required when the plugin links shared
# C++ libraries that throw (e.g. POCO): an exception raised by the shared libgcc_s unwinder and
# caught by a statically linked personality routine aborts the process. Such a plugin's layer
# must then ship a libstdc++ at least as new as the build machine's.
# RELAY_SINK_STATIC_RUNTIME (default ON) may be turned off for all plugins, e.g. sanitizer builds.
#
# NETWORK: the sink uses the SDK's network toolkit (telemetry_relay/net/client.hpp, built on POCO
# Net; found with find_package(Poco) unless the Poco:: targets exist). The plugin is then built
# twice so that OpenSSL is mapped only for an https:// destination (sdk/src/net/tls_loader.cpp):
#   relay-sink-<name>      librelay-sink-<name>.so, the plugin, without TLS (POCO Net only);
#   relay-<name>-tls       librelay-<name>-tls.so beside it, the same sink with POCO NetSSL and
#                          OpenSSL, loaded by the plugin at the first https delivery.
# Both link the object library relay-sink-<name>-objects, which compiles SOURCES and the
# toolkit: give your sources include directories and libraries there
# (target_link_libraries(relay-sink-<name>-objects PUBLIC ...)). The schemes of the sink's
# declared URI keys (every RELAY_KEY_URI entry of kConfigKeys allowing https, or URI_KEY alone)
# pick the build: TLS when any is https. The layer zip then also holds telemetry-relay/lib/librelay-<name>-tls.so. With a
# shared POCO, NETWORK implies SHARED_CXX_RUNTIME.
include_guard(GLOBAL)

option(RELAY_SINK_STATIC_RUNTIME "Link sink plugins with static libstdc++ and libgcc" ON)
set(RELAY_SINK_LAYER_DIR "${CMAKE_BINARY_DIR}/dist" CACHE PATH "Where sink layer zips are written")

# Lambda's name for the target architecture (a cross toolchain sets CMAKE_SYSTEM_PROCESSOR).
function(relay_lambda_arch out)
  string(TOLOWER "${CMAKE_SYSTEM_PROCESSOR}" processor)
  if(processor MATCHES "^(x86_64|amd64)$")
    set(${out} x86_64 PARENT_SCOPE)
  elseif(processor MATCHES "^(aarch64|arm64)$")
    set(${out} arm64 PARENT_SCOPE)
  else()
    set(${out} "${processor}" PARENT_SCOPE)  # not a Lambda architecture; the zip says what it is
  endif()
endfunction()

# relay_sink_library(<target> NAME <sink name> VERSION <v> OUTPUT_NAME <base> OUTPUT_DIRECTORY <dir>
#                    [SHARED_CXX_RUNTIME])
# The settings of relay_add_sink for an existing MODULE library <target>, written as
# lib<base>.so: the one exported symbol, hidden everything else, its own C++ runtime. For a
# library a sink loads itself that speaks the same ABI (the http sink's TLS build); a sink
# plugin is made with relay_add_sink.
function(relay_sink_library target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "SHARED_CXX_RUNTIME" "NAME;VERSION;OUTPUT_NAME;OUTPUT_DIRECTORY" "")
  set(version_script "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/relay_sink.version")
  target_link_libraries(${target} PRIVATE TelemetryRelay::sdk)
  target_compile_features(${target} PRIVATE cxx_std_20)
  target_compile_definitions(${target} PRIVATE RELAY_SINK_NAME="${arg_NAME}"
                                               RELAY_SINK_VERSION="${arg_VERSION}")
  set_target_properties(${target} PROPERTIES
    PREFIX "lib"
    OUTPUT_NAME "${arg_OUTPUT_NAME}"
    SUFFIX ".so"
    LIBRARY_OUTPUT_DIRECTORY "${arg_OUTPUT_DIRECTORY}"
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON
    LINK_DEPENDS "${version_script}")
  target_link_options(${target} PRIVATE
    "LINKER:--version-script=${version_script}"
    "LINKER:--no-undefined"
    "LINKER:--exclude-libs,ALL"
    "LINKER:--gc-sections")
  if(RELAY_SINK_STATIC_RUNTIME AND NOT arg_SHARED_CXX_RUNTIME)
    target_link_options(${target} PRIVATE -static-libstdc++ -static-libgcc)
  endif()
endfunction()

# The network toolkit's sources: sdk/src/net in the source tree, net/ beside this file installed.
function(relay_network_sink target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "NAME;VERSION;OUTPUT_DIRECTORY;URI_KEY;RUNTIME" "SOURCES")
  set(net "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/../src/net")
  if(NOT EXISTS "${net}/http_client.cpp")
    set(net "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/net")
  endif()
  if(NOT TARGET Poco::NetSSL)
    find_package(Poco REQUIRED COMPONENTS Foundation Net NetSSL Crypto)
  endif()
  # A shared POCO throws through the shared unwinder: the plugin must share the C++ runtime
  # (see SHARED_CXX_RUNTIME), and its layer must then ship POCO and that runtime.
  get_target_property(poco_type Poco::Net TYPE)
  if(poco_type STREQUAL "SHARED_LIBRARY")
    set(arg_RUNTIME SHARED_CXX_RUNTIME)
  endif()

  # The sink's sources and the toolkit, once for both builds; the sink's entry renamed so that
  # each build exports its own relay_sink_entry.
  add_library(${target}-objects OBJECT ${arg_SOURCES} "${net}/http_client.cpp")
  target_compile_features(${target}-objects PUBLIC cxx_std_20)
  target_compile_definitions(${target}-objects PRIVATE relay_sink_entry=relay_net_sink_entry
    RELAY_SINK_NAME="${arg_NAME}" RELAY_SINK_VERSION="${arg_VERSION}")
  target_link_libraries(${target}-objects PUBLIC TelemetryRelay::sdk Poco::Net Poco::Foundation)
  set_target_properties(${target}-objects PROPERTIES POSITION_INDEPENDENT_CODE ON
    C_VISIBILITY_PRESET hidden CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)

  add_library(${target} MODULE "${net}/tls_loader.cpp" "${net}/tls_none.cpp")
  target_compile_definitions(${target} PRIVATE
    RELAY_NET_TLS_LIBRARY="librelay-${arg_NAME}-tls.so" RELAY_NET_URI_KEY="${arg_URI_KEY}")
  target_link_libraries(${target} PRIVATE ${target}-objects ${CMAKE_DL_LIBS})
  relay_sink_library(${target} NAME ${arg_NAME} VERSION ${arg_VERSION}
    OUTPUT_NAME relay-sink-${arg_NAME} OUTPUT_DIRECTORY "${arg_OUTPUT_DIRECTORY}" ${arg_RUNTIME})

  set(tls relay-${arg_NAME}-tls)
  add_library(${tls} MODULE "${net}/tls_entry.cpp" "${net}/tls_openssl.cpp")
  target_link_libraries(${tls} PRIVATE ${target}-objects Poco::NetSSL Poco::Crypto)
  relay_sink_library(${tls} NAME ${arg_NAME} VERSION ${arg_VERSION} OUTPUT_NAME ${tls}
    OUTPUT_DIRECTORY "${arg_OUTPUT_DIRECTORY}" ${arg_RUNTIME})
  # Its own folder first: a shared OpenSSL bundled beside it.
  set_target_properties(${tls} PROPERTIES BUILD_RPATH "$ORIGIN")
  add_dependencies(${target} ${tls})  # whatever uses the plugin gets both builds
endfunction()

function(relay_add_sink)
  cmake_parse_arguments(PARSE_ARGV 0 arg "SHARED_CXX_RUNTIME;NETWORK" "NAME;VERSION;OUTPUT_DIRECTORY;LAYER_DIRECTORY;URI_KEY" "SOURCES")
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "relay_add_sink: unexpected arguments: ${arg_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT arg_NAME MATCHES "^[A-Za-z0-9_-]+$")
    message(FATAL_ERROR "relay_add_sink: NAME '${arg_NAME}' must match [A-Za-z0-9_-]+")
  endif()
  if(NOT arg_SOURCES)
    message(FATAL_ERROR "relay_add_sink(${arg_NAME}): SOURCES is required")
  endif()
  if(NOT arg_VERSION)
    set(arg_VERSION "${PROJECT_VERSION}")
    if(NOT arg_VERSION)
      set(arg_VERSION "0.0.0")
    endif()
  endif()
  if(NOT arg_OUTPUT_DIRECTORY)
    if(RELAY_PLUGIN_OUTPUT_DIR)
      set(arg_OUTPUT_DIRECTORY "${RELAY_PLUGIN_OUTPUT_DIR}")
    else()
      set(arg_OUTPUT_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
    endif()
  endif()

  if(NOT arg_VERSION MATCHES "^[A-Za-z0-9._+-]+$")
    message(FATAL_ERROR
      "relay_add_sink(${arg_NAME}): VERSION '${arg_VERSION}' must match [A-Za-z0-9._+-]+")
  endif()
  if(NOT arg_LAYER_DIRECTORY)
    set(arg_LAYER_DIRECTORY "${RELAY_SINK_LAYER_DIR}")
  endif()

  set(target relay-sink-${arg_NAME})
  set(runtime)
  if(arg_SHARED_CXX_RUNTIME)
    set(runtime SHARED_CXX_RUNTIME)
  endif()
  if(arg_NETWORK)
    relay_network_sink(${target} NAME ${arg_NAME} VERSION ${arg_VERSION} SOURCES ${arg_SOURCES}
      OUTPUT_DIRECTORY "${arg_OUTPUT_DIRECTORY}" URI_KEY "${arg_URI_KEY}" RUNTIME ${runtime})
  else()
    add_library(${target} MODULE ${arg_SOURCES})
    relay_sink_library(${target} NAME ${arg_NAME} VERSION ${arg_VERSION}
      OUTPUT_NAME relay-sink-${arg_NAME} OUTPUT_DIRECTORY "${arg_OUTPUT_DIRECTORY}" ${runtime})
  endif()

  relay_lambda_arch(arch)
  set(zip "${arg_LAYER_DIRECTORY}/telemetry-relay-sink-${arg_NAME}-${arg_VERSION}-${arch}.zip")
  set(stage "${CMAKE_CURRENT_BINARY_DIR}/relay-sink-${arg_NAME}-layer")
  set(staged "${stage}/extensions/lib/librelay-sink-${arg_NAME}.so")
  set(entries "extensions/lib/librelay-sink-${arg_NAME}.so")
  set(stage_tls)
  if(arg_NETWORK)  # the TLS build where the plugin looks first: the runtime folder
    set(tls_entry "telemetry-relay/lib/librelay-${arg_NAME}-tls.so")
    list(APPEND entries "${tls_entry}")
    set(stage_tls
      COMMAND ${CMAKE_COMMAND} -E make_directory "${stage}/telemetry-relay/lib"
      COMMAND ${CMAKE_COMMAND} -E copy "$<TARGET_FILE:relay-${arg_NAME}-tls>" "${stage}/${tls_entry}"
      COMMAND chmod 0755 "${stage}/${tls_entry}")
  endif()
  # A fresh stage each time, so nothing but the plugin is ever zipped. The mode is set explicitly
  # (the zip keeps it) and the timestamps pinned, so the same plugin gives the same zip.
  add_custom_command(OUTPUT "${zip}"
    COMMAND ${CMAKE_COMMAND} -E rm -rf "${stage}"
    COMMAND ${CMAKE_COMMAND} -E make_directory "${stage}/extensions/lib" "${arg_LAYER_DIRECTORY}"
    COMMAND ${CMAKE_COMMAND} -E copy "$<TARGET_FILE:${target}>" "${staged}"
    COMMAND chmod 0755 "${staged}"
    ${stage_tls}
    COMMAND ${CMAKE_COMMAND} -E rm -f "${zip}"
    COMMAND ${CMAKE_COMMAND} -E chdir "${stage}" ${CMAKE_COMMAND} -E tar cf "${zip}" --format=zip
            "--mtime=1980-01-02 00:00:00 UTC" -- ${entries}
    DEPENDS ${target}
    COMMENT "Packaging sink layer ${zip}"
    VERBATIM)
  add_custom_target(${target}-layer DEPENDS "${zip}")
  set_target_properties(${target}-layer PROPERTIES RELAY_LAYER_ZIP "${zip}")
endfunction()
