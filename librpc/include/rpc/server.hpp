// rpc::server: serve C++ callables to zerorpc clients (Python, node, ours) over ZeroMQ, and to our clients over
// ducts (rpc::link).
//
//   rpc::server s({.name = "calc"});
//   s.bind("add", [](int a, int b) { return a + b; }, "Adds two integers.");
//   std::string where = s.listen("tcp://127.0.0.1:0");   // port 0: the real endpoint comes back
//   s.start();                                             // the server's threads
//
// The server's threads share one I/O role (the socket, decoding, heartbeats, timers). The thread holding it runs
// a call's handler itself when it may start at once, so a fast call costs no thread wake-up; a handler still
// running after server_options::handoff_after (1 ms) gives the role to another of the server's threads, so a
// handler that blocks or burns CPU delays heartbeats and other clients' calls by at most about that budget. A duct
// served with listen(link) is read the same way: its reader runs the call, and a free thread of the server reads
// the duct while a call there runs long. At most `threads` handlers run at once. They are shared fairly: clients take
// turns, and each is bounded in what it may run, queue and keep (client_limits); beyond a bound a call is answered
// with an Overloaded error at once. Arguments are converted from the call's
// positional args by the callable's own parameter types; a wrong count or type becomes a TypeError ERR, never a
// crash. A handler's exception becomes an ERR: rpc::remote_error chooses its name, anything else is named after
// its C++ type. Malformed input is dropped and counted (dropped_events()); the server keeps serving.
//
// A call from our client (which announces it understands tokens) that is still running at its budget is answered
// with a token, and our client then waits for it server-side without the caller noticing; see defer_policy.
//
// Deferred calls, for any zerorpc client (Python, node, a shell script), through built-in methods:
//   _ductrpc_submit(method, [args])  start the call; returns a token at once
//   _ductrpc_poll(token)             {"state": "running"|"done"|"failed"|"cancelled", "result" | "error": ...}
//   _ductrpc_wait(token, seconds)    the call's own outcome, the server holding the request until then; after
//                                    `seconds` a StillRunning error (the job goes on)
//   _ductrpc_cancel(token)           stops the handler's stop token; true if it was still running
//   _ductrpc_list()                  [{"token", "method", "state"}, ...]
// Outcomes can be fetched again and again until keep_results after the call finished; then the token is unknown
// (UnknownToken). A client in another process may collect a token's result.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <rpc/detail/bind.hpp>
#include <rpc/error.hpp>
#include <rpc/link.hpp>
#include <rpc/stream.hpp>

