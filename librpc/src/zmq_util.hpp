// Internal: ZeroMQ helpers shared by server and client. Only .cpp files include zmq.hpp.
#pragma once

#include <string>
#include <string_view>

#include <zmq.hpp>

namespace rpc::detail {

/// Binds `socket` to `endpoint`; "tcp://HOST:0" picks a free port. Returns: the endpoint actually bound.
/// Throws: rpc::error naming the endpoint.
std::string bind_endpoint(zmq::socket_t& socket, std::string_view endpoint);

}  // namespace rpc::detail
