// Internal: the state of an rpc::server, shared by the thread holding its I/O role (the ROUTER socket, timers; see
// io_role.hpp), the reader threads of the pipes it serves (duct links; server_pipe.hpp) and its handler pool, all
// under one mutex. The core (on_event(), tick(), the path of a call) names peers by identity only; two transports
// carry their events: the ROUTER, and pipes, known only through server_pipe, so a unit test can drive the core
// with a fake one (tests/rpc/server_core_test.cpp). Sends are queued under the mutex and leave when the step that
// queued them flush()es, after letting go of it, in the order they were queued: ROUTER sends under router_mu, each
// pipe's by one thread at a time (whoever flushes first, until its queue is empty). server.cpp has the life cycle
// and the public API, server_io.cpp the transports and sending, server_calls.cpp the path of a call,
// server_input.cpp a chunked call's input, server_quick.cpp the calls the I/O role's holder runs untracked,
// server_streams.hpp a streaming handler's sink and progress, server_builtins.cpp the built-in methods, and
// server_broker.cpp serving as rpc-broker's worker.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <duct/msgpack.hpp>
#include <rpc/event.hpp>
#include <rpc/server.hpp>
#include <zmq.hpp>

#include "channel.hpp"
#include "ipc_path.hpp"
#include "job_store.hpp"
#include "link_core.hpp"
#include "server_pipe.hpp"
#include "stream_state.hpp"
#include "fair_pool.hpp"
#include "io_role.hpp"
#include "wakeup.hpp"
#include "zap_handler.hpp"

