# Static POCO, simdjson and a trimmed OpenSSL, built by scripts/static-deps from Debian's source packages into a cache
# outside the build tree (see that script), and the lean link of what ships in the layer.
#
# RELAY_STATIC_DEPS (default ON): link POCO and simdjson statically from that cache. At configure
# time the cache prefix for this target architecture is located and, when missing, built (once
# per machine and version: a few minutes). When that is impossible (no deb-src, no network, a
# failed build) the build falls back to Debian's shared libraries with one warning.
#   RELAY_DEPS_PREFIX  use this prefix instead (must hold lib/cmake/Poco and lib/cmake/simdjson)
#   RELAY_DEPS_CACHE   the cache root (default: $ENV{RELAY_DEPS_CACHE}, else
#                      $XDG_CACHE_HOME or ~/.cache, /telemetry-relay/deps)
# Sets RELAY_USING_STATIC_DEPS and, when ON, Poco_DIR / simdjson_DIR for the find_package() calls
# that follow, the prefix's static OpenSSL (OPENSSL_USE_STATIC_LIBS and OPENSSL_* paths; the one
# POCO NetSSL and Crypto were compiled against, configured for TLS clients only) and, for a cross
# build, the prefix as a find root.
include_guard(GLOBAL)

option(RELAY_STATIC_DEPS "Link POCO and simdjson statically (scripts/static-deps' cache)" ON)
set(RELAY_DEPS_PREFIX "" CACHE PATH
  "Prefix with static POCO and simdjson (empty: scripts/static-deps' cache, built when missing)")
set(RELAY_DEPS_CACHE "$ENV{RELAY_DEPS_CACHE}" CACHE PATH
  "Root of the static dependency cache (empty: \${XDG_CACHE_HOME:-~/.cache}/telemetry-relay/deps)")
option(RELAY_STATIC_OPENSSL "With static deps: link OpenSSL statically into the http sink's TLS build" ON)

