# How what ships in the layer is compiled and linked (design section 9; README "Lambda layers").
#
# Every target: -ffunction-sections -fdata-sections, hidden visibility, and links with
# --gc-sections and --as-needed (a library nothing uses is not DT_NEEDED).
# relay_lean_binary(<target>) for the shipped binaries (the extension, the http sink's builds):
#   RELAY_LTO (default ON): link-time optimisation in optimised builds (not Debug, not
#     sanitizers or fuzzing), over the project's code and the static POCO and simdjson (built
#     with fat LTO objects, so non-LTO links such as the tests use their machine code).
#   RELAY_STATIC_CXX_RUNTIME (default ON): the extension carries its own static libstdc++ and
#     libgcc, as relay_add_sink's plugins do (RELAY_SINK_STATIC_RUNTIME); with both, the layer
#     needs no libstdc++.so. Sanitizer presets turn both off.
# relay_lean_objects(<target>) for a static library those binaries link (relay_core): fat LTO
# objects when RELAY_LTO is in effect.
include_guard(GLOBAL)
include(CheckIPOSupported)
include(CheckLinkerFlag)

option(RELAY_LTO "Link-time optimisation of the shipped binaries (optimised builds)" ON)
option(RELAY_STATIC_CXX_RUNTIME "Link the extension with static libstdc++ and libgcc" ON)

set(CMAKE_C_VISIBILITY_PRESET hidden)
set(CMAKE_CXX_VISIBILITY_PRESET hidden)
set(CMAKE_VISIBILITY_INLINES_HIDDEN ON)
add_compile_options(-ffunction-sections -fdata-sections)
add_link_options(LINKER:--gc-sections LINKER:--as-needed)

set(RELAY_LTO_ACTIVE OFF)
if(RELAY_LTO)
  string(TOUPPER "${CMAKE_BUILD_TYPE}" _relay_build_type)
  set(_relay_flags "${CMAKE_CXX_FLAGS} ${CMAKE_CXX_FLAGS_${_relay_build_type}}")
  if(_relay_build_type MATCHES "^(RELEASE|RELWITHDEBINFO|MINSIZEREL)$"
     AND NOT _relay_flags MATCHES "-fsanitize" AND NOT RELAY_FUZZ
     AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    check_ipo_supported(RESULT _relay_ipo OUTPUT _relay_ipo_output LANGUAGES C CXX)
    if(_relay_ipo)
      set(RELAY_LTO_ACTIVE ON)
    else()
      message(STATUS "LTO not supported here: ${_relay_ipo_output}")
    endif()
  endif()
endif()
message(STATUS "LTO for the shipped binaries: ${RELAY_LTO_ACTIVE}")
# DT_RELR (glibc 2.36, which the layer bundles): relative relocations as a bitmap, a fraction of
# the size of .rela.dyn in these position-independent binaries.
# binutils 2.40 has it for x86_64 only (elsewhere a warning says it is ignored).
set(CMAKE_REQUIRED_LINK_OPTIONS "LINKER:--fatal-warnings")
check_linker_flag(CXX "LINKER:-z,pack-relative-relocs" RELAY_HAVE_PACK_RELATIVE_RELOCS)
unset(CMAKE_REQUIRED_LINK_OPTIONS)

# The static POCO and simdjson and relay_core hold fat LTO objects, which GCC's linker plugin
# would optimise at every link (minutes of CPU for the tests); only the shipped binaries want it.
if(RELAY_LTO_ACTIVE OR RELAY_USING_STATIC_DEPS)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    add_link_options("$<$<NOT:$<BOOL:$<TARGET_PROPERTY:INTERPROCEDURAL_OPTIMIZATION>>>:-fno-lto>")
  endif()
endif()

function(relay_lean_objects target)
  if(RELAY_LTO_ACTIVE)
    target_compile_options(${target} PRIVATE -flto=auto -ffat-lto-objects)
  endif()
endfunction()

function(relay_lean_binary target)
  if(RELAY_LTO_ACTIVE)
    set_target_properties(${target} PROPERTIES INTERPROCEDURAL_OPTIMIZATION ON)
  endif()
  get_target_property(type ${target} TYPE)
  if(RELAY_HAVE_PACK_RELATIVE_RELOCS AND NOT type STREQUAL "OBJECT_LIBRARY")
    target_link_options(${target} PRIVATE LINKER:-z,pack-relative-relocs)
  endif()
  # Only with static POCO: a shared POCO brings the shared runtime, and two runtimes in one
  # process cannot unwind each other's exceptions.
  if(type STREQUAL "EXECUTABLE" AND RELAY_STATIC_CXX_RUNTIME AND RELAY_USING_STATIC_DEPS)
    target_link_options(${target} PRIVATE -static-libstdc++ -static-libgcc)
  endif()
endfunction()

# <build>/layer-static.txt: what the shipped binaries link statically, for layer/package to ship
# the licenses of ("license <name> <copyright file>", "library <static archive>" lines).
function(relay_write_layer_static_manifest)
  set(lines "")
  if(RELAY_USING_STATIC_DEPS)
    foreach(name poco simdjson)
      string(APPEND lines "license ${name} ${RELAY_STATIC_DEPS_PREFIX}/share/doc/${name}/copyright\n")
    endforeach()
    if(RELAY_STATIC_OPENSSL)
      # The prefix's own OpenSSL (scripts/static-deps), else Debian's libssl-dev.
      string(FIND "${OPENSSL_CRYPTO_LIBRARY}" "${RELAY_STATIC_DEPS_PREFIX}/" _relay_at)
      if(_relay_at EQUAL 0 AND EXISTS "${RELAY_STATIC_DEPS_PREFIX}/share/doc/openssl/copyright")
        string(APPEND lines "license openssl ${RELAY_STATIC_DEPS_PREFIX}/share/doc/openssl/copyright\n")
      else()
        string(APPEND lines "library ${OPENSSL_SSL_LIBRARY}\nlibrary ${OPENSSL_CRYPTO_LIBRARY}\n")
      endif()
    endif()
  endif()
  if((RELAY_STATIC_CXX_RUNTIME AND RELAY_USING_STATIC_DEPS) OR RELAY_SINK_STATIC_RUNTIME)
    execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libstdc++.a
      OUTPUT_VARIABLE libstdcxx OUTPUT_STRIP_TRAILING_WHITESPACE)
    execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-libgcc-file-name
      OUTPUT_VARIABLE libgcc OUTPUT_STRIP_TRAILING_WHITESPACE)
    foreach(archive ${libstdcxx} ${libgcc})
      if(IS_ABSOLUTE "${archive}")
        get_filename_component(archive "${archive}" REALPATH)
        string(APPEND lines "library ${archive}\n")
      endif()
    endforeach()
  endif()
  file(WRITE ${CMAKE_BINARY_DIR}/layer-static.txt "${lines}")
endfunction()
