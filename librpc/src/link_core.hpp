// Internal: the shared state behind rpc::link — one duct, one reader thread, the client calls open on it and the
// server (at most one) that serves it. See rpc/link.hpp.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <duct/connection.hpp>
#include <rpc/event.hpp>

#include "call_state.hpp"
#include "call_table.hpp"
#include "channel.hpp"
#include "reply.hpp"
#include "stream_state.hpp"
#include "upload_state.hpp"
#include "wakeup.hpp"

namespace rpc::detail {

class link_core;

/// What a server serving a link does with what arrives on it; both run on the link's reader thread.
class link_server {
 public:
  /// A request, or an event on a channel the server has open (or had: the server drops those).
  virtual void on_link_event(link_core& from, std::shared_ptr<event> ev) = 0;
  /// The duct closed: the server forgets every call from it.
  virtual void on_link_closed(link_core& from) = 0;

 protected:
  ~link_server() = default;
};

class link_core : public std::enable_shared_from_this<link_core> {
 public:
  explicit link_core(duct::connection conn);
  /// Closes the duct and joins the reader.
  ~link_core();
  link_core(const link_core&) = delete;
  link_core& operator=(const link_core&) = delete;

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  /// The key a server files this link's calls under: it cannot collide with a ZeroMQ routing id.
  [[nodiscard]] const std::string& identity() const noexcept { return identity_; }
  [[nodiscard]] bool closed() const noexcept { return closed_.load(); }
  /// Waits until closed(). Returns: false if `limit` passed first.
  bool wait_closed(std::chrono::milliseconds limit);
  /// Closes the duct: open calls fail with closed_error and the server forgets the link. Idempotent.
  void close() noexcept;

  // ---- the server side -------------------------------------------------------------------------------------------
  /// Reserves the link for `s` (which hands nothing out yet). Throws: error if another server has it.
  void claim(link_server& s);
  /// Hands requests to `s` from now on, starting the reader if need be. Throws: error if another server has it.
  void attach(link_server& s);
  /// Stops handing events to `s` and releases the link; returns once no hand-off to it is running.
  void detach(link_server& s) noexcept;
  /// Sends one event body. Thread-safe. Throws: duct::error if the duct is closed or broken.
  void send(std::span<const std::byte> body);

  // ---- the client side (the protocol itself is the call table's: call_table.hpp) ---------------------------------
  /// Sends a request and returns the future of its outcome. A DEFERRED reply is followed up server-side
  /// (_ductrpc_wait) without the caller seeing it. A request that cannot be sent (the duct has closed) fails the
  /// future with lost_remote_error. Throws: closed_error if the link was closed.
  std::shared_ptr<call_state> start_call(std::string_view method, std::span<const std::byte> packed_args,
                                         call_spec spec, bool with_reader = true);
  /// A blocking call: as start_call, then waits for the outcome. Returns: the result. Throws: the call's error.
  duct::value call(std::string_view method, std::span<const std::byte> packed_args, call_spec spec);
  /// Starts a streamed call (a stream, progress, a chunked call: `kind`), with the reader thread. Its events go to
  /// the returned halves, and so does a failure to send the request. Throws: closed_error if the link was closed.
  chunked_halves start_stream(std::string_view method, std::span<const std::byte> packed_args, call_spec spec,
                              const stream_spec& kind);
  /// The writer of chunked call `id` sends an event of its input. Returns: false if the call has ended.
  /// Throws: lost_remote_error if the duct is broken, which also ends the call.
  bool send_chunk(const message_id& id, std::string_view name, std::span<const std::byte> args);
  /// Sends a one-way request. Throws: closed_error or lost_remote_error if the duct is closed.
  void publish(std::string_view method, std::span<const std::byte> packed_args, const std::string& where);
  /// The consumer of stream `id` took items: the server may send `n` more.
  void grant(const message_id& id, std::size_t n);
  /// The consumer dropped stream `id`: forget it, and tell the server if it listens.
  void stop_stream(const message_id& id);
  /// Fails every call `owner` still has open with closed_error (its client is going away).
  void abandon(const void* owner) noexcept;

 private:
  using outbox = std::vector<duct::buffer>;

  /// Sends call `id`'s request; if the duct refuses it, fails the call with lost_remote_error.
  void send_request(const message_id& id, const duct::buffer& body) noexcept;
  /// Carries out a step of the call table: its events go into `out` (flushed by the caller), its futures are
  /// settled now. Without mu_.
  void carry_out(effects& fx, outbox& out) noexcept;
  void ensure_reader();  // mu_ held
  /// Reads and hands out events until `done()` holds, the duct closes (then gone()) or the link is closing.
  /// Any number of threads may pump at once: each event goes to exactly one of them. `direct`: the pump of a
  /// blocking caller reading its own reply, which direct_wake_ wakes when another reader settles a call.
  template <class Done>
  void pump(Done done, bool direct);
  /// Wakes a blocking caller that reads its own reply, in case another reader has just settled its call.
  void settled() noexcept {
    if (direct_active_) direct_wake_.signal();
  }
  /// Whether the calling thread should read the duct itself: no reader thread runs and no other caller reads.
  bool read_here();
  void dispatch(duct::buffer body, outbox& out);
  void gone(const std::string& why, bool by_us) noexcept;
  void flush(outbox& out) noexcept;

  duct::connection conn_;
  const std::string name_;
  const std::string identity_;
  wakeup wake_;     // a reader should look again (an earlier deadline); drained by whoever sees it
  wakeup closing_;  // written once by close(), never drained: wakes every reader
  std::atomic<bool> closed_{false};
  std::mutex read_mu_;    // held from "is a whole event there?" to taking it
  std::mutex direct_mu_;  // held by a blocking caller that reads its reply itself
  std::atomic<bool> direct_active_{false};
  wakeup direct_wake_;

  std::mutex mu_;  // guards what follows up to server_mu_
  call_table calls_;
  std::thread reader_;
  bool stopping_ = false;
  std::condition_variable closed_cv_;  // notified when closed_ becomes true
  clock::time_point reader_wakes_at_ = clock::time_point::max();

  std::mutex server_mu_;  // held while an event is handed to the server
  link_server* server_ = nullptr;  // the server that claimed the link
  bool serving_ = false;           // and has started: events go to it
};

}  // namespace rpc::detail
