// Internal: the two sides of a server's pipe, in the manner of nng's per-transport pipe operations. A pipe is a
// peer with a connection of its own (a duct link; a unit test's fake), where the ROUTER multiplexes many peers on
// one socket. The server's core (rpc::server::impl) knows pipes only through server_pipe, and a pipe reaches the
// server only through pipe_server, so the core's handling of calls can be driven and observed without sockets
// (tests/rpc/server_core_test.cpp).
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>

#include <rpc/event.hpp>

namespace rpc::detail {

/// What the server does with a pipe.
class server_pipe {
 public:
  /// The key the server files the pipe's calls under: no ZeroMQ routing id can equal it.
  [[nodiscard]] virtual const std::string& identity() const noexcept = 0;
  /// Who is at the other end, for call_context::peer ("duct:NAME").
  [[nodiscard]] virtual std::string peer() const = 0;
  /// Sends one event body. The server calls it from one thread at a time per pipe. Throws: if the pipe is broken
  /// (the server counts the event dropped; the pipe reports its end through pipe_server::on_pipe_closed()).
  virtual void send(std::span<const std::byte> body) = 0;
  /// Around a call the server kept for the pipe's reading thread (pipe_server::run_pipe_calls()): the thread is
  /// about to run it, and has run it. A pipe whose reading can be handed on (link_core) lends its role here.
  virtual void lend() noexcept {}
  virtual void reclaim() noexcept {}

 protected:
  ~server_pipe() = default;
};

/// What a pipe does with the server serving it.
class pipe_server {
 public:
  /// A request, or an event on a channel the server has open (or had: the server drops those). Called by one
  /// reading thread at a time, in the order events arrive. `keep`: the caller is the pipe's reader and may run a
  /// call itself (it holds the pipe's role): a call that may start at once is kept for run_pipe_calls() to run
  /// here, not queued for another thread.
  virtual void on_pipe_event(server_pipe& from, std::shared_ptr<event> ev, bool keep) = 0;
  /// Runs on this thread what on_pipe_event() left for it (kept calls, run_on::receiver calls), once the pipe has
  /// let go of its read lock. A kept call runs between from.lend() and from.reclaim().
  virtual void run_pipe_calls(server_pipe& from) = 0;
  /// A call the pipe's reader ran passed the budget: a free thread of the server should run `relieve` (which
  /// reads the pipe meanwhile). Called without the server's locks, on any thread.
  virtual void on_pipe_vacated(std::function<void()> relieve) = 0;
  /// The pipe closed: the server forgets every call from it.
  virtual void on_pipe_closed(server_pipe& from) = 0;

 protected:
  ~pipe_server() = default;
};

}  // namespace rpc::detail
