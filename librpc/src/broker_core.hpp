// Internal, sans-I/O: rpc-broker's routing (docs/broker.md). Events and commands go in with the time; messages to
// send come out (out()); tick(now) finds dead workers, heartbeats queued calls and forgets silent channels, and
// next_due() says when to tick again. No sockets, threads or clock: rpc::broker (broker.cpp) moves the bytes.
//
// A client is named by the broker's CLIENT string (broker_wire.hpp), a worker by whatever the I/O layer chooses
// (its backend and routing id). Both are opaque here, except that a CLIENT's CURVE key, if it has one, is whose
// bounds its calls count against.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include <duct/buffer.hpp>
#include <rpc/event.hpp>

#include "channel.hpp"

namespace rpc::detail {

struct broker_config {
  std::string name = "rpc-broker";                  ///< what _zerorpc_name and _zerorpc_ping report
  std::chrono::milliseconds heartbeat{5000};        ///< how often a queued call's client hears from us
  std::chrono::milliseconds forget_after{30000};    ///< a channel (or queued call) silent this long is forgotten
  std::size_t max_queued = 4096;                    ///< calls waiting for a worker, all clients
  std::size_t client_queued = 256;                  ///< calls of one client waiting for a worker
  std::size_t client_open = 1024;                   ///< calls of one client open through the broker (queued or not)
  std::size_t max_open = 65536;                     ///< channels open through the broker, all clients
  std::size_t max_workers = 1024;                   ///< workers known at once; a READY beyond it is ignored
};

/// A message for the I/O layer to send.
struct broker_out {
  bool to_worker = false;
  std::string peer;    ///< the client (to_worker false) or the worker it goes to
  std::string client;  ///< to a worker: the CLIENT frame of a client's event; empty for a command
  duct::buffer body;   ///< the event, or the command's name
};

class broker_core {
 public:
  explicit broker_core(broker_config c);

  /// An event from a client (`client`: its CLIENT string). Malformed or unroutable input is dropped and counted.
  void from_client(const std::string& client, duct::buffer body, clock::time_point now);
  /// A worker's event for `client`.
  void from_worker(const std::string& worker, const std::string& client, duct::buffer body, clock::time_point now);
  /// A worker's command (READY, HEARTBEAT, DRAIN, BYE) and its payload.
  void command(const std::string& worker, std::string_view name, std::span<const std::byte> payload,
               clock::time_point now);
  /// Ends dead workers' calls, heartbeats queued calls, forgets silent channels.
  void tick(clock::time_point now);
  /// When tick() next has something to do.
  [[nodiscard]] clock::time_point next_due() const;

  /// What to send, in order; the caller sends and clears it.
  std::vector<broker_out>& out() noexcept { return out_; }

  [[nodiscard]] std::size_t workers() const noexcept { return workers_.size(); }
  [[nodiscard]] std::size_t queued() const noexcept { return queue_.size(); }
  [[nodiscard]] std::size_t open_channels() const noexcept { return routes_.size(); }
  [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_; }
  /// The calls worker `w` has open on the broker's count (0 for a worker it does not know).
  [[nodiscard]] std::size_t busy(const std::string& w) const;

 private:
  struct key {
    std::string client;
    message_id channel;
    bool operator==(const key&) const = default;
  };
  struct key_hash {
    std::size_t operator()(const key& k) const;
  };
  struct route {
    std::string worker;
    clock::time_point heard;
    bool slot = false;  // counts against the worker's jobs (token calls do not)
  };
  struct worker {
    std::uint32_t jobs = 1;
    std::uint32_t busy = 0;
    std::chrono::milliseconds heartbeat{5000};
    clock::time_point heard;
    bool draining = false;
    std::string prefix;
    std::map<std::string, duct::buffer, std::less<>> methods;  // name -> its _zerorpc_inspect entry, packed
  };
  struct pending {
    key k;
    std::string method;
    duct::buffer body;
    clock::time_point heard;
  };

  /// Whom a request is for: a method (by name), a token's worker, or the broker itself.
  struct target {
    enum class kind { method, token, local } how = kind::method;
    std::string name;  // the method, or the token
  };
  target target_of(const event& ev) const;
  void request(const std::string& client, const event& ev, duct::buffer body, clock::time_point now);
  void answer_locally(const std::string& client, const event& ev);
  /// Sends a queued or new call to a worker now if one can take it. Returns: false if it must wait.
  bool place(pending& p, clock::time_point now);
  /// Sends what waits in the queue to workers that have room, and fails what no worker serves.
  void pump(clock::time_point now);
  void close_route(std::unordered_map<key, route, key_hash>::iterator it);
  void drop_worker(const std::string& id, const std::string& why);
  void reply(const std::string& client, const message_id& channel, std::string_view name, duct::buffer args,
             bool stop = false);
  void fail(const std::string& client, const message_id& channel, const std::string& name, const std::string& message);
  /// The owner's open calls are one fewer (a call ended, or never got a channel).
  void release_client(const std::string& client);
  /// Takes a call out of the queue (its owner's open count stays: the caller decides). Returns: the next one.
  std::list<pending>::iterator unqueue(std::list<pending>::iterator it);
  bool serves(const std::string& method) const;
  static std::string owner_of(const std::string& client);

  broker_config cfg_;
  id_generator ids_;
  std::map<std::string, worker> workers_;  // ordered, so that equal loads go to the same worker every time
  std::unordered_map<std::string, std::string> prefixes_;  // token prefix -> worker
  std::unordered_map<key, route, key_hash> routes_;
  std::list<pending> queue_;
  std::unordered_map<key, std::list<pending>::iterator, key_hash> queued_;
  std::unordered_map<std::string, std::size_t> open_of_;    // by owner: routes and queued calls
  std::unordered_map<std::string, std::size_t> queued_of_;  // by owner
  std::vector<broker_out> out_;
  clock::time_point next_queue_beat_{};
  clock::time_point next_sweep_{};
  std::uint64_t dropped_ = 0;
};

}  // namespace rpc::detail
