// Wakes a thread blocked in ZeroMQ's receive on a ROUTER. See router_waker.hpp.
#include "router_waker.hpp"

#include <random>

#include <rpc/error.hpp>

namespace rpc::detail {

router_waker::router_waker(zmq::context_t& ctx, zmq::socket_t& router) : dealer_(ctx, zmq::socket_type::dealer) {
  std::random_device rd;
  for (int i = 0; i < 16; ++i) id_ += static_cast<char>(rd() % 255 + 1);  // a routing id may not start with 0
  const std::string endpoint = "inproc://ductrpc-server-wake";  // inproc names are per context: one per server
  try {
    router.bind(endpoint);
    dealer_.set(zmq::sockopt::routing_id, id_);
    dealer_.set(zmq::sockopt::linger, 0);
    dealer_.connect(endpoint);
  } catch (const zmq::error_t& e) {
    throw error("cannot set up the server's wake-up socket " + endpoint + ": " + e.what());
  }
}

void router_waker::signal() noexcept {
  if (pending_.exchange(true)) return;  // one is on its way, not yet taken
  std::lock_guard lock(mu_);
  try {
    (void)dealer_.send(zmq::const_buffer("w", 1), zmq::send_flags::dontwait);
  } catch (const zmq::error_t&) {
    // the context is closing: there is nobody left to wake
  }
}

}  // namespace rpc::detail
