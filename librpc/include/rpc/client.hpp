// rpc::client: call methods on a zerorpc server (Python, node, ours) over ZeroMQ, or on an rpc::server at the
// other end of a duct (rpc::link).
//
//   rpc::client c("tcp://127.0.0.1:4242");
//   int sum = c.call("add", 1, 2).as<int>();
//   rpc::future later = c.async_call("slow", 10);
//
// Thread-safe: any number of threads may call at once; each call is its own zerorpc channel. Over ZeroMQ a blocking
// call() runs entirely on the calling thread, over a socket of that thread's own (sending, waiting and heartbeating
// itself: no hand-off to another thread); async_call() sends the call over a socket the client's asynchronous calls
// share, and the thread that waits on its future reads the reply itself (see rpc/future.hpp), while the client's I/O
// thread keeps every open asynchronous call's heartbeat. Over a duct, the link's reader thread routes each reply to its
// caller. Do not destroy a client while another thread is inside call() (threads waiting on its futures are fine: they
// get closed_error). A call has no total time limit by default — as long as the server keeps heartbeating it is alive —
// unless client_options.timeout or a per-call limit says otherwise. If the server goes silent for two heartbeat periods
// (or its duct closes), the call fails with lost_remote_error. When the server defers a long call (answers with a token
// after its budget), the client waits for the token server-side; callers see only the result. submit()/wait() use
// tokens explicitly.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <duct/buffer.hpp>
#include <duct/codec.hpp>
#include <duct/msgpack.hpp>
#include <rpc/error.hpp>
#include <rpc/future.hpp>
#include <rpc/link.hpp>
#include <rpc/stream.hpp>

namespace rpc {

struct client_options {
  std::chrono::milliseconds heartbeat = std::chrono::seconds(5);  ///< zerorpc's default period
  std::optional<std::chrono::milliseconds> timeout;               ///< default limit for every call; none if empty
  std::size_t max_message_size = std::size_t{64} << 20;
  /// The credit a stream's reader grants: at most stream_window items buffered or on their way, and about
  /// stream_window_bytes of them (the count adapts to the items' average size, 16 at least). Small items get a
  /// wide window and stream fast; large ones a narrow one, which keeps memory small. 0 bytes: items only.
  std::size_t stream_window = 1000;
  std::size_t stream_window_bytes = std::size_t{16} << 20;
  /// CURVE (see rpc/curve.hpp): the server's public key (Z85). Set, the client speaks CURVE: encrypted, and the
  /// server is known by its key. Empty: plain TCP.
  std::string curve_server_key;
  /// With CURVE: this client's key pair (Z85), which the server's allow-list names. Both empty: a fresh pair for
  /// this client alone, which only a server without an allow-list admits.
  std::string curve_public_key, curve_secret_key;
};

class client {
 public:
  /// Connects to `endpoint` (tcp://HOST:PORT or ipc://PATH). ZeroMQ connects in the background, so a server that
  /// starts later is found; calls made before then wait (within their time limit).
  ///
  /// Several servers: a comma-separated list ("tcp://a:4242,tcp://b:4242"; a comma separates only where a
  /// transport's name follows it, so an ipc path may hold commas). Each call goes whole to one server — its
  /// heartbeats, stream credit and chunks with it — the least loaded (calls open through this client) of those
  /// connected; a server that is not connected, or lost a call in the last two heartbeat periods, gets none while
  /// another can take them. With none connected a call waits up to a heartbeat period (or its limit) for one, then
  /// goes to the next in turn and waits there as with one server. A call is never sent twice: one lost with its
  /// server fails with lost_remote_error. poll()/wait()/cancel() go to the server that issued the token (known
  /// from submit() on this client, or by asking each connected server). At most 64 endpoints; each has its own
  /// sockets and I/O thread.
  /// Throws: error for an endpoint ZeroMQ cannot parse, or more than 64.
  explicit client(std::string_view endpoint, client_options opts = {});
  /// As the string form with a list: calls spread over `endpoints` (one: as client(endpoint)).
  /// Throws: error for no endpoint, an empty one, more than 64, or one ZeroMQ cannot parse.
  explicit client(const std::vector<std::string>& endpoints, client_options opts = {});
  /// Calls the server at the other end of `over` (see rpc::link). Several clients, and a server, may share a link.
  /// Throws: closed_error if the link is closed.
  explicit client(link over, client_options opts = {});
  /// Closes the client: calls still open fail with closed_error.
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Calls `method` with positional `args` and waits for the result.
  /// Returns: the result value.
  /// Throws: remote_error (unknown_method_error for a missing method), timeout_error, lost_remote_error,
  /// closed_error.
  template <class... Args>
  duct::value call(std::string_view method, const Args&... args) {
    return call_here(method, pack_args(args...), std::nullopt);
  }

  /// As call(), with its own time limit instead of the client's default.
  template <class... Args>
  duct::value call_for(std::chrono::milliseconds limit, std::string_view method, const Args&... args) {
    return call_here(method, pack_args(args...), limit);
  }

  /// Starts a call. Returns: a future for the result; its get() throws what call() would, including a request
  /// that could not be sent. Throws: closed_error if the client (or its link) is closed.
  template <class... Args>
  future async_call(std::string_view method, const Args&... args) {
    return start_async(method, pack_args(args...), std::nullopt);
  }

  /// Calls a method that streams its reply (see rpc/stream.hpp). A method that answers with one result instead
  /// yields that result as the stream's only item. Returns: the source to read the items from; errors come from
  /// its next(). Throws: closed_error if the client (or its link) is closed.
  template <class... Args>
  source stream(std::string_view method, const Args&... args) {
    return start_stream(method, pack_args(args...));
  }