set(RELAY_USING_STATIC_DEPS OFF)
if(RELAY_STATIC_DEPS)
  set(_relay_deps_prefix "${RELAY_DEPS_PREFIX}")
  set(_relay_deps_problem "")
  if(NOT _relay_deps_prefix)
    string(TOLOWER "${CMAKE_SYSTEM_PROCESSOR}" _relay_processor)
    if(_relay_processor MATCHES "^(aarch64|arm64)$")
      set(_relay_deps_args --arch arm64)
    else()
      set(_relay_deps_args --arch x86_64)
    endif()
    if(CMAKE_CROSSCOMPILING AND RELAY_ARM64_SYSROOT)
      list(APPEND _relay_deps_args --sysroot "${RELAY_ARM64_SYSROOT}")
    endif()
    if(RELAY_DEPS_CACHE)
      list(APPEND _relay_deps_args --cache "${RELAY_DEPS_CACHE}")
    endif()
    set(_relay_deps_script "${CMAKE_CURRENT_LIST_DIR}/../scripts/static-deps")
    execute_process(COMMAND "${_relay_deps_script}" ${_relay_deps_args} --print-prefix
      OUTPUT_VARIABLE _relay_deps_prefix ERROR_VARIABLE _relay_deps_error
      RESULT_VARIABLE _relay_deps_rc OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(NOT _relay_deps_rc EQUAL 0)
      set(_relay_deps_problem "${_relay_deps_error}")
    elseif(NOT EXISTS "${_relay_deps_prefix}/.complete")
      message(STATUS "Building static POCO and simdjson into ${_relay_deps_prefix} "
                     "(scripts/static-deps; once per machine, a few minutes)")
      execute_process(COMMAND "${_relay_deps_script}" ${_relay_deps_args}
        RESULT_VARIABLE _relay_deps_rc OUTPUT_VARIABLE _relay_deps_output
        ERROR_VARIABLE _relay_deps_output)
      if(NOT _relay_deps_rc EQUAL 0 OR NOT EXISTS "${_relay_deps_prefix}/.complete")
        set(_relay_deps_problem "scripts/static-deps failed: ${_relay_deps_output}")
      endif()
    endif()
  elseif(NOT EXISTS "${_relay_deps_prefix}/lib/cmake/Poco/PocoConfig.cmake")
    set(_relay_deps_problem "RELAY_DEPS_PREFIX=${_relay_deps_prefix} has no lib/cmake/Poco")
  endif()

  if(_relay_deps_problem)
    string(STRIP "${_relay_deps_problem}" _relay_deps_problem)
    message(WARNING "Static POCO/simdjson unavailable, so this build links Debian's shared "
      "POCO, simdjson and OpenSSL instead (a larger layer, OpenSSL mapped by the TLS build only). "
      "Fix the cause and re-run cmake, or pass -DRELAY_STATIC_DEPS=OFF to silence this.\n"
      "${_relay_deps_problem}")
  else()
    set(RELAY_USING_STATIC_DEPS ON)
    message(STATUS "Static POCO and simdjson: ${_relay_deps_prefix}")
    set(Poco_DIR "${_relay_deps_prefix}/lib/cmake/Poco" CACHE PATH "" FORCE)
    set(simdjson_DIR "${_relay_deps_prefix}/lib/cmake/simdjson" CACHE PATH "" FORCE)
    # Each POCO component is a package of its own, whose <component>_DIR a previous configuration
    # (Debian's shared POCO, another prefix) may have cached: a mixed link otherwise.
    file(GLOB _relay_poco_configs RELATIVE "${_relay_deps_prefix}/lib/cmake/Poco"
      "${_relay_deps_prefix}/lib/cmake/Poco/Poco*Config.cmake")
    foreach(config ${_relay_poco_configs})
      string(REGEX REPLACE "Config\\.cmake$" "" package "${config}")
      if(NOT package STREQUAL "Poco")
        set(${package}_DIR "${_relay_deps_prefix}/lib/cmake/Poco" CACHE PATH "" FORCE)
      endif()
    endforeach()
    set(RELAY_STATIC_DEPS_PREFIX "${_relay_deps_prefix}")
    if(CMAKE_CROSSCOMPILING)
      # The toolchain finds packages only under its roots; a path already under a root is used as is.
      list(APPEND CMAKE_FIND_ROOT_PATH "${_relay_deps_prefix}")
    endif()
    if(RELAY_STATIC_OPENSSL)
      set(OPENSSL_USE_STATIC_LIBS TRUE)
      if(EXISTS "${_relay_deps_prefix}/lib/libcrypto.a" AND EXISTS "${_relay_deps_prefix}/lib/libssl.a")
        set(OPENSSL_ROOT_DIR "${_relay_deps_prefix}")
        set(OPENSSL_INCLUDE_DIR "${_relay_deps_prefix}/include" CACHE PATH "" FORCE)
        set(OPENSSL_CRYPTO_LIBRARY "${_relay_deps_prefix}/lib/libcrypto.a" CACHE FILEPATH "" FORCE)
        set(OPENSSL_SSL_LIBRARY "${_relay_deps_prefix}/lib/libssl.a" CACHE FILEPATH "" FORCE)
      endif()
    endif()
  endif()
endif()
if(NOT RELAY_USING_STATIC_DEPS)
  # A previous static configuration must not leave its prefix behind.
  get_cmake_property(_relay_cache_vars CACHE_VARIABLES)
  list(FILTER _relay_cache_vars INCLUDE REGEX "^Poco[A-Za-z]*_DIR$")
  foreach(var ${_relay_cache_vars} simdjson_DIR)
    if(DEFINED CACHE{${var}} AND "$CACHE{${var}}" MATCHES "/lib/cmake/(Poco|simdjson)$"
       AND EXISTS "$CACHE{${var}}/../../../.complete")
      unset(${var} CACHE)
    endif()
  endforeach()
  foreach(var OPENSSL_INCLUDE_DIR OPENSSL_CRYPTO_LIBRARY OPENSSL_SSL_LIBRARY)
    if(DEFINED CACHE{${var}} AND EXISTS "$CACHE{${var}}/../../.complete")
      unset(${var} CACHE)
    endif()
  endforeach()
endif()
