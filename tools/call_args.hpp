// rpc-call's arguments, as the method receives them. See man/rpc-call.1.
#pragma once

#include <string>
#include <vector>

#include <duct/buffer.hpp>

namespace tools {

/// The call's arguments as one msgpack array: each is JSON where it parses as JSON (unless `strings`), a string
/// otherwise, bytes where it is not UTF-8. "-" (unless `strings`) is the next JSON value of stdin, which must hold
/// exactly as many as there are "-"; @FILE is the file's contents (at most 64 MiB, refused before it is read),
/// taken as an argument is; @@... is the argument with one @ less.
/// Throws: json_error (a usage error) naming the argument, the file or what stdin lacks.
duct::buffer pack_arguments(const std::vector<std::string>& args, bool strings);

}  // namespace tools
