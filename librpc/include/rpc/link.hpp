// rpc::link: zerorpc events over a duct, so a parent and a forked worker call each other's methods with the same
// rpc::server and rpc::client API as over ZeroMQ.
//
//   // the worker (after fork, or started with duct::spawn)
//   rpc::link up(duct::from_env());
//   rpc::server s;
//   s.bind("work", [](int n) { return n * 2; });
//   s.listen(up);                      // serve the parent over the duct
//   s.start();
//   rpc::client parent(up);            // and call back over the same duct
//   parent.call("progress", 50);
//
//   // the parent
//   rpc::link down(std::move(parent_end));
//   rpc::client worker(down);
//   int twice = worker.call("work", 21).as<int>();
//
// Each duct message is one zerorpc event, exactly as over ZeroMQ (ids, heartbeats, ERR shapes, deferred tokens). A
// link has one reader thread, started when a server starts on it or a client first calls on it (until then what
// arrives waits in the socket); it hands requests to the server and replies to the client call they answer. It
// runs a request's handler itself when the handler may start at once; past the server's handoff_after another of
// the server's threads reads the duct until the handler returns (rpc/server.hpp). A handler there that calls the
// peer back over the same duct (client::call) reads its own reply. A
// request that arrives once the reader runs but while no server serves the link is answered with a NoServer error:
// at each end, start the server before making calls. When the duct closes (the peer exited, or close()), calls open
// on it fail with lost_remote_error and the server forgets its calls from there.
//
// Create links after fork(): threads do not survive it. A link is a handle: copies share one duct, which closes
// when the last copy (and every server and client using it) is gone, or at close().
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <duct/connection.hpp>

namespace rpc {

namespace detail {
class link_core;
struct access;  // how rpc::server and rpc::client reach the link's core (librpc/src/access.hpp)
}

class link {
 public:
  /// Takes over `duct` (duplex, any framing; messages are zerorpc events, sent with send_bytes).
  /// Throws: error if the duct is closed or one-way.
  explicit link(duct::connection duct);

  /// Closes the duct now: open calls on it fail with closed_error, a server serving it forgets it. Idempotent.
  void close() noexcept;
  /// Whether the duct has closed, by close() or because the peer went away.
  [[nodiscard]] bool closed() const noexcept;
  /// Waits until the duct closes (a worker serving its parent returns when the parent goes away). Needs the reader
  /// running: a server started on the link, or a client that called.
  /// Returns: false if `limit` passed first.
  bool wait_closed(std::chrono::milliseconds limit = std::chrono::milliseconds::max());
  /// The duct's name, as errors show it.
  [[nodiscard]] const std::string& name() const noexcept;

 private:
  friend struct detail::access;
  std::shared_ptr<detail::link_core> core_;
};

}  // namespace rpc
