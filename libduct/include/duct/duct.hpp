// libduct: message ducts between processes — pipe-compatible channels over socketpairs, Unix and TCP sockets,
// wire-compatible with Python's ductworks and multiprocessing.connection.
//
// Start with connection.hpp (the duct itself), then listener.hpp (addresses), spawn.hpp (child processes),
// corked_writer.hpp (batching), auth.hpp (authkey), codec.hpp and frame.hpp (the sans-I/O cores).
#pragma once

#include <duct/auth.hpp>
#include <duct/buffer.hpp>
#include <duct/codec.hpp>
#include <duct/connection.hpp>
#include <duct/corked_writer.hpp>
#include <duct/error.hpp>
#include <duct/frame.hpp>
#include <duct/listener.hpp>
#include <duct/msgpack.hpp>
#include <duct/spawn.hpp>
#include <duct/version.hpp>
