// Internal: rpc::client over ZeroMQ. Its asynchronous side (shared DEALER, I/O thread, leader) is in
// zmq_client.cpp, its blocking calls (each on its calling thread's own DEALER) in zmq_call.cpp.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <rpc/curve.hpp>
#include <rpc/event.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "access.hpp"
#include "call_state.hpp"
#include "call_table.hpp"
#include "channel.hpp"
#include "client_impl.hpp"
#include "handshake_watch.hpp"
#include "reply.hpp"
#include "stream_state.hpp"
#include "upload_state.hpp"
#include "wakeup.hpp"
#include "zmq_util.hpp"

namespace rpc::detail {

struct zmq_client;

// How a stream's callbacks reach the client; the client empties it before it goes away.
struct back_ref {
  explicit back_ref(zmq_client* c) : client(c) {}
  std::mutex mu;
  zmq_client* client;
};

// Sends one event without waiting. Returns: false if the socket has no connection to queue it on (its handshake
// failed: our sockets queue without limit, so that is the only reason), where a blocking send would wait for ever.
// Throws: zmq::error_t for any other refusal.
bool send_body(zmq::socket_t& socket, const duct::buffer& body);

/// A reply's event, or nothing if it is not one (nothing to route it to).
std::optional<event> decode_reply(const zmq::message_t& body);

// A calling thread's own socket, for blocking calls.
struct direct_socket {
  zmq::socket_t socket;
  std::unique_ptr<detail::handshake_watch> watch;
  int fd;  // its ZMQ_FD
  id_generator ids;
  int recv_timeout = -1;  // its ZMQ_RCVTIMEO, as call() last set it
};

/// How long a blocking call waits inside ZeroMQ's own receive before it waits on its socket's descriptor, where
/// it also sees the client closing and a refused handshake (zmq_call.cpp).
inline constexpr std::chrono::milliseconds first_wait{10};

struct zmq_client final : client::impl, detail::reply_reader {
  /// `on_up`, if given, runs on the I/O thread whenever `up` changes.
  zmq_client(std::string_view ep, client_options o, std::function<void()> on_up = {})
      : impl(std::string(ep), with_curve_keys(std::move(o))), dealer(make_socket(dealer_watch)), up_changed(std::move(on_up)) {
    io = std::thread([this] { loop(); });
  }
  ~zmq_client() override;

  duct::value call(std::string_view method, const duct::buffer& packed_args,
                   std::optional<std::chrono::milliseconds> limit) override;
  future start(std::string_view method, const duct::buffer& packed_args,
               std::optional<std::chrono::milliseconds> limit) override;
  void read_for(detail::call_state& st, std::optional<detail::clock::time_point> until) override;
  std::shared_ptr<detail::stream_state> stream(std::string_view method, const duct::buffer& packed_args,
                                               bool progress) override;
  void publish(std::string_view method, const duct::buffer& packed_args) override;
  detail::chunked_halves chunked(std::string_view method, const duct::buffer& packed_args, bool oneway) override;
  bool send_chunk(const message_id& id, std::string_view name, std::span<const std::byte> args);
  void grant(const message_id& id, std::size_t n);
  void stop_stream(const message_id& id);
  detail::chunked_halves open_stream(std::string_view method, const duct::buffer& packed_args,
                                     detail::stream_spec kind);
  std::shared_ptr<back_ref> self = std::make_shared<back_ref>(this);
  std::shared_ptr<detail::reader_ref> reader = std::make_shared<detail::reader_ref>(this);

  zmq::context_t ctx{1};
  std::mutex dealer_mu;  // guards dealer: callers send on it, the I/O thread receives. Taken after `mu`, never before.
  std::unique_ptr<detail::handshake_watch> dealer_watch;  // read by the I/O thread
  zmq::socket_t dealer;
  const int dealer_fd = retry_eintr([this] { return dealer.get(zmq::sockopt::fd); });
  detail::wakeup wake;
  detail::wakeup closing_signal;  // written once on close and never drained: wakes every blocked call()
  detail::wakeup leader_wake;     // wakes the leader: input it may have missed, or its call settled by another thread
  // Who sleeps on the DEALER's descriptor: a sender that takes its edge (send_async()) must wake them.
  std::atomic<bool> leading{false};      // a thread waiting on a future reads replies (set under `mu`)
  std::atomic<bool> io_watching{false};  // the I/O thread reads replies (set under `mu`)
  std::vector<zmq::message_t> lead_frames;  // the leader's, kept for its capacity
  // Counts the uses of the DEALER (under dealer_mu): sends, reads, looks at ZMQ_EVENTS. Any of them may take the
  // descriptor's edge. A read that found nothing leaves the descriptor to signal the next reply; while this count has
  // not moved since, nobody took that edge, and a new leader may sleep on the descriptor without reading first.
  std::uint64_t dealer_uses = 0;
  std::mutex sockets_mu;
  std::unordered_map<std::thread::id, std::unique_ptr<direct_socket>> sockets;  // guarded by sockets_mu
  std::atomic<bool> running{true};
  /// Whether the shared DEALER has a connection that shook hands (the server is there), as the I/O thread last saw.
  std::atomic<bool> up{false};
  const std::function<void()> up_changed;
  std::thread io;

