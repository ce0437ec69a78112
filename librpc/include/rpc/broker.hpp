// rpc::broker: many servers behind one endpoint (what rpc-broker runs). Clients connect to a frontend as to a
// zerorpc server; servers connect to a backend as workers (server::connect()). Every event of a call goes to the
// worker that took its request, so heartbeats, streams, chunked input and progress work through it; deferred
// tokens reach the worker that holds their job. The wire between broker and workers: docs/broker.md.
//
//   rpc::broker b({.name = "pool"});
//   std::string clients = b.frontend("tcp://127.0.0.1:0");
//   std::string workers = b.backend("ipc://");
//   b.start();
//   // each worker: rpc::server s; s.bind(...); s.connect(workers); s.start();
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rpc {

struct broker_options {
  std::string name = "rpc-broker";  ///< what _zerorpc_name and _zerorpc_ping report for the pool
  /// How often a call waiting in the broker's queue heartbeats its client (so that it is not taken as lost).
  /// A worker's own period is what it announces; the broker takes it as dead after two of them in silence.
  std::chrono::milliseconds heartbeat = std::chrono::seconds(5);
  /// A channel silent in both directions this long is forgotten and its worker's slot freed; a queued call whose
  /// client is silent this long is dropped. Longer than two heartbeat periods of any client or worker.
  std::chrono::milliseconds forget_after = std::chrono::seconds(30);
  std::size_t max_queued = 4096;     ///< calls waiting for a worker, all clients; beyond: Overloaded
  std::size_t client_queued = 256;   ///< calls of one client waiting for a worker; beyond: Overloaded
  std::size_t client_open = 1024;    ///< calls of one client open through the broker; beyond: Overloaded
  std::size_t max_open = 65536;      ///< calls open through the broker, all clients; beyond: Overloaded
  std::size_t max_workers = 1024;    ///< workers at once; another's READY is ignored
  std::size_t max_message_size = std::size_t{64} << 20;  ///< larger messages are refused by ZeroMQ itself
  /// CURVE (see rpc/curve.hpp) on every frontend and backend: the broker's secret key (Z85). Empty: none.
  std::string curve_secret_key;
  /// With CURVE: the client public keys admitted on the frontends (empty: any client that knows our key).
  std::vector<std::string> curve_allow;
  /// With CURVE: the worker public keys admitted on the backends (empty: any worker that knows our key). Workers
  /// are trusted with the calls and the clients' keys, so a backend reachable by others should name them.
  std::vector<std::string> curve_workers;
};

class broker {
 public:
  /// Throws: error if a CURVE key in `opts` is not a Z85 key of 40 characters.
  explicit broker(broker_options opts = {});
  /// Stops the broker: calls open through it are abandoned (their clients see it go silent).
  ~broker();
  broker(const broker&) = delete;
  broker& operator=(const broker&) = delete;

  /// Binds an endpoint for clients (tcp://HOST:PORT, port 0 picks one; ipc://PATH; "ipc://" alone: a fresh
  /// private path). Before start(). Returns: the endpoint bound. Throws: error naming the endpoint.
  std::string frontend(std::string_view endpoint);
  /// Binds an endpoint for workers, as frontend(). Returns: the endpoint bound. Throws: error naming the endpoint.
  std::string backend(std::string_view endpoint);

  /// Starts the broker's thread. Throws: error if started before, or without a frontend and a backend.
  void start();
  /// Stops the broker's thread; sockets close, ipc:// files are removed. Idempotent.
  void stop() noexcept;

  [[nodiscard]] std::size_t workers() const noexcept;        ///< workers known now
  [[nodiscard]] std::size_t queued() const noexcept;         ///< calls waiting for a worker now
  [[nodiscard]] std::size_t open_channels() const noexcept;  ///< calls open on workers now
  [[nodiscard]] std::uint64_t dropped_events() const noexcept;  ///< malformed, unknown or unroutable events

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace rpc
