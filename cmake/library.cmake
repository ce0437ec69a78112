# How the two libraries are named and versioned once installed.
#
# Installed names live under "ductrpc" so that they cannot clash with other software: libductrpc-duct.so and
# libductrpc-rpc.so, headers in include/ductrpc/{duct,rpc}/ (a consumer still writes #include <rpc/client.hpp>:
# the include directory it is given is include/ductrpc), CMake targets ductrpc::duct and ductrpc::rpc.
#
# The SONAME carries major.minor: before 1.0 a minor release may change the ABI (templates and inline code in the
# public headers make that easy to do by accident), so 0.1.x and 0.2.x must not be taken for each other.

set(DUCTRPC_SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
set(DUCTRPC_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/ductrpc)
set(DUCTRPC_GENERATED_INCLUDE ${PROJECT_BINARY_DIR}/generated/include)

function(ductrpc_library target)
  set_target_properties(${target} PROPERTIES
    OUTPUT_NAME ductrpc-${target}
    EXPORT_NAME ${target}
    VERSION ${PROJECT_VERSION}
    SOVERSION ${DUCTRPC_SOVERSION}
    POSITION_INDEPENDENT_CODE ON)
  # Calls inside the library bind directly, not through the PLT, as they would in a static library.
  target_compile_options(${target} PRIVATE -fno-semantic-interposition)
endfunction()

# Installed programs find the libraries beside them ($ORIGIN/../lib) when the prefix is not one the system's loader
# searches, so an install under $HOME or a package unpacked into a scratch root runs as it is. Under /usr there is
# no RPATH, as Debian wants.
list(FIND CMAKE_PLATFORM_IMPLICIT_LINK_DIRECTORIES "${CMAKE_INSTALL_FULL_LIBDIR}" ductrpc_system_libdir)
if(ductrpc_system_libdir EQUAL -1)
  file(RELATIVE_PATH ductrpc_bin_to_lib ${CMAKE_INSTALL_FULL_BINDIR} ${CMAKE_INSTALL_FULL_LIBDIR})
  set(CMAKE_INSTALL_RPATH "$ORIGIN/${ductrpc_bin_to_lib}")
endif()
