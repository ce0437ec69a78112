# Debian packages with CPack (`make deb`): three, as Debian splits a library.
#   libductrpc<SOVERSION>  the shared libraries; its name changes with the SONAME, so two ABIs can be installed
#                          side by side. libductrpc-duct and libductrpc-rpc are released together and always
#                          at the same version, so one package holds both.
#   libductrpc-dev         headers, development links, CMake and pkg-config files; depends on the -dev packages
#                          of what the public headers include (msgpack-cxx).
#   ductrpc-tools          rpc-call, rpc-serve, rpc-broker, duct-cat, their man pages and completions.
# Dependencies on other libraries (libzmq5, libssl3, libstdc++6, ...) are computed from the binaries by
# dpkg-shlibdeps; between our own packages they are exact versions.
set(DUCTRPC_PACKAGE_runtime libductrpc${DUCTRPC_SOVERSION})
set(DUCTRPC_PACKAGE_dev libductrpc-dev)
set(DUCTRPC_PACKAGE_tools ductrpc-tools)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME ductrpc)
set(CPACK_PACKAGE_VENDOR "the ductrpc authors")
set(CPACK_PACKAGE_CONTACT "ductrpc maintainers <maintainers@users.noreply.h-seed-96683f3b.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev tools)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY "=")  # before 1.0, only the same version is known compatible

set(exact "(= ${PROJECT_VERSION})")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME ${DUCTRPC_PACKAGE_runtime})
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION "message ducts and zerorpc-compatible RPC for C++20 (shared libraries)
 libductrpc-duct: message channels between processes over socketpairs, Unix and TCP sockets, wire-compatible
 with Python's ductworks and multiprocessing.connection. libductrpc-rpc: RPC over ZeroMQ, wire-compatible
 with zerorpc, with deferred calls, streams and chunked requests.")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME ${DUCTRPC_PACKAGE_dev})
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "${DUCTRPC_PACKAGE_runtime} ${exact}, libmsgpack-cxx-dev")
set(CPACK_DEBIAN_DEV_PACKAGE_SHLIBDEPS OFF)  # it holds no binary of its own
set(CPACK_COMPONENT_DEV_DESCRIPTION "message ducts and zerorpc-compatible RPC for C++20 (development files)
 Headers, CMake package (find_package(ductrpc): ductrpc::duct, ductrpc::rpc) and pkg-config files
 (ductrpc, ductrpc-duct) for libductrpc.")

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME ${DUCTRPC_PACKAGE_tools})
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION net)
# The tools link the libraries statically (a one-shot tool starts ~4 ms sooner): they depend only on what
# dpkg-shlibdeps finds (libzmq5, libstdc++6, ...), not on the runtime package.
set(CPACK_COMPONENT_TOOLS_DESCRIPTION "command-line tools for zerorpc services and message ducts
 rpc-call calls a method of any zerorpc server from a shell script; rpc-serve turns commands into RPC
 methods; rpc-broker puts many rpc-serve workers behind one endpoint; duct-cat relays stdin and stdout over a
 message duct, as netcat does for sockets.")
# The tools link our own libraries, which no installed package provides yet: dpkg-shlibdeps finds them here.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${PROJECT_BINARY_DIR}/libduct ${PROJECT_BINARY_DIR}/librpc)

include(CPack)
