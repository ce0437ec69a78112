#include "zmq_util.hpp"

#include <rpc/error.hpp>

namespace rpc::detail {

std::string bind_endpoint(zmq::socket_t& socket, std::string_view endpoint) {
  std::string ep(endpoint);
  if (ep.starts_with("tcp://") && ep.ends_with(":0")) ep.replace(ep.size() - 1, 1, "*");  // ZeroMQ's "any port"
  try {
    socket.bind(ep);
  } catch (const zmq::error_t& e) {
    throw error("cannot listen on " + std::string(endpoint) + ": " + e.what());
  }
  return socket.get(zmq::sockopt::last_endpoint);
}

}  // namespace rpc::detail