namespace rpc {

/// When a call from a client that understands deferred replies (ours) is answered with a token instead of its result.
enum class defer_policy {
  after_budget,  ///< when it is still running after server_options::defer_after (the default)
  immediate,     ///< never: the call stays open, heartbeating, until its result
  always,        ///< at once: the reply is a token
};

/// Which thread runs a method's handler.
enum class run_on {
  /// The default: the server's threads. The thread that received the call (the I/O role's holder, or a duct's
  /// reader) runs it when it may start at once, and hands receiving on to another thread if it runs past
  /// server_options::handoff_after. A slow or blocking handler delays nobody else by more than about that budget.
  pool,
  /// The thread that received the call, in the same pass as the other calls it received: their replies leave
  /// together, and receiving is never handed on. It saves what a `pool` call run where it arrived still costs
  /// (counting it against `threads`, lending the role), which no longer measures (bench/README.md).
  /// Only for handlers that return within microseconds and never block or call out: while one runs, nothing else
  /// on that thread moves, not heartbeats and not other clients' calls. Such a call is never deferred.
  receiver,
};

/// How a method is served; see server::bind().
struct method_options {
  std::string doc;                      ///< what _zerorpc_help and _zerorpc_inspect report
  std::vector<std::string> arg_names;   ///< parameter names there (a0, a1, ... if empty)
  defer_policy defer = defer_policy::after_budget;
  run_on where = run_on::pool;
};

/// How shutdown() treats calls that are running.
enum class shutdown_mode { drain, abort };

/// What one client may take of a server. A client is a CURVE public key when the server speaks CURVE (every
/// connection with that key counts as one client), else one connection: a ZeroMQ peer, or a duct. What is refused
/// is answered at once with an Overloaded error (rpc::overloaded_error), never held or evicted from someone else.
struct client_limits {
  /// Handlers of the client running at once; 0: one fewer than the server's threads (at least 1), so that one
  /// client always leaves a thread to the others. A call beyond it waits its turn in the client's queue.
  std::size_t running = 0;
  std::size_t queued = 256;      ///< calls of the client waiting for a thread
  std::size_t open_calls = 1024;  ///< calls open on one connection (queued, running, streaming, waiting on a token)
  std::size_t jobs = 1000;       ///< deferred calls of the client kept (running, or with an outcome not yet expired)
  /// Bytes of the client's kept deferred outcomes. To make room the server first drops the outcomes the client
  /// has fetched already; a result that still does not fit is replaced by an Overloaded error.
  std::size_t kept_bytes = std::size_t{128} << 20;
};

struct server_options {
  std::string name = "ductrpc";                                ///< what _zerorpc_name and _zerorpc_ping report
  /// Handlers running at once. The server runs one thread more: whichever holds the I/O role (see handoff_after).
  std::size_t threads = 4;
  /// A call arrives on the thread that holds the server's I/O role (receiving, heartbeats, timers), or on a duct's
  /// reader, which runs its handler itself when the handler would start at once anyway: no thread wakes for a fast
  /// call. A handler still running this long after it started (a timer looks then: never sooner, and later only by
  /// the time a thread takes to wake) gives receiving to a free thread, and finishes where it is. 0: every handler
  /// runs on another thread than the one that received it (a thread wake-up per call, and nothing received ever waits
  /// for a handler). Streams and chunked calls always run on another thread.
  std::chrono::microseconds handoff_after = std::chrono::milliseconds(1);
  std::chrono::milliseconds heartbeat = std::chrono::seconds(5);  ///< zerorpc's default period
  /// As a broker's worker (connect()): the broker may send it `threads` times this many calls at once; those beyond
  /// `threads` wait in its queue, ready for the next free thread, instead of waiting in the broker for a round trip
  /// to it. 1: never more than it can run (fairest for long calls of uneven length: a call waits in the broker for
  /// whichever worker frees first; and a worker that dies loses only calls that had started). Higher: fast calls
  /// through a broker at about twice the rate (bench/README.md). 0 counts as 1. Capped at what the server holds
  /// (`threads` + max_queued); one broker client's calls beyond per_client's running and queued bounds are still
  /// answered Overloaded by this server.
  std::size_t broker_prefetch = 4;
  std::size_t max_message_size = std::size_t{64} << 20;        ///< larger messages are refused by ZeroMQ itself
  std::chrono::milliseconds defer_after = std::chrono::milliseconds(500);  ///< the budget of defer_policy::after_budget
  std::chrono::seconds keep_results = std::chrono::minutes(5);  ///< how long a deferred call's outcome is kept
  std::size_t max_jobs = 10000;                                 ///< deferred calls kept at once (running or not)
  std::size_t max_kept_bytes = std::size_t{512} << 20;  ///< bytes of deferred outcomes kept at once, all clients
  std::size_t max_queued = 4096;  ///< calls waiting for a thread, all clients; beyond it new calls get Overloaded
  client_limits per_client;       ///< see client_limits
  /// Whether _ductrpc_list lists the jobs of clients without a CURVE key (all of them, to anyone who asks). Off, a
  /// job is reached only through its token, a secret its client holds. With CURVE a client always sees its own
  /// jobs (those started with its key), and only those.
  bool list_jobs = false;
  std::size_t input_window = 100;  ///< items of a chunked request buffered or on their way, at most (the credit we grant)
  /// CURVE (see rpc/curve.hpp): with a secret key (Z85) the server encrypts everything on its tcp:// and ipc://
  /// endpoints and takes only clients that speak CURVE with its public key. Empty: no CURVE, and anyone who can
  /// reach a tcp:// port can call.
  std::string curve_secret_key;
  /// With CURVE: the client public keys (Z85) admitted; any other client's handshake is refused. Empty: any client
  /// that knows the server's public key (encrypted, but not authenticated).
  std::vector<std::string> curve_allow;
  /// With CURVE: called, on an internal thread, for each client refused, with its public key (Z85) and address.
  std::function<void(const std::string& client_key, const std::string& address)> on_curve_refused;
};

class server {
 public:
  explicit server(server_options opts = {});
  /// Stops the server: open calls are abandoned, their clients see the server go silent.
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Serves `f` as `name`, as `how` says: its doc and parameter names for _zerorpc_help and _zerorpc_inspect,
  /// when a call from a client that understands deferred replies gets a token instead (plain zerorpc clients always
  /// get the result on the open call), and which thread runs it. Bind before start(). If `f`'s first parameter is
  /// a std::stop_token it receives the call's cancellation (shutdown(abort), a drain whose grace ran out, a lost
  /// client) and is not an argument on the wire: check it, and return or throw soon after it is stopped.
  /// If its first parameter is rpc::sink&, `f` streams its reply (see rpc/stream.hpp): it writes items there and
  /// returns void; such a method is never deferred. If it is rpc::progress&, `f` may report progress before its
  /// result, to callers that ask for it (client::call_with_progress); their calls are never deferred. If it is
  /// rpc::source&, `f` reads a chunked request (client::chunked_call) from it, the call's other arguments following
  /// on the wire as usual; a plain call gives it an empty source. With rpc::sink& second, `f` also streams its reply
  /// as it reads (a bidirectional call). Chunked calls are never deferred.
  /// Throws: error if the server is running, `name` is empty, starts with '_' or is bound already, or `how` asks
  /// for a run_on::receiver method to be deferred always, to stream, to report progress or to read a chunked request.
  template <class F>
  void bind(std::string name, F f, method_options how) {
    bind_handler(name, detail::make_handler(name, std::move(f)), std::move(how),
                 {detail::wire_arity<F>(), detail::streams<F>(), detail::reports_progress<F>(), detail::reads_input<F>(),
                  detail::takes_stop_token<F>() || detail::streams<F>() || detail::reports_progress<F>() ||
                      detail::reads_input<F>(),
                  false});
  }
  /// What a method takes besides its wire arguments, for bind_raw().
  struct shape {
    std::size_t arity = 0;  ///< arguments on the wire (for the default arg_names)
    bool streams = false;   ///< ctx.out is its rpc::sink (its result is ignored)
    bool reports = false;   ///< ctx.report is its rpc::progress, or null when the caller did not ask
    bool reads = false;     ///< ctx.in is its rpc::source: a chunked request (empty for a plain call)
    /// It reads ctx.stop (or a sink, progress or source, which carry it). A method that does not is spared making
    /// one when it runs where its call arrived, and cannot be stopped.
    bool stops = true;
    bool peer = true;  ///< It reads ctx.peer (else that is left empty, sparing a copy per call).
  };