namespace rpc {
namespace detail {

struct method_entry {
  handler fn;
  std::string doc;
  std::vector<std::string> arg_names;
  defer_policy policy;
  run_on where;
  bool streams;
  bool reports;
  bool reads;  // takes rpc::source&: a chunked request
  bool stops;  // reads ctx.stop (server::shape)
  bool peer;   // reads ctx.peer (server::shape)
};

// A call by client identity (a ZeroMQ routing id, or a link's identity) and channel.
struct call_key {
  std::string identity;
  message_id channel;
  bool operator==(const call_key&) const = default;
};
struct call_key_hash {  // not noexcept, for the reason message_id_hash is not
  std::size_t operator()(const call_key& k) const {
    return detail::hash_bytes(k.identity) * 0x9e3779b97f4a7c15u ^ message_id_hash()(k.channel);
  }
};

enum class serving_mode { serving, draining, aborting };

// A call whose handler is running on the pool.
struct running_call {
  // Empty for a run_on::receiver call, which runs to its end before anything could stop it: a stop state is an
  // allocation, and such calls are the ones that must cost least. The other paths make one (start_call()).
  std::stop_source stop{std::nostopstate};
  std::shared_ptr<std::atomic<bool>> lost;  // a stream's: whether it was stopped because its client was lost
  std::string method;
  std::optional<clock::time_point> defer_at;  // when to answer with a token instead (clients that accept it)
  bool oneway = false;                         // a published call: no channel, nothing to answer
  std::shared_ptr<stream_state> input;         // a chunked call's: the items its client writes
  bool publish_after_input = false;            // a chunked publish: one-way once its input has ended
};

// What a handler produced, for the channel it answers or (token set) for the deferred call it ran as.
struct outbound {
  std::string identity;
  message_id channel;
  std::string name;  // OK or ERR
  duct::buffer packed_args;
  std::string token;
  bool stream = false;  // a streamed reply: success ends it with STREAM_DONE
};

class server_sink;
class server_progress;

// A call to a run_on::receiver method, run by the thread that received it once it has let go of the lock.
struct inline_call {
  const handler* fn = nullptr;
  std::shared_ptr<event> ev;  // keeps the args alive
  std::stop_token stop;
  outbound o;
  bool tracked = false;  // among the running calls, with a channel; else a plain call on the fast path (on_event())
  bool unwrapped = false;  // o.packed_args is the bare result (execute_unwrapped()), for reply_batch::add()
};

// A call the thread holding the I/O role received and runs itself once it has let go of the lock, if the pool
// lets it start at once (fair_pool::try_begin()); else, or if the role has gone to another thread meanwhile, it is
// queued on the pool like any other.
struct io_call {
  std::string client;          // whose bounds it counts against
  std::function<void()> job;   // as run_handler() made it
  call_key key;                // to answer with Overloaded if the pool refuses it
  const std::string* method = nullptr;  // the bound method's name (methods are fixed once started)
  bool oneway = false;                 // published: refused, it is dropped and counted
};

// A plain call to a pool method that the I/O role's holder received and runs itself (server_quick.cpp). It is not
// tracked (no channel, no running-call entry: nothing could reach it while the holder, the only thread that reads,
// runs it) unless it outlasts the budget; then on_vacated() tracks it, as if it had been started the long way.
struct quick_call {
  std::string identity;
  std::shared_ptr<event> ev;  // keeps the args alive
  const method_entry* m = nullptr;
  const std::string* method = nullptr;  // the bound method's name (methods are fixed once started)
  std::string client;                   // client_of(identity): whose bounds it counts against
  std::string peer;                     // address_of(identity), for call_context::peer
  std::stop_source stop{std::nostopstate};
  clock::time_point started{};
  bool tracked = false;  // on_vacated() tracked it while it ran: its outcome goes through complete()
};

/// The input of a call to a method that reads a chunked request, made without one (a plain call, a submit): empty.
inline std::shared_ptr<stream_state> empty_input(const std::string& method) {
  auto in = std::make_shared<stream_state>(method, 1);
  in->end();
  return in;
}

template <class T>
duct::buffer pack(const T& value) {
  duct::pack_buffer out;
  msgpack::pack(out, value);
  return out.take();
}

/// Runs a handler into `o`: OK [result], or the ERR its exception makes (server_calls.cpp). Never throws for the
/// handler: whatever it throws becomes the ERR.
void execute(const handler& fn, const msgpack::object& args, call_context& ctx, outbound& o);
/// As execute(), but on success (returns true) o.packed_args is the packed result alone, for reply_batch; an ERR's
/// args are whole (returns false).
bool execute_unwrapped(const handler& fn, const msgpack::object& args, call_context& ctx, outbound& o);
/// OK args: [result], the result already packed.
duct::buffer ok_args(const duct::buffer& packed_result);

/// Replies a thread encodes to send together, their bodies back to back in one buffer that keeps its capacity:
/// a buffer per reply cost a malloc and a free that missed glibc's per-thread cache once a batch held more than
/// seven of them.
class reply_batch {
 public:
  /// Adds event `h` for `identity`: OK [result] if `ok` (`args` is the packed result alone), else `name` with
  /// `args` whole.
  void add(std::string identity, const event_header& h, bool ok, std::string_view name, std::span<const std::byte> args);
  [[nodiscard]] bool empty() const noexcept { return to_.empty(); }
  [[nodiscard]] std::size_t size() const noexcept { return to_.size(); }
  /// Calls `send(identity, body)` for each reply, in the order they were added.
  template <class F>
  void each(F&& send) const {
    for (const auto& [identity, at, n] : to_)
      send(identity, std::span<const std::byte>(reinterpret_cast<const std::byte*>(bytes_.data()) + at, n));
  }
  void clear() noexcept {
    bytes_.clear();
    to_.clear();
  }

 private:
  struct entry {
    std::string identity;
    std::size_t at, size;
  };
  duct::pack_buffer bytes_{1024};
  std::vector<entry> to_;
};

// ERR args: [name, message, traceback]; traceback nil rather than "", which zerorpc's CLI would print as a blank line.
inline duct::buffer err_args(const std::string& name, const std::string& message) {
  return pack(std::make_tuple(name, message, msgpack::type::nil_t()));
}

}  // namespace detail

struct server::impl final : detail::pipe_server {
  explicit impl(server_options o);

