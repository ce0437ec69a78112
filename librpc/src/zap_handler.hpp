// Internal: ZeroMQ's authentication hook (ZAP, RFC 27) for a CURVE server: a thread answering the handshakes of its
// context's sockets, admitting the client keys of an allow-list (or any key, with an empty list) and reporting each
// refusal. One per server: a server has a context of its own.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <thread>

#include <zmq.hpp>
#include <zmq_addon.hpp>

namespace rpc::detail {

class zap_handler {
 public:
  using refused_fn = std::function<void(const std::string& client_key, const std::string& address)>;
  /// Starts answering on inproc://zeromq.zap.01 in `ctx`. `allowed`: Z85 public keys; empty admits any.
  /// Throws: zmq::error_t if the endpoint is taken (another handler in this context).
  zap_handler(zmq::context_t& ctx, std::set<std::string> allowed, refused_fn on_refused);
  ~zap_handler();
  zap_handler(const zap_handler&) = delete;
  zap_handler& operator=(const zap_handler&) = delete;

 private:
  void loop();
  const std::set<std::string> allowed_;
  const refused_fn on_refused_;
  zmq::socket_t rep_;
  zmq::socket_t stop_rx_, stop_tx_;  // a PAIR over inproc wakes the loop to end it
  std::thread thread_;
};

}  // namespace rpc::detail
