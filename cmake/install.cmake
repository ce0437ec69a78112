# Installs the libraries, their headers, a CMake package (find_package(ductrpc)) and pkg-config files
# (pkg-config ductrpc, ductrpc-duct), in three components that become the three Debian packages (cmake/package.cmake):
#   runtime  the shared libraries
#   dev      headers, the libraries' development links, CMake and pkg-config files
#   tools    rpc-call, rpc-serve, rpc-broker, duct-cat with their man pages and completions (tools/CMakeLists.txt)
include(CMakePackageConfigHelpers)

install(TARGETS duct rpc EXPORT ductrpcTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT dev
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
        INCLUDES DESTINATION ${DUCTRPC_INSTALL_INCLUDEDIR})
install(DIRECTORY libduct/include/duct librpc/include/rpc DESTINATION ${DUCTRPC_INSTALL_INCLUDEDIR} COMPONENT dev
        PATTERN "*.in" EXCLUDE)
install(FILES ${DUCTRPC_GENERATED_INCLUDE}/duct/version.hpp DESTINATION ${DUCTRPC_INSTALL_INCLUDEDIR}/duct
        COMPONENT dev)

set(cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/ductrpc)
install(EXPORT ductrpcTargets NAMESPACE ductrpc:: DESTINATION ${cmake_dir} COMPONENT dev)
configure_package_config_file(cmake/ductrpcConfig.cmake.in ${PROJECT_BINARY_DIR}/ductrpcConfig.cmake
                              INSTALL_DESTINATION ${cmake_dir})
# Before 1.0 a minor release may break the API: 0.1.x satisfies find_package(ductrpc 0.1), not 0.2.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ductrpcConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ductrpcConfig.cmake ${PROJECT_BINARY_DIR}/ductrpcConfigVersion.cmake
        DESTINATION ${cmake_dir} COMPONENT dev)

# pkg-config files that find the installed tree from where they lie (${pcfiledir}), so the same file serves an
# install under any prefix and a package unpacked anywhere.
set(pc_dir ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
file(RELATIVE_PATH DUCTRPC_PC_TO_PREFIX /root/${pc_dir} /root)
string(REGEX REPLACE "/$" "" DUCTRPC_PC_TO_PREFIX "${DUCTRPC_PC_TO_PREFIX}")
set(DUCTRPC_PC_LIBDIR ${CMAKE_INSTALL_LIBDIR})
foreach(pc ductrpc ductrpc-duct)
  configure_file(cmake/${pc}.pc.in ${PROJECT_BINARY_DIR}/${pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/${pc}.pc DESTINATION ${pc_dir} COMPONENT dev)
endforeach()

# Debian wants the licence in each package's doc directory, named copyright.
foreach(component runtime dev tools)
  install(FILES LICENSE DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${DUCTRPC_PACKAGE_${component}} RENAME copyright
          COMPONENT ${component})
endforeach()