  server_options opts;
  zmq::context_t ctx{1};
  std::mutex router_mu;  // guards router: the I/O thread receives, handler threads send their replies themselves
  std::unique_ptr<detail::zap_handler> zap;  // with CURVE: admits the clients of the allow-list; before `router` binds
  zmq::socket_t router{ctx, zmq::socket_type::router};
  std::map<std::string, detail::method_entry> methods;   // fixed once started
  bool listening = false;                                // listen() succeeded at least once
  detail::wakeup wake;
  std::unique_ptr<detail::io_role> role;  // before `pool`, whose threads take it: destroyed after them
  std::unique_ptr<detail::fair_pool> pool;
  bool started = false;  // start() ran: a server starts once
  // Input may be waiting that no edge of the descriptor will announce: set by whoever sent on the ROUTER as the
  // role's holder (or its lender), taken by the holder before it sleeps.
  std::atomic<bool> io_input{false};
  id_generator io_ids;    // the role's own: ids of the replies its holder sends itself (run_inline())
  // Whether nothing runs but what the role's holder runs itself (no handler on the pool, no tracked call, no duct,
  // no broker, nothing queued to send): then no other thread wants the ROUTER, and the holder waits inside
  // ZeroMQ's own receive rather than on the socket's descriptor (round()). Set by the holder at the end of each
  // round, under `mu`; read by it at the start of the next.
  std::atomic<bool> quiet{false};
  // Whether the holder's last wait inside ZeroMQ's receive ran out with nothing: then the server is idle, not
  // quiet, and the holder sleeps on the descriptor until the next event (an idle server wakes for nothing).
  std::atomic<bool> quiet_missed{false};
  int router_timeout = -1;  // the ROUTER's ZMQ_RCVTIMEO, as round() last set it (router_mu)
  /// How long the holder waits inside ZeroMQ's receive at most: what stop(), shutdown() and a deadline noted by
  /// another thread may wait for it.
  static constexpr std::chrono::milliseconds quiet_wait{10};
  std::atomic<bool> running{false};
  std::atomic<std::uint64_t> dropped{0};
  std::atomic<std::size_t> open{0};
  std::atomic<detail::serving_mode> mode{detail::serving_mode::serving};
  std::atomic<std::size_t> uncollected{0};  // deferred outcomes (done or failed) no client has fetched yet
  std::mutex idle_mu;
  std::condition_variable idle;  // notified whenever the last open call closes

  std::mutex mu;  // guards everything below
  std::condition_variable credit_cv;  // with `mu`: a stream's credit grew, or a call was stopped
  std::unordered_map<std::string, detail::channel_table> peers;
  std::unordered_map<detail::call_key, detail::running_call, detail::call_key_hash> running_calls;
  std::unordered_map<detail::call_key, std::string, detail::call_key_hash> deferred_routes;  // channel -> token
  detail::job_store jobs;
  id_generator ids;
  /// A pipe served, and what keeps it alive if it is a link (a test's fake pipe is kept by the test).
  struct served_pipe {
    detail::server_pipe* pipe;
    std::shared_ptr<detail::link_core> link;
  };
  std::unordered_map<std::string, served_pipe> pipes;  // by identity
  /// Serves `p` from now on (`mu` held); `link` if it is one.
  void add_pipe(detail::server_pipe& p, std::shared_ptr<detail::link_core> link = nullptr) {
    pipes.emplace(p.identity(), served_pipe{&p, std::move(link)});
  }
  /// The links among the pipes, to act on without `mu` (a link's reader takes its own lock, then `mu`). Takes `mu`.
  std::vector<std::shared_ptr<detail::link_core>> served_links() {
    std::lock_guard lock(mu);
    std::vector<std::shared_ptr<detail::link_core>> all;
    for (auto& [identity, p] : pipes)
      if (p.link) all.push_back(p.link);
    return all;
  }
  std::vector<detail::ipc_claim> ipc_files;  // the socket files of our ipc:// endpoints, removed when we stop

