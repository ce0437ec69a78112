// Internal: ZeroMQ helpers shared by server and client. Only .cpp files include zmq.hpp.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <chrono>

#include <poll.h>

#include <zmq.hpp>
#include <zmq_addon.hpp>

namespace rpc::detail {

/// Runs `op` (a ZeroMQ call through cppzmq), again while a signal handler interrupts it: ZeroMQ fails with EINTR
/// whatever processes the socket's commands (connect, bind, reading ZMQ_FD or ZMQ_EVENTS), and a signal must
/// not make a call or a server fail. Returns: what `op` returns. Throws: zmq::error_t for anything but EINTR.
template <class Op>
auto retry_eintr(Op op) {
  for (;;) {
    try {
      return op();
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
    }
  }
}

/// Refuses what ZeroMQ would take wrongly: a tcp:// port that is not a number from 0 to 65535 (ZeroMQ wraps
/// 99999 round to 34463). Throws: rpc::error naming the endpoint.
void check_endpoint(std::string_view endpoint);

/// Binds `socket` to `endpoint`; "tcp://HOST:0" picks a free port. Returns: the endpoint actually bound.
/// Throws: rpc::error naming the endpoint.
std::string bind_endpoint(zmq::socket_t& socket, std::string_view endpoint);

/// poll(2) on plain descriptors (a ZeroMQ socket's ZMQ_FD among them), `wait` -1 for no limit, treating an
/// interruption by a signal handler as an early wake-up. Unlike zmq::poll, which always looks once without waiting
/// first, it costs one system call. Throws: rpc::error for anything but EINTR.
void poll_fds(pollfd* fds, std::size_t count, std::chrono::milliseconds wait);

/// Where a message came from, for logs: the peer's address ZeroMQ attached to it ("Peer-Address": the IP of a
/// tcp:// peer, "localhost:UID:GID:PID" of an ipc:// one), or "ipc" when it has none. Throws: nothing.
std::string peer_address(const zmq::message_t& message) noexcept;

/// The CURVE public key (Z85) of the client a message came from, as our ZAP handler named it ("User-Id"), or
/// empty without CURVE. Throws: nothing.
std::string peer_key(const zmq::message_t& message) noexcept;

/// Sends one part, going round again when a signal handler interrupts it (an interrupted part was not queued, so
/// retrying a part never duplicates one). Returns: false if, with send_flags::dontwait, it could not be queued
/// (EAGAIN). Throws: zmq::error_t for anything else.
bool send_part(zmq::socket_t& socket, zmq::const_buffer part, zmq::send_flags flags);

/// Whether a message is waiting (ZMQ_EVENTS), going round again when a signal interrupts the question.
/// Throws: zmq::error_t for anything else.
bool has_input(zmq::socket_t& socket);

/// recv_multipart without waiting, going round again when a signal interrupts it. Returns: false when nothing is
/// there (ZeroMQ then signals the socket's descriptor when something comes).
bool try_recv(zmq::socket_t& socket, std::vector<zmq::message_t>& frames);

/// recv_multipart, waiting up to the socket's ZMQ_RCVTIMEO (a wait a signal interrupts starts again). Unlike a
/// wait on ZMQ_FD, it needs no read that finds nothing first: ZeroMQ looks at its pipes before it sleeps.
/// Returns: false if nothing came within the wait.
bool recv_within(zmq::socket_t& socket, std::vector<zmq::message_t>& frames);

}  // namespace rpc::detail
