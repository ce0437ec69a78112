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
#include "io_role.hpp"
#include "server_pipe.hpp"
#include "reply.hpp"
#include "stream_state.hpp"
#include "upload_state.hpp"
#include "wakeup.hpp"

namespace rpc::detail {

/// One duct's reader, its client calls, and the server side of a server_pipe (server_pipe.hpp).
class link_core final : public server_pipe, public std::enable_shared_from_this<link_core> {
 public:
  explicit link_core(duct::connection conn);
  /// Closes the duct and joins the reader.
  ~link_core();
  link_core(const link_core&) = delete;
  link_core& operator=(const link_core&) = delete;

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  /// The key a server files this link's calls under: it cannot collide with a ZeroMQ routing id.
  [[nodiscard]] const std::string& identity() const noexcept override { return identity_; }
  [[nodiscard]] std::string peer() const override { return "duct:" + name_; }
  [[nodiscard]] bool closed() const noexcept { return closed_.load(); }
  /// Waits until closed(). Returns: false if `limit` passed first.
  bool wait_closed(std::chrono::milliseconds limit);
  /// Closes the duct: open calls fail with closed_error and the server forgets the link. Idempotent.
  void close() noexcept;

  // ---- the server side -------------------------------------------------------------------------------------------
  /// Reserves the link for `s` (which hands nothing out yet). Throws: error if another server has it.
  void claim(pipe_server& s);
  /// Hands requests to `s` from now on, starting the reader if need be. With a `budget` the reader runs the calls
  /// `s` keeps for it itself (a fast call costs no thread wake-up), in the manner of the server's I/O role
  /// (io_role.hpp): if one is still running one budget later, a free thread of `s` reads the duct meanwhile
  /// (relieve()), until the call returns. 0: `s` keeps no calls. Throws: error if another server has it.
  void attach(pipe_server& s, std::chrono::microseconds budget);
  /// Stops handing events to `s` and releases the link; returns once no hand-off to it (or call the reader runs for
  /// it) is running, and no thread of `s` reads for it any more but to return.
  void detach(pipe_server& s) noexcept;
  /// The reader is about to run a call that `s` kept for it (reader thread only, from run_pipe_calls()).
  void lend() noexcept override;
  /// That call returned. If it ran long, the reader takes reading back and the thread reading for it returns.
  void reclaim() noexcept override;
  /// Reads for the reader while it runs a long call, until that returns, the link closes or its server detaches.
  /// Run by a free thread of the server (pipe_server::on_pipe_vacated()).
  void relieve();
  /// How many times a call the reader ran passed the budget.
  [[nodiscard]] std::uint64_t handoffs();
  /// Sends one event body. Thread-safe. Throws: duct::error if the duct is closed or broken.
  void send(std::span<const std::byte> body) override;

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
  /// Who pumps: the reader thread, a blocking caller reading its own reply (direct_wake_ wakes it when another
  /// reader settles a call), or a thread reading for the reader while it runs a long call (help_wake_ wakes it).
  enum class pumper { reader, direct, helper };
  /// Reads and hands out events until `done()` holds, the duct closes (then gone()) or the link is closing.
  /// Any number of threads may pump at once: each event goes to exactly one of them, and events are handed out
  /// in the order they arrive (read and dispatched under read_mu_).
  template <class Done>
  void pump(Done done, pumper who);
  /// Wakes a blocking caller that reads its own reply, in case another reader has just settled its call.
  void settled() noexcept {
    if (direct_active_) direct_wake_.signal();
  }
  /// Whether the calling thread should read the duct itself: no reader thread runs and no other caller reads.
  bool read_here();
  /// Hands out one event (read_mu_ held). Returns: the server it went to, pinned (handing_) until its calls have
  /// run (run_pinned()), or null.
  pipe_server* dispatch(duct::buffer body, outbox& out, pumper who);
  /// Runs what the server left for this thread, then unpins it.
  void run_pinned(pipe_server& s) noexcept;
  /// The role's monitor: the reader's call ran long.
  void vacated();
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
  wakeup help_wake_;  // the reader took reading back: threads reading for it return

  std::mutex mu_;  // guards what follows up to server_mu_
  call_table calls_;
  std::thread reader_;
  bool stopping_ = false;
  std::condition_variable closed_cv_;  // notified when closed_ becomes true
  clock::time_point reader_wakes_at_ = clock::time_point::max();

  std::mutex server_mu_;  // held while an event is handed to the server
  pipe_server* server_ = nullptr;  // the server that claimed the link
  bool serving_ = false;           // and has started: events go to it
  std::size_t handing_ = 0;        // hand-offs to it whose calls are still running (run_pinned())
  std::condition_variable handed_cv_;  // with server_mu_: handing_ fell to 0
  // The reader's role (made by attach() with a budget; replaced only by a later server's attach()), and the
  // reader's ticket to it (reader thread only).
  std::shared_ptr<io_role> role_;
  io_role::ticket ticket_ = 0;
};

}  // namespace rpc::detail