  // The brokers this server is a worker of (server_broker.cpp; docs/broker.md): a DEALER each, fixed once started,
  // used under router_mu like the ROUTER. A client of a broker is known by the identity via_broker() makes.
  struct broker_conn {
    std::string endpoint;
    zmq::socket_t dealer;
  };
  std::vector<broker_conn> brokers;
  duct::buffer ready;                        // READY's payload, made once the methods are fixed (start())
  detail::clock::time_point next_beat{};     // when the brokers next hear our heartbeat (I/O role's)
  /// The identity of a broker's client: a prefix no ZeroMQ routing id or link identity has, the broker's index,
  /// and the broker's CLIENT frame.
  static std::string via_broker(std::size_t broker, std::string_view client);
  /// The broker index and CLIENT frame of an identity via_broker() made, or nothing for any other.
  static std::optional<std::pair<std::size_t, std::string_view>> broker_of(std::string_view identity) noexcept;
  /// Connects to a broker's backend (before start()). Throws: error naming the endpoint.
  void connect_broker(std::string_view endpoint, const std::string& broker_key);
  /// Sends `command` (and `payload`) to every broker (router_mu held).
  void tell_brokers(std::string_view command, std::span<const std::byte> payload = {});
  /// Receives what the brokers sent (router_mu held): clients' events into `arrived`, as the ROUTER's are; RESET
  /// is answered with READY here. Returns: whether a batch was full (more may wait).
  bool receive_brokers(std::vector<std::pair<std::string, zmq::message_t>>& arrived, std::vector<zmq::message_t>& frames);
  /// Sends an event to a broker's client (router_mu held). Returns: false if `identity` is not a broker's client.
  bool send_via_broker(const std::string& identity, std::span<const std::byte> body);
  /// Whether any broker's socket has input waiting (router_mu held).
  bool brokers_have_input();
  /// The methods as _zerorpc_inspect's "methods" map (methods are fixed once started).
  void pack_methods(msgpack::packer<duct::pack_buffer>& p) const;
  // Each ROUTER peer's address and CURVE key as ZeroMQ reports them, read off its first message; swept of gone
  // peers by tick().
  struct peer_info {
    std::string address;  // for call_context::peer
    std::string key;      // the client's CURVE public key (Z85), the owner of the jobs it starts; empty without CURVE
  };
  std::unordered_map<std::string, peer_info> addresses;
  /// Who `identity` is, for call_context::peer (under `mu`).
  std::string address_of(const std::string& identity) const;
  /// The CURVE key of `identity`, or empty (under `mu`).
  std::string key_of(const std::string& identity) const;
  /// Whose bounds a call from `identity` counts against (client_limits): its CURVE key, or the connection itself.
  std::string client_of(const std::string& identity) const;
  /// The Overloaded error for a call to `method`, `why` saying which bound refused it.
  static duct::buffer overloaded(const std::string& method, const std::string& why);
  /// Why the pool refused a call, for overloaded().
  std::string refused_because(detail::fair_pool::refusal why) const;
  /// Answers running call `key` (to `method`) with Overloaded, forgetting it.
  void refuse(const detail::call_key& key, const std::string& method, detail::fair_pool::refusal why);
  /// Whether the client `identity` may see job `j`: a job with an owner only by that key. (under `mu`)
  bool may_see(const std::string& identity, const detail::job& j) const;
  std::vector<std::pair<std::string, duct::buffer>> router_out;                // sent by whoever unlocks
  /// Events queued for a pipe, sent in order by one thread at a time: whoever unlocks and finds none draining.
  struct pipe_outbox {
    std::deque<duct::buffer> events;
    bool draining = false;
  };
  std::unordered_map<detail::server_pipe*, pipe_outbox> pipe_out;
  std::vector<detail::inline_call> inline_calls;  // run by the receiving thread after it unlocks (run_inline())
  std::vector<detail::io_call> io_calls;  // the role holder's, kept for it to run after it unlocks
  // The calls the role's holder keeps to run itself, one after another (run_io_calls()); when a handler it runs
  // takes too long, the monitor hands those behind it to the pool (on_vacated()). Under kept_mu (taken after mu).
  std::mutex kept_mu;
  std::deque<detail::io_call> kept;
  std::vector<detail::outbound> held;  // the replies of kept calls that ran, to leave together (send_held())
  // Quick calls (detail::quick_call): those of the round being dispatched (under `mu`), then those waiting for the
  // holder, the one it runs now and the replies of those it ran, which leave together: the holder's, and the
  // monitor's once it has taken the role from a long one (see run_quick_calls()); under kept_mu when they meet.
  std::vector<detail::quick_call> quick_calls;
  std::vector<detail::quick_call> quick;
  std::size_t quick_next = 0;  // the first in `quick` not yet taken
  std::atomic<detail::quick_call*> quick_running{nullptr};
  detail::reply_batch quick_held;
  static constexpr std::size_t reply_group = 4;  // quick replies held at most before they leave (run_quick_calls())
  std::unordered_map<detail::call_key, duct::buffer, detail::call_key_hash> pending_progress;  // waiting for credit
  detail::clock::time_point io_wakes_at = detail::clock::time_point::min();     // when the I/O thread next wakes
  detail::clock::time_point next_sweep{};  // when tick() next forgets clients whose tables are empty
  bool wake_io = false;  // a deadline earlier than io_wakes_at appeared: the I/O thread must be woken (flush())
  bool deadline_noted = false;  // such a deadline appeared since next_wait(): the round must tick
  bool router_io_asked = false;  // the I/O thread was woken to send router_out
  std::size_t router_out_bytes = 0;
  /// Stream items for one channel (of a ZeroMQ client, or of a pipe's), queued after everything in router_out and
  /// pipe_out, not yet closed into one STREAM_BATCH event. A batch closes when its producer runs out of credit, writes 64 KiB, or returns, or when it
  /// is batch_delay old (the I/O thread's timer): a burst of small items leaves in a few events, and a lone item
  /// waits no more than batch_delay.
  struct open_batch {
    std::string identity;
    message_id channel;
    detail::server_pipe* pipe;    // the pipe it goes out on, or null for the ROUTER
    std::vector<std::byte> body;  // the event so far: its header and name, array32 with its count to patch, items
    std::size_t count_at = 0;     // where the array32's count goes
    std::uint32_t count = 0;
    detail::clock::time_point opened;
    bool io_told = false;  // the I/O thread was woken to time it
  };
  static constexpr std::chrono::microseconds batch_delay{100};
  std::optional<open_batch> batch;

