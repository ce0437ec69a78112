// Listening for and connecting to ducts by address.
//
// Addresses:
//   unix:/run/app.sock    a Unix socket at that path (a stale socket file left by a dead listener is replaced)
//   unix:                 a Unix socket in a fresh private directory (mode 0700); both removed when the listener closes
//   tcp://127.0.0.1:4000  TCP; port 0 picks a free port, which address() then shows; [::1] for IPv6
//
//   duct::listener l("tcp://127.0.0.1:0");
//   spawn_children_with(l.address());
//   while (...) { duct::connection c = l.accept(std::chrono::seconds(5)); ... }
//
//   // in the child, which may start before the parent listens:
//   duct::connection c = duct::connect(address, std::chrono::seconds(10));
//
// With options.authkey set, both sides run multiprocessing's mutual HMAC handshake, so either end may be Python's
// multiprocessing.connection.Listener/Client (use framing::multiprocessing for those).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <duct/connection.hpp>

namespace duct {

class listener {
 public:
  /// A closed listener.
  listener() noexcept;
  /// Binds and listens on `address`. `opts` apply to every accepted duct.
  /// Throws: address_error if the address cannot be parsed, resolved or bound (the message names it).
  explicit listener(std::string_view address, const options& opts = {}, int backlog = 128);
  listener(listener&&) noexcept;
  listener& operator=(listener&&) noexcept;
  listener(const listener&) = delete;
  listener& operator=(const listener&) = delete;
  /// Closes the listener.
  ~listener();

  /// Waits for a child to connect and, with an authkey, authenticates it.
  /// Returns: the duct to that child.
  /// Throws: timeout_error; auth_error if the child failed the handshake (its connection is closed and the listener
  /// keeps listening); closed_error if the listener is closed.
  connection accept(timeout t = forever);

  /// The address children connect to, with the real port and path filled in.
  [[nodiscard]] const std::string& address() const noexcept;
  /// The listening socket, for poll; -1 once closed.
  [[nodiscard]] int fileno() const noexcept;
  /// Stops listening and removes a Unix socket file (and the private directory of "unix:"). Idempotent.
  void close() noexcept;

  struct state;

 private:
  std::unique_ptr<state> state_;
};

/// Connects to a listener at `address`, retrying while nobody listens there yet (no such socket file, connection
/// refused) until `t` runs out; with an authkey, then authenticates.
/// Throws: timeout_error naming the address and the last reason; address_error for an address that cannot be
/// parsed or resolved; auth_error if the handshake fails.
connection connect(std::string_view address, timeout t = std::chrono::seconds(10), const options& opts = {});

}  // namespace duct
