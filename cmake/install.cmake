# Installs the libraries with an exported package so that another project can find_package(ductrpc).
include(CMakePackageConfigHelpers)

install(TARGETS duct EXPORT ductTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS rpc EXPORT rpcTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY libduct/include/duct librpc/include/rpc DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT ductTargets NAMESPACE duct:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ductrpc)
install(EXPORT rpcTargets NAMESPACE rpc:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ductrpc)

configure_package_config_file(cmake/ductrpcConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/ductrpcConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ductrpc)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/ductrpcConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/ductrpcConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/ductrpcConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/ductrpc)
