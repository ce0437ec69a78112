// Internal: wakes a thread blocked in ZeroMQ's own receive on a ROUTER socket.
//
// The server's I/O thread receives with a blocking zmq_msg_recv(): once the socket's queue is empty, ZeroMQ sleeps
// on the socket's mailbox directly. Sleeping in poll() on ZMQ_FD instead costs two more system calls per wake-up
// (one to find the queue empty, edge-triggered as the descriptor is; one to sleep). Nothing else may touch a socket
// while a thread is inside ZeroMQ with it, so a thread that needs the I/O thread (a reply to send, a stop) sends the
// ROUTER a message of one byte from a DEALER of its own, connected over inproc under a random routing id that no
// remote peer can guess (a ROUTER refuses a second peer with an id already in use). Signals coalesce: at most one
// message is on its way until the woken thread calls taken().
#pragma once

#include <atomic>
#include <cstring>
#include <mutex>
#include <string>

#include <zmq.hpp>

namespace rpc::detail {

class router_waker {
 public:
  /// Binds `router` to a private inproc endpoint of `ctx` and connects to it. Throws: error.
  router_waker(zmq::context_t& ctx, zmq::socket_t& router);

  /// Wakes the thread receiving on the router, or makes its next receive return at once. Any thread; never blocks
  /// on the receiver.
  void signal() noexcept;
  /// Whether a received message with routing id `id` is a wake-up rather than a peer's.
  [[nodiscard]] bool is_wakeup(const zmq::message_t& id) const noexcept {
    return id.size() == id_.size() && std::memcmp(id.data(), id_.data(), id_.size()) == 0;
  }
  /// The receiving thread took a wake-up: call it before looking at what it was woken for.
  void taken() noexcept { pending_ = false; }

 private:
  std::string id_;
  std::mutex mu_;  // guards dealer_
  zmq::socket_t dealer_;
  std::atomic<bool> pending_{false};
};

}  // namespace rpc::detail
