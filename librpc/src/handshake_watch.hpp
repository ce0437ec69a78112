// Internal: what a client socket's security handshakes say, read from ZeroMQ's socket monitor.
//
// A DEALER whose handshake fails (the server refused our CURVE key, we have the wrong server key, one side speaks
// CURVE and the other does not) never tells its sender: its messages are dropped, and a blocking send can wait for
// ever. The watch turns those failures into a reason a call can fail with at once.
#pragma once

#include <atomic>
#include <optional>
#include <string>

#include <zmq.hpp>

namespace rpc::detail {

class handshake_watch {
 public:
  /// Watches `socket`'s handshakes (before it connects); `curve`: whether it speaks CURVE (for the reasons given).
  /// Throws: zmq::error_t if ZeroMQ cannot monitor it.
  handshake_watch(zmq::context_t& ctx, zmq::socket_t& socket, bool curve);
  handshake_watch(const handshake_watch&) = delete;
  handshake_watch& operator=(const handshake_watch&) = delete;

  /// The descriptor to poll (ZMQ_FD of the monitor's socket): readable when events may be waiting; then call read().
  [[nodiscard]] int fd() const noexcept { return fd_; }
  /// Reads the events waiting. Returns: the reason of the last handshake's failure, or nullopt if the last one
  /// succeeded or none has ended yet. Throws: nothing.
  std::optional<std::string> read() noexcept;
  /// What read() last returned, without reading.
  [[nodiscard]] const std::optional<std::string>& failure() const noexcept { return failure_; }
  /// Whether, as of the last read(), the socket has a connection whose handshake succeeded (and has not since been
  /// lost): someone who speaks our mechanism is there.
  [[nodiscard]] bool connected() const noexcept { return connected_; }

 private:
  zmq::socket_t events_;
  int fd_;
  bool curve_;
  bool shook_hands_ = false;  // a handshake has succeeded on this socket: the server spoke our mechanism
  bool connected_ = false;    // and its connection is still up
  std::optional<std::string> failure_;
};

}  // namespace rpc::detail
