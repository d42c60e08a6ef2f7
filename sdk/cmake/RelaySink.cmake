# relay_add_sink(): builds a telemetry-relay sink plugin the one way the host can load it.
#
#   relay_add_sink(NAME <name> SOURCES <src>... [VERSION <v>] [OUTPUT_DIRECTORY <dir>]
#                  [LAYER_DIRECTORY <dir>] [SHARED_CXX_RUNTIME])
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

function(relay_add_sink)
  cmake_parse_arguments(PARSE_ARGV 0 arg "SHARED_CXX_RUNTIME" "NAME;VERSION;OUTPUT_DIRECTORY;LAYER_DIRECTORY" "SOURCES")
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
  add_library(${target} MODULE ${arg_SOURCES})
  set(runtime)
  if(arg_SHARED_CXX_RUNTIME)
    set(runtime SHARED_CXX_RUNTIME)
  endif()
  relay_sink_library(${target} NAME ${arg_NAME} VERSION ${arg_VERSION}
    OUTPUT_NAME relay-sink-${arg_NAME} OUTPUT_DIRECTORY "${arg_OUTPUT_DIRECTORY}" ${runtime})

  relay_lambda_arch(arch)
  set(zip "${arg_LAYER_DIRECTORY}/telemetry-relay-sink-${arg_NAME}-${arg_VERSION}-${arch}.zip")
  set(stage "${CMAKE_CURRENT_BINARY_DIR}/relay-sink-${arg_NAME}-layer")
  set(staged "${stage}/extensions/lib/librelay-sink-${arg_NAME}.so")
  # A fresh stage each time, so nothing but the plugin is ever zipped. The mode is set explicitly
  # (the zip keeps it) and the timestamps pinned, so the same plugin gives the same zip.
  add_custom_command(OUTPUT "${zip}"
    COMMAND ${CMAKE_COMMAND} -E rm -rf "${stage}"
    COMMAND ${CMAKE_COMMAND} -E make_directory "${stage}/extensions/lib" "${arg_LAYER_DIRECTORY}"
    COMMAND ${CMAKE_COMMAND} -E copy "$<TARGET_FILE:${target}>" "${staged}"
    COMMAND chmod 0755 "${staged}"
    COMMAND ${CMAKE_COMMAND} -E rm -f "${zip}"
    COMMAND ${CMAKE_COMMAND} -E chdir "${stage}" ${CMAKE_COMMAND} -E tar cf "${zip}" --format=zip
            "--mtime=1980-01-02 00:00:00 UTC" -- "extensions/lib/librelay-sink-${arg_NAME}.so"
    DEPENDS ${target}
    COMMENT "Packaging sink layer ${zip}"
    VERBATIM)
  add_custom_target(${target}-layer DEPENDS "${zip}")
  set_target_properties(${target}-layer PROPERTIES RELAY_LAYER_ZIP "${zip}")
endfunction()