  /// Holds `mu` for a step that may queue events, which ends with flush(): that lets go of `mu`, then sends what
  /// was queued (ROUTER events under router_mu, link events by drain()) and wakes the I/O thread if a deadline
  /// moved earlier or the socket has input the I/O thread may not have seen. A step left without flush() (an
  /// exception) sends nothing itself: its destructor lets go of `mu` and, if events wait, wakes the I/O thread,
  /// whose round sends them.
  class locked {
   public:
    explicit locked(impl& s) : s_(s), lock_(s.mu) {}
    ~locked();
    /// Ends the step: lets go of `mu`, then sends. Once only; `mu` is not held afterwards.
    void flush();
    locked(const locked&) = delete;
    locked& operator=(const locked&) = delete;
    /// Waits on `cv`, letting go of `mu` meanwhile (nothing queued is sent by this).
    void wait(std::condition_variable& cv) { cv.wait(lock_); }
    /// On release, leave the queued ROUTER sends to the I/O thread (woken once for a whole burst) instead of
    /// sending them here, unless they add up to 64 KiB already: for stream items, where asking ZeroMQ after every
    /// small send whether input is waiting would cost a system call per item.
    void leave_router_sends_to_io() noexcept { defer_router_ = true; }

   private:
    impl& s_;
    std::unique_lock<std::mutex> lock_;
    bool defer_router_ = false;
  };

  /// Starts the handler pool (and with `with_io`, a thread to hold the I/O role): server::start(), or a unit test
  /// that drives the core itself (on_pipe_event(), tick()) with no thread of the server's own touching the ROUTER.
  void begin(bool with_io);

