# ctest -L lint: cfn-lint validates layer/template.yaml, SAM transform included, offline (its
# resource specs ship with it). It fails on any error or warning, and when cfn-lint is missing
# (it never skips). The template's zip names must also match the versions layer/build gives them:
# the project's for the base layer and the otlp sink layer, the example's own for the stdout sink
# layer (EXAMPLE_CMAKE).
foreach(var TEMPLATE VERSION EXAMPLE_CMAKE)
  if(NOT ${var})
    message(FATAL_ERROR "cfn_lint.cmake: -D${var}= is required")
  endif()
endforeach()
if(NOT CFN_LINT OR NOT EXISTS "${CFN_LINT}")
  message(FATAL_ERROR "cfn-lint was not found when the build was configured (CFN_LINT="
    "'${CFN_LINT}'): install it (pip install cfn-lint) and reconfigure, or set -DCFN_LINT=<path>")
endif()

execute_process(COMMAND ${CFN_LINT} --format parseable -- ${TEMPLATE}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "cfn-lint could not run (${rc}):\n${out}")
endif()
# cfn-lint's exit code is a bit mask: 1 fatal, 2 error, 4 warning, 8 informational.
math(EXPR failing "${rc} & 7")
if(failing)
  message(FATAL_ERROR "cfn-lint reports problems in ${TEMPLATE} (exit ${rc}):\n${out}")
endif()

file(READ ${EXAMPLE_CMAKE} example)
if(NOT example MATCHES "project\\(stdout-sink VERSION ([0-9.]+)")
  message(FATAL_ERROR "no project(stdout-sink VERSION ...) in ${EXAMPLE_CMAKE}")
endif()
set(sink_version ${CMAKE_MATCH_1})
file(READ ${TEMPLATE} template)
foreach(arch x86_64 arm64)
  foreach(zip telemetry-relay-${VERSION}-${arch}.zip
      telemetry-relay-sink-stdout-${sink_version}-${arch}.zip
      telemetry-relay-sink-otlp-${VERSION}-${arch}.zip)
    string(REPLACE "." "\\." pattern "ContentUri: ../dist/${zip}")
    if(NOT template MATCHES "${pattern}")
      message(FATAL_ERROR "${TEMPLATE} must publish ../dist/${zip}, the zip layer/build makes "
        "(update the ContentUri and the Description)")
    endif()
  endforeach()
endforeach()
message(STATUS "cfn-lint: ${TEMPLATE} is clean\n${out}")
