// Internal: a client's open calls, without I/O. The ZeroMQ client (zmq_client.cpp) and the duct link (link.cpp)
// each keep one under their own lock: they feed it the events that arrive and the time, and carry out what it
// returns — events to send, futures to settle — after that lock is released. It is where the client side of the
// protocol lives (docs/protocol.md): channels and their heartbeats, time limits, deferred calls followed up by
// _ductrpc_wait, stream credit and stops, a chunked call's input.
//
// Not thread-safe: its owner serialises every call. Stream and upload states it fills have locks of their own,
// taken under the owner's (see stream_state.hpp for the order).
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <duct/buffer.hpp>
#include <duct/codec.hpp>
#include <rpc/event.hpp>

#include "call_state.hpp"
#include "channel.hpp"
#include "reply.hpp"
#include "stream_state.hpp"
#include "upload_state.hpp"

namespace rpc::detail {

/// One call as its client asks for it.
struct call_spec {
  const void* owner = nullptr;  ///< who made it (clients sharing a link): fail_owner() fails its calls
  /// Whom it calls: the caller's endpoint (a string of the client's, which outlives the call) and the method. An
  /// error message starts with where(), made only then: most calls never need it.
  std::string_view endpoint;
  std::string method;
  [[nodiscard]] std::string where() const { return std::string(endpoint) + ": " + method; }
  std::optional<clock::time_point> deadline;  ///< its time limit, if any
  std::chrono::milliseconds limit{0};         ///< that limit's length, for the timeout's message
  std::chrono::milliseconds heartbeat{5000};  ///< its channel's heartbeat period
};

/// What kind of streamed call open_stream() opens.
struct stream_spec {
  bool progress = false;  ///< a call asking for progress reports: PROGRESS items, then its result
  bool chunked = false;   ///< a chunked call (_ductrpc_chunked): its input goes from an upload_state
  bool oneway = false;    ///< a chunked publish: forgotten once its input has ended
  std::size_t window = 100;      ///< the reply's receive window: items (client_options::stream_window)
  std::size_t window_bytes = 0;  ///< and bytes (client_options::stream_window_bytes)
};

/// A future to settle once the owner's lock is released, so that its waiter does not wake into a held lock.
struct settlement {
  std::shared_ptr<call_state> state;
  duct::value value;
  std::exception_ptr error;
};

/// What a step of the table asks its owner to do, in order, once the owner's lock is released.
struct effects {
  std::vector<duct::buffer> sends;     ///< events to send (heartbeats, credit, stops, follow-ups, cancels)
  std::vector<settlement> settles;     ///< futures decided
  [[nodiscard]] bool empty() const noexcept { return sends.empty() && settles.empty(); }
};

class call_table {
 public:
  /// A request to send: its id (its channel) and its body.
  struct request {
    message_id id;
    duct::buffer body;
  };

  /// Opens a call whose outcome settles `result`, announcing that we understand DEFERRED replies.
  /// Returns: its request, to send; if that fails, fail() the call with why.
  request open(std::string_view method, std::span<const std::byte> packed_args, call_spec spec,
               std::shared_ptr<call_state> result, clock::time_point now);

  /// A streamed call's request and the states its consumer (and, chunked, its writer) will hold. The owner
  /// attach()es them to itself before it hands them out.
  struct stream_request {
    message_id id;
    duct::buffer body;
    chunked_halves halves;  ///< `in` only for a chunked call
  };
  /// Opens a streamed call (a stream, a call asking for progress, a chunked call). It has no total time limit:
  /// its consumer limits the wait for each item. Returns: its request, to send.
  stream_request open_stream(std::string_view method, std::span<const std::byte> packed_args, call_spec spec,
                             const stream_spec& kind, clock::time_point now);

  /// A one-way request (nothing will answer it): a fresh id. Returns: its body.
  duct::buffer publish(std::string_view method, std::span<const std::byte> packed_args);

  /// An event of chunked call `id`'s input (CHUNK, CHUNK_DONE, CHUNK_ERR). A one-way call is forgotten once its
  /// input has ended. Returns: the event to send, or nothing if the call has ended (or is not chunked).
  std::optional<duct::buffer> chunk(const message_id& id, std::string_view name, std::span<const std::byte> args);
  /// The consumer of stream `id` took items: `_zpc_more [n]`. Returns: the event, or nothing if the call has ended
  /// (or is not a stream).
  std::optional<duct::buffer> credit(const message_id& id, std::size_t n);
  /// The consumer dropped stream `id`: forgets it, with `_ductrpc_stop` into `out` if the server understands it
  /// (or, before its first event has told, once that comes). Nothing for a call that is not a stream.
  void stop(const message_id& id, effects& out);

  /// An event arrived. Returns: false if it answers no open call (the owner may hand it to a server, or drop it).
  bool on_event(event& ev, clock::time_point now, effects& out);
  /// Sends heartbeats that are due, fails calls past their time limit (cancelling a deferred one's job) or whose
  /// server went silent for two periods. Returns: when the next of these is due (at the latest `now` + 1 s).
  clock::time_point tick(clock::time_point now, effects& out);
  /// When the next heartbeat or time limit is due, without acting (at the latest `later`).
  [[nodiscard]] clock::time_point next_due(clock::time_point later) const;

  /// Ends call `id` with `e`: its future, stream and input. Nothing if it has ended already.
  void fail(const message_id& id, std::exception_ptr e, effects& out);
  /// Ends every open call with `why(its where)`.
  void fail_all(const std::function<std::exception_ptr(const std::string& where)>& why, effects& out);
  /// Ends every open call of `owner` (every open call if null) with `why(its where)`.
  void fail_owner(const void* owner, const std::function<std::exception_ptr(const std::string& where)>& why,
                  effects& out);

  /// "endpoint: method" of open call `id`, or nothing if it has ended.
  [[nodiscard]] std::optional<std::string> where(const message_id& id) const;
  [[nodiscard]] bool empty() const noexcept { return calls_.empty(); }
  [[nodiscard]] std::size_t size() const noexcept { return calls_.size(); }
  /// Open calls whose events go to a consumer who needs them promptly (streams, progress, chunked).
  [[nodiscard]] std::size_t streams() const noexcept { return streams_; }
  /// A fresh event id (for requests the owner makes itself).
  message_id next_id() { return ids_.next(); }

 private:
  struct open_call {
    call_spec spec;
    heartbeat beat;
    std::string token;                   // set once the server deferred the call: we wait on it now
    std::shared_ptr<call_state> result;  // a call's future (not a stream's)
    std::shared_ptr<stream_state> stream;  // a streamed call: its events go here
    stream_stop stops;                     // when and how a dropped stream is stopped
    bool progress = false;
    std::shared_ptr<upload_state> upload;  // a chunked call: its input
    bool oneway = false;
  };
  using table = std::unordered_map<message_id, open_call, message_id_hash>;

  void on_reply(table::iterator c, event& ev, clock::time_point now, effects& out);
  void on_stream_event(table::iterator c, event& ev, effects& out);
  /// Goes on waiting for deferred call `c` on a fresh channel: _ductrpc_wait, held by the server.
  void wait_on_token(open_call c, const std::string& token, clock::time_point now, effects& out);
  void end(table::iterator c, std::exception_ptr e, effects& out);  // fails and forgets
  void forget(table::iterator c);

  table calls_;
  // Nodes of calls that ended, kept for the next calls to open: a call then costs no allocation of its own here.
  std::vector<table::node_type> spare_;
  id_generator ids_;
  std::size_t streams_ = 0;
  bool server_stops_ = false;  // a reply said the server understands _ductrpc_stop
};

}  // namespace rpc::detail
