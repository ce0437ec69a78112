// Errors raised by librpc. Each message names what failed: the endpoint, the method, the channel.
#pragma once

#include <stdexcept>
#include <string>

namespace rpc {

/// Base of every error librpc throws.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Bytes from a peer that do not form a zerorpc event. The event is dropped; the connection stays usable.
class protocol_error : public error {
 public:
  using error::error;
};

}  // namespace rpc