  std::mutex mu;  // guards what follows
  bool closing = false;
  detail::call_table calls;  // the calls on the shared DEALER (blocking ones run apart: call())
  std::vector<detail::settlement> done;  // settled after `mu` is released (release())
  detail::effects replied;  // on_reply()'s, kept for the capacity of its vectors: an allocation per reply otherwise
  int followers = 0;          // threads waiting on a future while another leads
  detail::clock::time_point io_wakes_at = detail::clock::time_point::min();

  void loop();
  void release(std::unique_lock<std::mutex>& lock);
  /// The leader, reading for `st`, stops leading (under `mu`). Returns: whether the I/O thread must read now, for
  /// threads still waiting or for streams.
  bool step_down(detail::call_state& st);
  /// Reads a reply already queued, if no thread leads, before `st`'s waiter takes the lead. Returns: whether `st`
  /// is settled. A read that found nothing sets `found_nothing_at` to dealer_uses after it.
  bool glance(detail::call_state& st, std::optional<std::uint64_t>& found_nothing_at);
  /// Carries out a step of the call table (under `mu`): its events go out now, its futures settle in release().
  void absorb(detail::effects& fx);
  /// How many asynchronous calls (streams, chunked calls) are open.
  std::size_t open_calls() {
    std::lock_guard lock(mu);
    return calls.size();
  }
  /// Fails open call `id` with `e` (under `mu`).
  void fail(const message_id& id, std::exception_ptr e);
  /// A call as the table takes it: named, with the client's heartbeat, and its time limit if any.
  detail::call_spec spec(std::string_view method, std::optional<std::chrono::milliseconds> limit) const;
  bool take_replies(std::vector<zmq::message_t>& frames, std::vector<zmq::message_t>& bodies);
  /// Sends on the shared DEALER; `where` names the call for errors. Throws: connection_error if no connection
  /// can take it (its handshake failed), error for any other refusal.
  void send_async(const duct::buffer& body, std::string_view where = {});
  zmq::socket_t make_socket(std::unique_ptr<detail::handshake_watch>& watch);
  std::mutex refused_mu;  // a leaf: taken under `mu` or dealer_mu, or alone
  std::optional<std::string> refused;  // why the last handshake on the shared DEALER failed (under refused_mu)
  std::atomic<bool> refusing{false};   // whether `refused` is set: read without the lock on every send
  std::optional<std::string> refusal() {
    std::lock_guard lock(refused_mu);
    return refused;
  }
  /// Fails every open call on the shared DEALER with `reason` (under `mu`).
  void fail_all(const std::string& reason);
  static client_options with_curve_keys(client_options o);
  // An event the server would refuse unread: ZeroMQ drops the connection of a peer that sends more than the
  // server's max_message_size, and the call would only fail when the heartbeats gave up. Refused here, clearly,
  // against our own max_message_size (64 MiB by default, as the server's). `bytes` is the event's payload; a
  // header and name come on top. Throws: error naming the method and both sizes.
  void check_size(std::string_view method, std::size_t bytes) const {
    if (over_size(bytes + method.size())) throw too_big(endpoint + ": " + std::string(method), bytes);
  }
  [[nodiscard]] bool over_size(std::size_t bytes) const {
    constexpr std::size_t head_room = 256;
    return bytes + head_room > opts.max_message_size;
  }
  /// The error for an event of `bytes` over the limit; `where` is "endpoint: method".
  [[nodiscard]] error too_big(const std::string& where, std::size_t bytes) const {
    return error(where + ": " + std::to_string(bytes) + " bytes is over the message size limit of " +
                 std::to_string(opts.max_message_size) + " bytes");
  }
  direct_socket& my_socket();
  duct::value collect(const std::string& token, std::optional<detail::clock::time_point> deadline,
                      const std::string& where, std::optional<std::chrono::milliseconds> limit);
  void on_reply(const zmq::message_t& body, detail::clock::time_point now);
};

}  // namespace rpc::detail