  /// Serves `f` as `name` as it is: `f` gets the call's args array, whatever its length and types, and the call's
  /// context as `is` says, and returns its result packed as one msgpack value; its exceptions become ERRs as for
  /// bind(). For methods whose signatures are only known at run time (rpc-serve's commands).
  /// Throws: as bind().
  void bind_raw(std::string name, detail::handler f, method_options how, shape is) {
    bind_handler(name, std::move(f), std::move(how), is);
  }

  /// Serves `f` as `name` on the pool, deferred after the budget; `doc` and `arg_names` as in method_options.
  template <class F>
  void bind(std::string name, F f, std::string doc = {}, std::vector<std::string> arg_names = {}) {
    bind(std::move(name), std::move(f), method_options{std::move(doc), std::move(arg_names)});
  }

  /// Binds and listens on a ZeroMQ endpoint: tcp://HOST:PORT (port 0 picks one) or ipc://PATH. Call before start().
  /// ipc://PATH never replaces what is there: a file that is not a socket, or a socket another server listens on,
  /// is an error; a stale socket (its server gone) is replaced. "ipc://" alone makes the socket in a fresh private
  /// directory (mode 0700, under $TMPDIR or /tmp). The server removes its ipc:// sockets when it stops.
  /// Returns: the endpoint clients should connect to.
  /// Throws: error naming the endpoint if it cannot be bound, or the port of a tcp:// endpoint is not 0 to 65535.
  std::string listen(std::string_view endpoint);

