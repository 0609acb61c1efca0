# The API reference of the public headers builds with no Doxygen warning, and a warning
# does fail it (so a clean run means something).
#   cmake -DDOXYGEN=doxygen -DSOURCE=<repo> -DSCRATCH=<dir> -DVERSION=0.1.0 -P check_doxygen.cmake
file(REMOVE_RECURSE ${SCRATCH})
file(MAKE_DIRECTORY ${SCRATCH}/docs ${SCRATCH}/bad)

execute_process(
  COMMAND ${CMAKE_COMMAND} -E env CKPT_DOC_OUTPUT=${SCRATCH}/docs CKPT_DOC_VERSION=${VERSION}
          ${DOXYGEN} docs/Doxyfile
  WORKING_DIRECTORY ${SOURCE}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR "${out}${err}" MATCHES "(warning|error):")
  message(FATAL_ERROR "doxygen docs/Doxyfile: exit ${rc}\n${out}${err}")
endif()
if(NOT EXISTS ${SCRATCH}/docs/html/ckpt_8h.html OR NOT EXISTS ${SCRATCH}/docs/html/ckpt_8hpp.html)
  message(FATAL_ERROR "doxygen wrote no page for ckpt.h / ckpt.hpp in ${SCRATCH}/docs/html")
endif()

# The same settings on a header with a documentation error must fail.
file(WRITE ${SCRATCH}/bad/bad.hpp "/// A function.\n/// \\param nosuch not an argument\nvoid f(int x);\n")
file(WRITE ${SCRATCH}/bad/Doxyfile
  "@INCLUDE = ${SOURCE}/docs/Doxyfile\nINPUT = ${SCRATCH}/bad\nOUTPUT_DIRECTORY = ${SCRATCH}/bad-out\n"
  "STRIP_FROM_PATH = ${SCRATCH}/bad\n")
execute_process(
  COMMAND ${CMAKE_COMMAND} -E env CKPT_DOC_OUTPUT=${SCRATCH}/bad-out CKPT_DOC_VERSION=${VERSION}
          ${DOXYGEN} ${SCRATCH}/bad/Doxyfile
  WORKING_DIRECTORY ${SOURCE}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT "${out}${err}" MATCHES "(warning|error):")
  message(FATAL_ERROR "a documentation error did not fail doxygen (exit ${rc}):\n${out}${err}")
endif()
message(STATUS "doxygen: no warnings in the public headers; a planted doc error fails as it should")
