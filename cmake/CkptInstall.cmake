# Install rules: the library, its headers, the CMake package `ckpt` (find_package(ckpt))
# and a pkg-config file (pkg-config ckpt; pkg-config ckpt-fortran for the Fortran module). The CLI, the Python package and the SLURM
# helpers install themselves from their own folders. Also the optional `doc` target.

get_target_property(CKPT_LIBRARY_TYPE ckpt TYPE)

install(TARGETS ckpt EXPORT ckptTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# Public headers only: ckpt.hpp and friends, and the C API ckpt.h; the base layer's
# error.hpp, types.hpp and version.hpp; and of the format layer only its model types
# (ckpt/formats/model.hpp, which catalog.hpp includes). The other headers of mpi/ and
# formats/ stay private.
foreach(dir libckpt/include/ckpt libckpt/base/include/ckpt)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${dir} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
    FILES_MATCHING PATTERN "*.hpp" PATTERN "*.h")
endforeach()
install(FILES ${PROJECT_SOURCE_DIR}/formats/include/ckpt/formats/model.hpp
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/ckpt/formats)
install(EXPORT ckptTargets NAMESPACE ckpt:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ckpt)

include(CMakePackageConfigHelpers)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/ckptConfig.cmake.in
  ${PROJECT_BINARY_DIR}/ckptConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ckpt)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ckptConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ckptConfig.cmake ${PROJECT_BINARY_DIR}/ckptConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ckpt)

# pkg-config: the .pc file finds its prefix from its own location, so the installed tree
# can be moved.
file(RELATIVE_PATH CKPT_PC_TO_PREFIX
  ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" CKPT_PC_TO_PREFIX "${CKPT_PC_TO_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/ckpt.pc.in ${PROJECT_BINARY_DIR}/ckpt.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/ckpt.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
# The Fortran module has its own .pc (pkg-config ckpt-fortran), next to ckpt.pc. Its
# library, ckpt.mod and CMake targets install from libckpt/fortran/.
if(TARGET ckpt_fortran)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/ckpt-fortran.pc.in ${PROJECT_BINARY_DIR}/ckpt-fortran.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/ckpt-fortran.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endif()

# API reference from the public headers: `cmake --build build --target doc` when doxygen
# is installed (Debian: doxygen). Output in build/docs/html.
find_package(Doxygen QUIET)
if(DOXYGEN_FOUND AND NOT TARGET doc)
  add_custom_target(doc
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/docs
    COMMAND ${CMAKE_COMMAND} -E env CKPT_DOC_OUTPUT=${PROJECT_BINARY_DIR}/docs
            CKPT_DOC_VERSION=${PROJECT_VERSION} ${DOXYGEN_EXECUTABLE} docs/Doxyfile
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    COMMENT "API reference with Doxygen into ${PROJECT_BINARY_DIR}/docs/html"
    VERBATIM)
endif()
