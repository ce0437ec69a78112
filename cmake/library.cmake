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

# ductrpc_add_library(NAME SOURCES...) compiles the sources once (NAME_objects) and makes of them NAME, the library
# others link (shared unless BUILD_SHARED_LIBS is off), and NAME_static, an archive of the same objects that our own
# tools link: a shared library costs a program about 4 ms and 130 page faults at start (relocations, symbol
# lookups), which a one-shot tool like rpc-call pays on every call from a shell loop. Usage requirements go on all
# three (see ductrpc_usage()).
function(ductrpc_add_library name)
  add_library(${name}_objects OBJECT ${ARGN})
  set_target_properties(${name}_objects PROPERTIES POSITION_INDEPENDENT_CODE ON)
  # Calls inside the library bind directly, not through the PLT, as they would in a static library.
  target_compile_options(${name}_objects PRIVATE -fno-semantic-interposition)
  ductrpc_strict(${name}_objects)
  add_library(${name} $<TARGET_OBJECTS:${name}_objects>)
  add_library(ductrpc::${name} ALIAS ${name})
  set_target_properties(${name} PROPERTIES
    OUTPUT_NAME ductrpc-${name}
    EXPORT_NAME ${name}
    VERSION ${PROJECT_VERSION}
    SOVERSION ${DUCTRPC_SOVERSION})
  if(BUILD_SHARED_LIBS)
    add_library(${name}_static STATIC $<TARGET_OBJECTS:${name}_objects>)
    set_target_properties(${name}_static PROPERTIES OUTPUT_NAME ductrpc-${name}-tools)
  else()
    add_library(${name}_static ALIAS ${name})
  endif()
endfunction()

# ductrpc_usage(NAME SCOPE ARGS...) calls target_SCOPE (include_directories, compile_definitions, link_libraries...)
# with ARGS on NAME's objects, NAME and NAME_static alike. In ARGS, @LINK@ stands for the library's own flavour: a
# dependency on the other library links the same flavour.
function(ductrpc_usage name command)
  foreach(flavour _objects "" _static)
    if(NOT (flavour STREQUAL "_static" AND NOT BUILD_SHARED_LIBS))
      string(REPLACE "@LINK@" "${flavour}" args "${ARGN}")
      cmake_language(CALL target_${command} ${name}${flavour} ${args})
    endif()
  endforeach()
endfunction()

# Installed programs find the libraries beside them ($ORIGIN/../lib) when the prefix is not one the system's loader
# searches, so an install under $HOME or a package unpacked into a scratch root runs as it is. Under /usr there is
# no RPATH, as Debian wants.
list(FIND CMAKE_PLATFORM_IMPLICIT_LINK_DIRECTORIES "${CMAKE_INSTALL_FULL_LIBDIR}" ductrpc_system_libdir)
if(ductrpc_system_libdir EQUAL -1)
  file(RELATIVE_PATH ductrpc_bin_to_lib ${CMAKE_INSTALL_FULL_BINDIR} ${CMAKE_INSTALL_FULL_LIBDIR})
  set(CMAKE_INSTALL_RPATH "$ORIGIN/${ductrpc_bin_to_lib}")
endif()