  /// Calls a method whose first parameter is rpc::source& (a chunked request; see rpc::duplex): the call starts
  /// with `args` and the items written into the returned duplex follow, as the server's credit allows. Only our
  /// server reads chunked requests: a zerorpc server answers with an unknown_method_error, which the first write()
  /// or finish() throws. Never deferred; no total time limit (the heartbeat catches a server that goes away).
  /// Throws: closed_error if the client (or its link) is closed.
  template <class... Args>
  duplex chunked_call(std::string_view method, const Args&... args) {
    return start_chunked(method, pack_args(args...), false);
  }

  /// As chunked_call(), one-way (junction's chunked publish): once end() has sent the input's end the call is
  /// forgotten and its outcome goes nowhere. Errors before that (an unknown method, a handler that failed while
  /// reading) still reach write() and end() — which then does nothing.
  template <class... Args>
  duplex chunked_publish(std::string_view method, const Args&... args) {
    return start_chunked(method, pack_args(args...), true);
  }

  /// Publishes a one-way call (junction's publish): the server runs `method` and answers nothing, so nothing says
  /// whether or when it ran; use call() when that matters. Returns once the request is queued to be sent.
  /// Throws: closed_error if the client (or its link) is closed; lost_remote_error if its duct is.
  template <class... Args>
  void publish(std::string_view method, const Args&... args) {
    publish_here(method, pack_args(args...));
  }

  /// Calls `method` asking for its progress reports (a handler taking rpc::progress&): `on_progress` runs on this
  /// thread with each report, in order (a report may replace an older one not yet delivered), then the result is
  /// returned. A server that does not report progress just answers. Never deferred. The client's default timeout
  /// applies to the whole call.
  /// Throws: what call() throws; what `on_progress` throws (the call is then stopped).
  template <class F, class... Args>
  duct::value call_with_progress(std::string_view method, F&& on_progress, const Args&... args) {
    return call_reporting(method, pack_args(args...), std::function<void(const duct::value&)>(std::forward<F>(on_progress)));
  }

  /// As async_call(), with its own time limit instead of the client's default.
  template <class... Args>
  future async_call_for(std::chrono::milliseconds limit, std::string_view method, const Args&... args) {
    return start_async(method, pack_args(args...), limit);
  }

  // ---- with the arguments already packed (tools, proxies: the count and types known only at run time) -----------
  // `packed_args` is one msgpack array, the call's positional arguments; each behaves as its typed form above.

  duct::value call_packed(std::string_view method, const duct::buffer& packed_args,
                          std::optional<std::chrono::milliseconds> limit = std::nullopt) {
    return call_here(method, packed_args, limit);
  }
  source stream_packed(std::string_view method, const duct::buffer& packed_args) {
    return start_stream(method, packed_args);
  }
  duplex chunked_call_packed(std::string_view method, const duct::buffer& packed_args) {
    return start_chunked(method, packed_args, false);
  }
  /// As call_with_progress(); a stop requested on `stop` (from any thread) stops the call as an exception from
  /// `on_progress` would, and it throws cancelled_error.
  duct::value call_with_progress_packed(std::string_view method, const duct::buffer& packed_args,
                                        const std::function<void(const duct::value&)>& on_progress,
                                        std::stop_token stop = {}) {
    return call_reporting(method, packed_args, on_progress, std::move(stop));
  }
  /// As submit().
  std::string submit_packed(std::string_view method, const duct::buffer& packed_args);

  // ---- deferred calls (the server's _ductrpc_* built-ins) ----------------------------------------------------------

  /// Starts `method` as a deferred call. Returns: its token, which any client of the same server may use.
  /// Throws: unknown_method_error, shutting_down_error, remote_error ("TooManyJobs").
  template <class... Args>
  std::string submit(std::string_view method, const Args&... args) {
    return call("_ductrpc_submit", std::string(method), std::make_tuple(args...)).template as<std::string>();
  }
  /// The call's state: {"state": ..., "result" or "error": ...}. Throws: unknown_token_error.
  duct::value poll(const std::string& token) { return call("_ductrpc_poll", token); }
  /// Waits up to `limit` for the call's outcome. Returns: its result. Throws: its error, cancelled_error,
  /// still_running_error when `limit` passed first (the call goes on), unknown_token_error.
  duct::value wait(const std::string& token, std::chrono::milliseconds limit) {
    return call("_ductrpc_wait", token, std::chrono::duration<double>(limit).count());
  }
  /// Cancels the call. Returns: true if it was still running. Throws: unknown_token_error.
  bool cancel(const std::string& token) { return call("_ductrpc_cancel", token).as<bool>(); }

  /// The endpoint this client connects to ("duct:" and the duct's name over a link; the comma-separated list for
  /// several servers).
  [[nodiscard]] const std::string& endpoint() const noexcept;

  struct impl;

 private:
  template <class... Args>
  static duct::buffer pack_args(const Args&... args) {
    duct::pack_buffer out;
    msgpack::packer<duct::pack_buffer> p(out);
    p.pack_array(sizeof...(Args));
    (p.pack(args), ...);
    return out.take();
  }
  future start_async(std::string_view method, duct::buffer packed_args,
                                       std::optional<std::chrono::milliseconds> limit);
  duct::value call_here(std::string_view method, const duct::buffer& packed_args,
                        std::optional<std::chrono::milliseconds> limit);
  source start_stream(std::string_view method, const duct::buffer& packed_args);
  void publish_here(std::string_view method, const duct::buffer& packed_args);
  duplex start_chunked(std::string_view method, const duct::buffer& packed_args, bool oneway);
  duct::value call_reporting(std::string_view method, const duct::buffer& packed_args,
                             const std::function<void(const duct::value&)>& on_progress, std::stop_token stop = {});
  std::unique_ptr<impl> impl_;
};

}  // namespace rpc
