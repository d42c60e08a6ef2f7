# Cross build for Linux arm64 (AWS Graviton) with Debian's cross toolchain
# (crossbuild-essential-arm64) and the arm64 sysroot that scripts/arm64-sysroot unpacks:
#   scripts/arm64-sysroot && cmake --preset arm64 && cmake --build --preset arm64
# Out-of-tree projects (e.g. a sink built against the installed SDK) use the same file:
#   cmake -S <src> -B <build> -DCMAKE_TOOLCHAIN_FILE=<repo>/cmake/toolchains/aarch64-linux-gnu.cmake
#         -DTelemetryRelaySdk_DIR=<sdk prefix>/lib/cmake/TelemetryRelaySdk
#
# The C/C++ runtimes (glibc, libstdc++, libgcc_s) are the cross toolchain's own
# (/usr/aarch64-linux-gnu); POCO, OpenSSL, simdjson and their dependencies come from the sysroot
# (RELAY_ARM64_SYSROOT, from the environment or the cache; default <repo>/build/arm64-sysroot).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

if(DEFINED ENV{RELAY_ARM64_SYSROOT})
  set(RELAY_ARM64_SYSROOT "$ENV{RELAY_ARM64_SYSROOT}")
elseif(NOT RELAY_ARM64_SYSROOT)
  get_filename_component(RELAY_ARM64_SYSROOT "${CMAKE_CURRENT_LIST_DIR}/../../build/arm64-sysroot"
                         ABSOLUTE)
endif()
if(NOT EXISTS "${RELAY_ARM64_SYSROOT}/.packages")
  message(FATAL_ERROR "arm64 sysroot '${RELAY_ARM64_SYSROOT}' is missing or incomplete: "
                      "run scripts/arm64-sysroot first")
endif()
# try_compile() projects re-read this file without the cache: hand them the sysroot.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES RELAY_ARM64_SYSROOT)

# Libraries, headers and CMake packages only from the sysroot and the toolchain's own folder,
# never the build machine's x86_64 ones; programs (compilers, git) from the build machine.
# APPEND keeps roots given on the command line (e.g. a staged SDK).
list(APPEND CMAKE_FIND_ROOT_PATH "${RELAY_ARM64_SYSROOT}" /usr/aarch64-linux-gnu)
list(REMOVE_DUPLICATES CMAKE_FIND_ROOT_PATH)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# Boost's CMake package is not in the sysroot (only its headers are); FindBoost's header search
# is what finds them, never the build machine's x86_64 BoostConfig.
set(Boost_NO_BOOST_CMAKE ON)

# Multiarch headers (OpenSSL's configuration.h) live in include/<triplet>, which the cross
# compiler does not search in a foreign sysroot.
set(CMAKE_C_STANDARD_INCLUDE_DIRECTORIES "${RELAY_ARM64_SYSROOT}/usr/include/aarch64-linux-gnu")
set(CMAKE_CXX_STANDARD_INCLUDE_DIRECTORIES "${RELAY_ARM64_SYSROOT}/usr/include/aarch64-linux-gnu")

# The linker resolves the libraries' own dependencies (libPocoNetSSL -> libssl...) by path.
set(_relay_rpath_link "-Wl,-rpath-link,${RELAY_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu")
set(CMAKE_EXE_LINKER_FLAGS_INIT "${_relay_rpath_link}")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "${_relay_rpath_link}")
set(CMAKE_MODULE_LINKER_FLAGS_INIT "${_relay_rpath_link}")

# Lets CMake (and anyone using CMAKE_CROSSCOMPILING_EMULATOR) run arm64 programs on x86_64.
find_program(RELAY_QEMU_AARCH64 qemu-aarch64-static)
if(RELAY_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${RELAY_QEMU_AARCH64};-L;/usr/aarch64-linux-gnu;-E;LD_LIBRARY_PATH=${RELAY_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu")
endif()