  // detail::pipe_server, on a thread reading a pipe (or a link role's monitor: on_pipe_vacated()).
  void on_pipe_event(detail::server_pipe& from, std::shared_ptr<event> ev, bool keep) override;
  void run_pipe_calls(detail::server_pipe& from) override;
  void on_pipe_vacated(std::function<void()> relieve) override;
  void on_pipe_closed(detail::server_pipe& from) override;

  // The rest runs with `mu` held.
  void note_deadline(detail::clock::time_point t) {
    if (t < io_wakes_at) wake_io = deadline_noted = true;
  }
  void closed_one();
  void collected_one(detail::job& j);
  bool wait_idle(std::optional<detail::clock::time_point> until, bool collected = false);  // without `mu`
  void cancel(const detail::call_key& key, bool lost = false);
  void abort_running();
  void defer(const detail::call_key& key, detail::running_call& call);
  /// Running call `call`, begun at `begun`, is answered with a token at once (defer_policy::always) or once
  /// defer_after has passed (after_budget): its deadline is set and noted.
  void schedule_deferral(detail::running_call& call, defer_policy policy, detail::clock::time_point begun) {
    call.defer_at = begun;
    if (policy == defer_policy::after_budget) *call.defer_at += opts.defer_after;
    note_deadline(*call.defer_at);
  }
  void defer_now(const detail::call_key& key);
  /// Queues a handler on the pool for `client` (see client_of()), or, with `inline_as` (the call's key) when this
  /// thread holds the I/O role or reads a pipe for which it keeps calls (detail::pipe_keeps), and the budget
  /// allows, keeps it for this thread to run itself (io_calls). Returns: refusal::none, or why the pool refused it
  /// (nothing was queued then).
  [[nodiscard]] detail::fair_pool::refusal run_handler(
                   const std::string& client, const detail::handler& fn, std::shared_ptr<event> ev, const msgpack::object& args,
                   std::stop_token stop, detail::outbound o, std::shared_ptr<detail::server_sink> out = nullptr,
                   std::shared_ptr<detail::server_progress> report = nullptr,
                   std::shared_ptr<detail::stream_state> in = nullptr, const detail::call_key* inline_as = nullptr,
                   const std::string* method = nullptr, bool oneway = false);
  /// Runs the kept calls on this thread while it holds the role. Returns: whether this thread still holds it.
  bool run_io_calls(detail::io_role::ticket t);
  /// The role went vacant (a handler its holder ran took too long; on the monitor's thread): the kept calls go to
  /// the pool, and a pool thread takes the role.
  void on_vacated();
  /// Completes the held replies under one lock: they leave together as it is released.
  void send_held();
  /// Runs the quick calls on this thread while it holds the role. Returns: whether this thread still holds it.
  bool run_quick_calls(detail::io_role::ticket t);
  /// Sends the replies of the quick calls that ran (none of the locks held).
  void send_quick_held();
  /// The role went vacant: tracks the quick call running, and starts those waiting the long way (`mu` held).
  void hand_on_quick();
  /// Whether new request `ev`, to method `m`, may start as a quick call (`mu` held; its client's `table`).
  bool may_run_quick(const event& ev, const detail::method_entry& m, detail::channel_table& table) const;
  /// Opens a new request's channel, counts it among the open calls unless `counted`, and starts it (on_request()).
  /// Over the client's bound of open calls it is answered with Overloaded instead.
  void open_call(const std::string& identity, detail::channel_table& table, std::shared_ptr<event> ev,
                 detail::clock::time_point now, bool counted);
  /// Queues an io_call on the pool after all, answering it with Overloaded (or dropping it) if refused.
  void dispatch(detail::io_call& c);
  /// Runs run_on::receiver calls on this thread (without `mu`). On the I/O thread (`on_io`), the fast path's replies
  /// go straight to the ROUTER.
  void run_inline(std::vector<detail::inline_call>& calls, bool on_io);
  void deferred_builtin(const std::string& identity, std::shared_ptr<event> ev);
  void job_finished(detail::job& j, std::string name, duct::buffer outcome);
  void answer_waiter(detail::job& j, const detail::job_waiter& w);
  /// Run by a pool thread when the I/O role is vacant: takes it and serves until it passes it on or the server
  /// stops. Takes `mu` itself.
  void lead();
  /// One round of the role: receive, dispatch, run the calls it keeps, tick. Returns: whether this thread still
  /// holds the role.
  bool round(detail::io_role::ticket t, detail::clock::duration& wait);
  void on_event(const std::string& identity, std::shared_ptr<event> ev, detail::clock::time_point now);
  void on_request(const std::string& identity, std::shared_ptr<event> ev);
  void on_published(const std::string& identity, std::shared_ptr<event> ev);
  void on_chunked(const std::string& identity, std::shared_ptr<event> ev);
  void on_input(const std::string& identity, detail::channel& ch, event& ev);
  void grant_input(const std::string& identity, const message_id& channel, std::size_t n);
  void start_call(const std::string& identity, std::shared_ptr<event> ev, const std::string& method,
                  const detail::method_entry& m, const msgpack::object& args, std::shared_ptr<detail::stream_state> in);
  bool builtin(const std::string& identity, const event& ev);
  void send(const std::string& identity, const event_header& h, std::string_view name, std::span<const std::byte> args);
  /// Queues a stream item for a client that takes STREAM_BATCH events: into the open batch if it is the
  /// same channel's, else a new one (`stop` as in the sink's header).
  void queue_item(const std::string& identity, const message_id& channel, bool stop, std::span<const std::byte> item);
  /// Closes the open batch into router_out or pipe_out, if there is one.
  void close_batch();
  /// Whether a pipe has events queued that no thread is sending yet.
  bool pipe_out_waiting() const;
  /// Sends what is queued for `p` until none is left (`mu` not held; this thread marked it draining).
  void drain(detail::server_pipe& p);
  /// Sends on the ROUTER (router_mu held). Returns: with `ask`, whether input is waiting, which ZeroMQ may have
  /// taken the edge of the I/O thread's descriptor for; without, false.
  bool send_router(std::vector<std::pair<std::string, duct::buffer>>& sends, bool ask);
  /// Sends one event to a ZeroMQ client (router_mu held); a refusal is counted as a drop.
  void send_to(const std::string& identity, std::span<const std::byte> body);
  /// Ends the call on `channel` with the event `name`. `announce_stop`: the reply tells our client that this server
  /// understands _ductrpc_stop (never said to a plain zerorpc client).
  void finish(const std::string& identity, const message_id& channel, std::string_view name, const duct::buffer& args,
              bool announce_stop = false);
  void complete(detail::outbound o);
  void drop_peer(const std::string& identity);
  void tick(detail::clock::time_point now);
  /// The bound method (name and entry) a request calls, or null: a built-in, or a name not bound.
  const std::pair<const std::string, detail::method_entry>* bound_method(const event& ev) const;
  detail::clock::duration next_wait(detail::clock::time_point now);
};

namespace detail {
/// The server whose I/O role this thread holds (or lent itself to run a handler), and its ticket.
struct io_holding {
  const server::impl* of = nullptr;
  io_role::ticket ticket = 0;
};
extern thread_local io_holding io_holder;
/// The server whose role holder this thread is running a kept call for: the call's reply joins `held`.
extern thread_local const server::impl* holding_replies;
/// The server whose pipe's reader this thread is while that server's on_pipe_event() runs with `keep`.
extern thread_local const server::impl* pipe_keeps;
/// The server whose ROUTER events this thread, its role's holder, is dispatching: new calls may be quick calls.
extern thread_local const server::impl* quick_for;
/// Set while a quick call that cannot run on the holder is started the long way: it goes to the pool.
extern thread_local bool to_pool;

/// Sets one of the thread's marks above for a scope, even one left by an exception, and puts back what was there.
template <class T>
class marked {
 public:
  marked(T& mark, T value) : mark_(mark), was_(mark) { mark_ = value; }
  ~marked() { mark_ = was_; }
  marked(const marked&) = delete;
  marked& operator=(const marked&) = delete;

 private:
  T& mark_;
  T was_;
};
}  // namespace detail

}  // namespace rpc