  /// Serves the peer at the other end of `over` (see rpc::link). Unlike listen(endpoint), works also while running,
  /// so a parent can serve each worker as it spawns it.
  /// Returns: "duct:" and the duct's name.
  /// Throws: error if the link is closed, another server serves it, or this server was stopped.
  std::string listen(const link& over);

  /// Serves the clients of an rpc-broker (rpc/broker.hpp, docs/broker.md) as one of its workers: connects to its
  /// backend (tcp://HOST:PORT or ipc://PATH) and, once started, announces its methods and `threads` times
  /// server_options::broker_prefetch as the calls it takes at once; the broker sends it no more. ZeroMQ connects
  /// (and reconnects, to a broker that restarted) in the background, and the server announces itself again
  /// whenever a broker asks. Its deferred calls' tokens then name it, so that they reach it through the broker.
  /// shutdown() tells the brokers to send no new calls, stop() that it leaves. `broker_key`: the broker's CURVE
  /// public key (Z85), to speak CURVE to it with this server's own key (server_options::curve_secret_key). Before
  /// start(); up to 255 brokers. Counts as listening.
  /// Returns: the endpoint. Throws: error naming the endpoint if it is not tcp:// or ipc://, is malformed, the
  /// server is running, or `broker_key` is not a key or comes without the server's own.
  std::string connect(std::string_view broker_backend, const std::string& broker_key = {});

  /// Starts the I/O thread and the pool. Throws: error if started before (a stopped server does not restart) or
  /// not listening anywhere.
  void start();
  /// Ends serving gracefully. drain: new calls are refused with a ShuttingDown error while running ones finish, and
  /// deferred results stay collectable (_ductrpc_wait, _ductrpc_poll) until each has been collected once; whatever
  /// is still running when `grace` ends is cancelled. abort: running calls are cancelled at once. A cancelled
  /// call's client gets a Cancelled error, and its handler's stop token is stopped. Returns once no call is open
  /// (handlers that ignore their stop token may still be running; stop() waits for them). Replies still queued in
  /// ZeroMQ get up to a second to reach their clients when the server is destroyed.
  void shutdown(shutdown_mode mode, std::chrono::milliseconds grace = std::chrono::seconds(30));

  /// Stops serving at once: open calls are abandoned (their clients see the server go silent); waits for running
  /// handlers to return. Idempotent.
  void stop() noexcept;

  /// Whether new calls are taken: true while running, false once shutdown() has begun or the server stopped.
  [[nodiscard]] bool accepting() const noexcept;

  /// Events dropped because they were malformed, for an unknown channel, or otherwise unusable.
  [[nodiscard]] std::uint64_t dropped_events() const noexcept;
  /// Calls open right now, across all clients: open channels and deferred calls still running.
  [[nodiscard]] std::size_t open_channels() const noexcept;
  /// How many times a handler ran past handoff_after on the receiving thread (the I/O role's holder, or a duct's
  /// reader), which then handed receiving on.
  [[nodiscard]] std::uint64_t handoffs() const noexcept;

  struct impl;

 private:
  friend struct detail::access;  // the library's own unit tests drive the core without sockets
  void bind_handler(const std::string& name, detail::handler h, method_options how, shape is);
  void release_ipc_files() noexcept;
  std::unique_ptr<impl> impl_;
};

}  // namespace rpc
