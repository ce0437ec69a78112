// rpc::server: the transports (a ROUTER socket driven by the I/O thread, and links whose reader threads hand
// events over), the life cycle, and the path of a call from request to reply. See server.hpp and server_impl.hpp.
#include <rpc/server.hpp>

#include <cxxabi.h>
#include <poll.h>

#include <typeinfo>

#include <zmq_addon.hpp>

#include <rpc/curve.hpp>

#include "access.hpp"
#include "ipc_path.hpp"
#include "reply.hpp"
#include "server_impl.hpp"
#include "zmq_util.hpp"

namespace rpc {

using detail::call_key;
using detail::err_args;
using detail::outbound;
using detail::pack;
using detail::running_call;
using detail::serving_mode;

namespace {

std::string type_name_of(const std::exception& e) {
  int status = 0;
  char* demangled = abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status);
  std::string name = status == 0 && demangled ? demangled : typeid(e).name();
  std::free(demangled);
  return name;
}

// OK args: [result], the result already packed.
duct::buffer ok_args(const duct::buffer& packed_result) {
  duct::buffer out(1 + packed_result.size());
  out.data()[0] = std::byte{0x91};
  std::memcpy(out.data() + 1, packed_result.data(), packed_result.size());
  return out;
}

// Runs a handler into `o`: OK [result], or the ERR its exception makes.
void execute(const detail::handler& fn, const msgpack::object& args, detail::call_context& ctx, outbound& o) {
  try {
    o.packed_args = ok_args(fn(args, ctx));
  } catch (const remote_error& e) {
    o.name = "ERR";
    o.packed_args = err_args(e.name(), e.message());
  } catch (const std::exception& e) {
    o.name = "ERR";
    o.packed_args = err_args(type_name_of(e), e.what());
  } catch (...) {
    o.name = "ERR";
    o.packed_args = err_args("UnknownError", "the handler threw something that is not a std::exception");
  }
}

}  // namespace

// ---- streams ----------------------------------------------------------------------------------------------------------

namespace detail {

// A streaming handler's sink: each write waits for the client's credit on the call's channel, then queues a STREAM.
class server_sink final : public sink {
 public:
  server_sink(server::impl& s, std::string identity, message_id channel, std::string method, std::stop_token stop,
              std::shared_ptr<std::atomic<bool>> lost, bool announce_stop, bool batches)
      : s_(s), identity_(std::move(identity)), channel_(std::move(channel)), method_(std::move(method)),
        stop_(std::move(stop)), lost_(std::move(lost)), announce_stop_(announce_stop),
        batches_(batches) {}

  void write_packed(std::span<const std::byte> item) override {
    server::impl::locked g(s_);
    bool last = false;
    if (!take_credit(g, &last)) {
      if (lost_->load()) throw lost_remote_error(method_ + ": the client was lost: the stream cannot go on");
      throw cancelled_error("Cancelled", method_ + ": the stream was cancelled");
    }
    if (batches_ && item.size() < 16 * 1024) {  // a large item is worth an event of its own, saving a copy
      s_.queue_item(identity_, channel_, announce_stop_, item);
      if (last) s_.close_batch();  // no more may follow until the client grants more: it goes now, from here
    } else {
      event_header h{s_.ids.next(), channel_};
      h.accepts_stop = announce_stop_;
      s_.send(identity_, h, "STREAM", item);
    }
    if (!last) g.leave_router_sends_to_io();
    g.flush();
  }

  [[nodiscard]] std::stop_token stop_token() const override { return stop_; }

  /// Waits until the client has granted credit for one more event on the channel, and spends it (`mu` held);
  /// `last` tells whether that was the last of it. Returns: false if the call is gone meanwhile (cancelled, its
  /// client lost, the server stopping).
  bool take_credit(server::impl::locked& g, bool* last = nullptr) {
    for (;;) {
      if (stop_.stop_requested() || !s_.running) return false;
      auto peer = s_.peers.find(identity_);
      channel* ch = peer == s_.peers.end() ? nullptr : peer->second.find(channel_);
      if (!ch) return false;
      if (ch->credit.spend()) {
        if (last) *last = !ch->credit.available();
        return true;
      }
      // Out of credit: what is queued goes now, or the client would wait for the batch's timer to grant more.
      s_.close_batch();
      if (s_.link_out_waiting()) s_.wake.signal();  // the I/O thread's next unlock sends it
      if (!s_.router_out.empty() && !s_.router_io_asked) {
        s_.router_io_asked = true;
        s_.wake.signal();
      }
      g.wait(s_.credit_cv);
    }
  }

 private:
  server::impl& s_;
  const std::string identity_;
  const message_id channel_;
  const std::string method_;
  const std::stop_token stop_;
  const std::shared_ptr<std::atomic<bool>> lost_;
  const bool announce_stop_;  // our client: it may stop the stream with _ductrpc_stop
  const bool batches_;        // a client that takes STREAM_BATCH events
};

// The header of a PROGRESS event: only our client asks for progress, and it may stop the call with _ductrpc_stop.
static event_header progress_header(message_id id, const message_id& channel) {
  event_header h{std::move(id), channel};
  h.accepts_stop = true;
  return h;
}

// A handler's progress reports for a caller that asked for them: each is a PROGRESS event, sent when the caller's
// credit allows; until then a newer report replaces the one waiting.
class server_progress final : public progress {
 public:
  server_progress(server::impl& s, std::string identity, message_id channel, std::stop_token stop)
      : s_(s), identity_(std::move(identity)), channel_(std::move(channel)), stop_(std::move(stop)) {}

  void report_packed(std::span<const std::byte> value) override {
    server::impl::locked g(s_);
    auto peer = s_.peers.find(identity_);
    channel* ch = peer == s_.peers.end() ? nullptr : peer->second.find(channel_);
    if (!ch || stop_.stop_requested()) return;  // the call is over or going: nobody to tell
    if (ch->credit.spend()) {
      s_.pending_progress.erase(call_key{identity_, channel_});
      s_.send(identity_, progress_header(s_.ids.next(), channel_), "PROGRESS", value);
    } else {
      s_.pending_progress.insert_or_assign(call_key{identity_, channel_}, duct::buffer(value));
    }
    g.flush();
  }
  [[nodiscard]] bool wanted() const override { return true; }
  [[nodiscard]] std::stop_token stop_token() const override { return stop_; }

 private:
  server::impl& s_;
  const std::string identity_;
  const message_id channel_;
  const std::stop_token stop_;
};

}  // namespace detail

// ---- the shared state -------------------------------------------------------------------------------------------------

server::impl::impl(server_options o) : opts(std::move(o)) {
  router.set(zmq::sockopt::linger, 0);
  router.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(opts.max_message_size));
  // A ROUTER drops, silently, what it cannot queue for a peer past its high-water mark: a stream item lost that
  // way would never be noticed. What we queue is bounded by the protocol instead: one reply per request, a
  // heartbeat per open call and period, and stream items only as far as the client's credit.
  router.set(zmq::sockopt::sndhwm, 0);
  if (!opts.curve_secret_key.empty()) {
    if (!is_curve_key(opts.curve_secret_key)) throw error("server_options::curve_secret_key is not a Z85 key of 40 characters");
    for (const std::string& k : opts.curve_allow)
      if (!is_curve_key(k)) throw error("server_options::curve_allow: '" + k + "' is not a Z85 key of 40 characters");
    zap = std::make_unique<detail::zap_handler>(ctx, std::set<std::string>(opts.curve_allow.begin(), opts.curve_allow.end()),
                                                opts.on_curve_refused);
    router.set(zmq::sockopt::zap_domain, "ductrpc");
    router.set(zmq::sockopt::curve_server, true);
    router.set(zmq::sockopt::curve_secretkey, opts.curve_secret_key);
  }
}

namespace {
// The server whose I/O role this thread holds (or lent itself to run a handler), and its ticket.
struct holding {
  const server::impl* of = nullptr;
  detail::io_role::ticket ticket = 0;
};
thread_local holding io_holder;
// The server whose role holder this thread is running a kept call for: the call's reply joins `held`.
thread_local const server::impl* holding_replies = nullptr;
}  // namespace

server::impl::locked::~locked() {
  if (!lock_.owns_lock()) return;
  const bool waiting = !s_.router_out.empty() || s_.batch || s_.link_out_waiting();
  lock_.unlock();
  if (waiting) s_.wake.signal();
}

void server::impl::locked::flush() {
  // On the role's thread. While it runs a handler the role may pass to another thread: after sending, it checks.
  const bool on_io = io_holder.of == &s_;
  bool wake = s_.wake_io && !on_io;
  s_.wake_io = false;
  const bool full = s_.router_out_bytes >= 64 * 1024 || (s_.batch && s_.batch->body.size() >= 64 * 1024);
  if (s_.batch && (full || (on_io && detail::clock::now() - s_.batch->opened >= impl::batch_delay))) s_.close_batch();
  if (s_.batch && !s_.batch->io_told && !on_io) {  // a new batch: the I/O thread times it
    s_.batch->io_told = true;
    wake = true;
  }
  std::vector<detail::link_core*> to_drain;
  for (auto& [l, box] : s_.link_out) {
    if (!box.events.empty() && !box.draining) {
      box.draining = true;
      to_drain.push_back(l);
    }
  }
  // Swapped with router_out, so both keep their capacity: a vector grown afresh for every batch was a string of
  // mallocs per reply. Cleared by send_router() before this thread comes back here.
  thread_local std::vector<std::pair<std::string, duct::buffer>> router_sends;
  if (!defer_router_ || on_io || full) {
    router_sends.swap(s_.router_out);
    s_.router_io_asked = false;
    s_.router_out_bytes = s_.batch && !s_.batch->link ? s_.batch->body.size() : 0;
  } else if (!s_.router_out.empty() && !s_.router_io_asked) {
    s_.router_io_asked = true;
    wake = true;
  }
  // The socket is taken before `mu` is let go, so that batches leave in the order they were queued: a stream's
  // items may be sent by the I/O thread or by their producer, and its end must not overtake them.
  std::unique_lock<std::mutex> socket;
  if (!router_sends.empty()) socket = std::unique_lock(s_.router_mu);
  lock_.unlock();
  if (socket) {
    // The I/O thread reads again before it sleeps, which costs what asking ZeroMQ would, and saves a poll when
    // there is input. Any other thread asks, and wakes the I/O thread if input is waiting.
    const bool input = s_.send_router(router_sends, !on_io);
    socket.unlock();
    if (on_io) s_.io_input = true;
    else wake = input || wake;
  }
  // A handler run by the role's holder, whose role went to another thread meanwhile: that thread may sleep past
  // what this one queued, or input whose edge the sends took. (If the role goes after this check, its new holder
  // starts by reading, and computes its deadlines afresh.)
  if (on_io && !s_.role->mine(io_holder.ticket)) wake = true;
  for (detail::link_core* l : to_drain) s_.drain(*l);
  if (wake) s_.wake.signal();
}

bool server::impl::link_out_waiting() const {
  for (const auto& [l, box] : link_out)
    if (!box.events.empty() && !box.draining) return true;
  return false;
}

void server::impl::drain(detail::link_core& l) {
  std::deque<duct::buffer> sending;
  for (;;) {
    {
      std::lock_guard lock(mu);
      link_outbox& box = link_out[&l];
      if (box.events.empty()) {
        box.draining = false;
        return;
      }
      sending.swap(box.events);
    }
    for (const duct::buffer& body : sending) {
      try {
        l.send(body.span());
      } catch (const std::exception&) {
        ++dropped;  // the duct broke: its reader tells the server, which forgets the calls from there
      }
    }
    sending.clear();
  }
}

void server::impl::send_to(const std::string& identity, const duct::buffer& body) {
  try {
    detail::send_part(router, zmq::buffer(identity), zmq::send_flags::sndmore);
    detail::send_part(router, zmq::const_buffer(), zmq::send_flags::sndmore);
    detail::send_part(router, zmq::buffer(body.data(), body.size()), zmq::send_flags::none);
  } catch (const zmq::error_t&) {
    ++dropped;  // the socket refused it: this event is lost, the server goes on
  }
}

bool server::impl::send_router(std::vector<std::pair<std::string, duct::buffer>>& sends, bool ask) {
  for (auto& [identity, body] : sends) send_to(identity, body);
  sends.clear();
  return ask && detail::has_input(router);
}

void server::impl::closed_one() {
  if (--open == 0) {
    std::lock_guard lock(idle_mu);
    idle.notify_all();
  }
}

void server::impl::collected_one(detail::job& j) {
  if (j.collected || j.state == detail::job_state::running || j.state == detail::job_state::cancelled) return;
  j.collected = true;
  if (--uncollected == 0) {
    std::lock_guard lock(idle_mu);
    idle.notify_all();
  }
}

// Waits until no call is open (and, with `collected`, no deferred outcome is waiting to be fetched).
bool server::impl::wait_idle(std::optional<detail::clock::time_point> until, bool collected) {
  std::unique_lock lock(idle_mu);
  auto drained = [&] { return open.load() == 0 && (!collected || uncollected.load() == 0); };
  if (!until) {
    idle.wait(lock, drained);
    return true;
  }
  return idle.wait_until(lock, *until, drained);
}

void server::impl::cancel(const call_key& key, bool lost) {
  pending_progress.erase(key);
  auto it = running_calls.find(key);
  if (it == running_calls.end()) return;
  if (it->second.lost) it->second.lost->store(lost);
  if (it->second.input) {
    const std::string& m = it->second.method;
    it->second.input->fail(lost ? std::make_exception_ptr(lost_remote_error(m + ": the client was lost: its input cannot go on"))
                                : detail::call_cancelled(m));
  }
  it->second.stop.request_stop();
  running_calls.erase(it);
  credit_cv.notify_all();  // a stream waiting for credit gives up
}

// ---- the public API -------------------------------------------------------------------------------------------------

server::server(server_options opts) : impl_(std::make_unique<impl>(std::move(opts))) {}
server::~server() {
  stop();
  for (auto& [identity, l] : impl_->links) l->detach(*impl_);  // release links claimed by a server never started
  release_ipc_files();
}

void server::release_ipc_files() noexcept {
  for (const detail::ipc_claim& c : impl_->ipc_files) detail::release(c);
  impl_->ipc_files.clear();
}

void server::bind_handler(const std::string& name, detail::handler h, method_options how, shape is) {
  if (impl_->running) throw error("bind '" + name + "': the server is already running");
  if (name.empty() || name.front() == '_') throw error("bind '" + name + "': method names must not be empty or start with '_'");
  if (impl_->methods.count(name)) throw error("bind '" + name + "': a method of that name is bound already");
  if (how.where == run_on::receiver && how.defer == defer_policy::always)
    throw error("bind '" + name + "': a method run on the receiving thread answers at once and cannot be deferred");
  if (how.where == run_on::receiver && (is.streams || is.reports || is.reads))
    throw error("bind '" + name + "': a method that streams, reports progress or reads a chunked request cannot run "
                "on the receiving thread");
  if (how.arg_names.empty())
    for (std::size_t i = 0; i < is.arity; ++i) how.arg_names.push_back("a" + std::to_string(i));
  impl_->methods.emplace(name, detail::method_entry{std::move(h), std::move(how.doc), std::move(how.arg_names),
                                                    how.defer, how.where, is.streams, is.reports, is.reads});
}

std::string server::listen(std::string_view endpoint) {
  if (impl_->running) throw error("listen " + std::string(endpoint) + ": the server is already running");
  if (!endpoint.starts_with("ipc://")) {
    std::string bound = detail::bind_endpoint(impl_->router, endpoint);
    impl_->listening = true;
    return bound;
  }
  detail::ipc_claim claim = detail::claim_ipc_path(endpoint);
  std::string bound;
  try {
    bound = detail::bind_endpoint(impl_->router, claim.endpoint);
  } catch (...) {
    detail::release(claim);
    throw;
  }
  detail::note_bound(claim);
  impl_->ipc_files.push_back(std::move(claim));
  impl_->listening = true;
  return bound;
}

std::string server::listen(const link& over) {
  const std::string where = "duct:" + over.name();
  if (impl_->started && !impl_->running) throw error("listen " + where + ": the server was stopped");
  if (over.closed()) throw error("listen " + where + ": the link is closed");
  detail::access::core(over)->claim(*impl_);
  {
    std::lock_guard lock(impl_->mu);
    impl_->links.emplace(detail::access::core(over)->identity(), detail::access::core(over));
  }
  impl_->listening = true;
  if (impl_->running) detail::access::core(over)->attach(*impl_);
  return where;
}

void server::start() {
  if (impl_->running) throw error("the server is already running");
  if (impl_->started || impl_->mode != serving_mode::serving)
    throw error("the server was stopped and cannot start again: make a new one");
  if (!impl_->listening) throw error("the server listens nowhere: call listen() first");
  const server_options& o = impl_->opts;
  const std::size_t threads = std::max<std::size_t>(o.threads, 1);
  impl_->started = true;
  impl_->running = true;
  impl_->role = std::make_unique<detail::io_role>(o.handoff_after, [this] { impl_->on_vacated(); });
  impl_->pool = std::make_unique<detail::fair_pool>(
      detail::fair_pool::limits{threads, o.per_client.running ? o.per_client.running : std::max<std::size_t>(threads - 1, 1),
                                o.per_client.queued, o.max_queued},
      [this] { impl_->lead(); });
  impl_->pool->vacate();  // a pool thread takes the I/O role
  std::vector<std::shared_ptr<detail::link_core>> links;
  {
    std::lock_guard lock(impl_->mu);
    for (auto& [identity, l] : impl_->links) links.push_back(l);
  }
  for (auto& l : links) l->attach(*impl_);
}

void server::shutdown(shutdown_mode how, std::chrono::milliseconds grace) {
  if (!impl_->running) return;
  impl_->mode = how == shutdown_mode::drain ? serving_mode::draining : serving_mode::aborting;
  impl_->wake.signal();
  if (how == shutdown_mode::drain && !impl_->wait_idle(detail::clock::now() + grace, true)) {
    impl_->mode = serving_mode::aborting;  // the grace period ran out: cancel what is left
    impl_->wake.signal();
  }
  impl_->wait_idle(std::nullopt);  // the I/O thread cancels every open call as soon as it wakes
  stop();
  // The last replies (results, Cancelled, a stream's end) may still sit in ZeroMQ's queues: give them a bounded
  // time to reach clients that are still connected when the socket closes, instead of dropping them.
  impl_->router.set(zmq::sockopt::linger, 1000);
}

void server::stop() noexcept {
  if (!impl_ || !impl_->running.exchange(false)) return;
  impl_->wake.signal();
  {
    std::lock_guard lock(impl_->mu);
    impl_->credit_cv.notify_all();  // streams waiting for credit give up
    for (auto& [key, call] : impl_->running_calls)  // and handlers waiting for input
      if (call.input)
        call.input->fail(std::make_exception_ptr(cancelled_error("Cancelled", call.method + ": the server stopped", "")));
  }
  impl_->role->end_if_vacant();
  impl_->role->wait_ended();  // the holder sees `running` false once its round (and any handler it runs) is over
  impl_->role->stop_monitor();
  std::vector<std::shared_ptr<detail::link_core>> links;
  {
    std::lock_guard lock(impl_->mu);
    for (auto& [identity, l] : impl_->links) links.push_back(l);
  }
  for (auto& l : links) l->detach(*impl_);  // no reader hands us anything from here on
  impl_->pool->stop();  // lets running handlers finish, their replies going nowhere but to ducts still open; a
                        // handler the role's holder ran itself still counts itself out, so the pool must stay
  impl_->pool.reset();
  impl_->mode = serving_mode::aborting;  // for accepting(), and so that start() refuses
  release_ipc_files();  // a stopped server listens no more: its ipc:// sockets go
}

bool server::accepting() const noexcept { return impl_->running && impl_->mode == serving_mode::serving; }

std::uint64_t server::dropped_events() const noexcept { return impl_->dropped.load(); }

std::size_t server::open_channels() const noexcept { return impl_->open.load(); }

std::uint64_t server::handoffs() const noexcept { return impl_->role ? impl_->role->handoffs() : 0; }

// ---- the transports ---------------------------------------------------------------------------------------------------

detail::clock::duration server::impl::next_wait(detail::clock::time_point now) {
  auto next = now + std::chrono::seconds(1);
  if (batch) next = std::min(next, batch->opened + batch_delay);
  for (auto& [identity, table] : peers)
    if (auto d = table.next_deadline()) next = std::min(next, *d);
  if (auto d = jobs.next_deadline()) next = std::min(next, *d);
  for (const auto& [key, call] : running_calls)
    if (call.defer_at) next = std::min(next, *call.defer_at);
  io_wakes_at = next;
  return std::max(next - now, detail::clock::duration(0));
}

// The I/O role. Its holder sleeps in poll() on the ROUTER's descriptor, which ZeroMQ signals by edges: whoever
// touches the socket may consume one. So whoever sends looks at ZMQ_EVENTS afterwards (send_router()): a handler
// thread that sees input waiting wakes the holder, which itself then does not sleep; and a round reads until
// nothing is left (or a full batch), after which ZeroMQ signals the descriptor again.
void server::impl::lead() {
  const detail::io_role::ticket t = role->take();
  if (!t) return;  // the server stopped meanwhile
  io_holder = {this, t};
  io_input = true;  // the last holder may have left input unread, or sent and taken its edge: read before sleeping
  detail::clock::duration wait{0};
  bool have_role = true;
  while (have_role && running) have_role = round(t, wait);
  io_holder = {};
  if (have_role) role->end(t);  // the server stops
}

bool server::impl::round(detail::io_role::ticket t, detail::clock::duration& wait) {
  // Per thread, not per role: a round leaves them empty, and a thread that lost the role mid-round may still be
  // dispatching its calls while the next holder runs its own round.
  thread_local std::vector<zmq::message_t> frames;
  thread_local std::vector<std::pair<std::string, zmq::message_t>> arrived;  // identity and body, as received
  struct decoded_event {
    std::string identity;
    std::shared_ptr<event> ev;
    zmq::message_t body;  // kept for its metadata: the peer's address, read once per peer
  };
  thread_local std::vector<decoded_event> decoded;
  thread_local std::vector<detail::inline_call> calls;
  if (!io_input.exchange(false)) {  // else it reads at once, without a system call to learn what it already knows
    pollfd fds[2] = {{router.get(zmq::sockopt::fd), POLLIN, 0}, {wake.fd(), POLLIN, 0}};
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
    const timespec until{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    if (::ppoll(fds, 2, &until, nullptr) > 0 && (fds[1].revents & POLLIN)) wake.drain();
  }
  // Take what has arrived, but not without end: a flood from one client must not hold up heartbeats. Only the
  // socket is held while ZeroMQ is asked, and events are decoded before the server's lock is taken: handler
  // threads need that lock to complete their calls.
  {
    std::lock_guard lock(router_mu);
    int i = 0;
    for (; i < 1000 && detail::try_recv(router, frames); ++i) {
      if (frames.size() < 2) ++dropped;
      else arrived.emplace_back(frames.front().to_string(), std::move(frames.back()));
    }
    if (i == 1000) io_input = true;  // a full batch: more may be waiting
  }
  for (auto& [identity, body] : arrived) {
    try {
      auto ev = std::make_shared<event>();  // decoded in place: an event is large to move
      detail::decode_event_into(std::as_bytes(std::span(static_cast<const char*>(body.data()), body.size())), *ev);
      decoded.push_back({std::move(identity), std::move(ev), std::move(body)});
    } catch (const protocol_error&) {
      ++dropped;
    }
  }
  arrived.clear();
  {
    locked g(*this);
    for (auto& [identity, ev, body] : decoded) {
      // Read once per peer; with CURVE on every message, since the key decides whose jobs a request reaches and a
      // client may choose its routing id, even one a client that left had.
      if (auto [a, fresh] = addresses.try_emplace(identity); fresh || zap)
        a->second = {detail::peer_address(body), detail::peer_key(body)};
      on_event(identity, std::move(ev), detail::clock::now());
    }
    calls.swap(inline_calls);
    std::lock_guard k(kept_mu);
    for (auto& c : io_calls) kept.push_back(std::move(c));
    io_calls.clear();
    g.flush();
  }
  decoded.clear();
  run_inline(calls, true);  // the replies leave together, in one pass over the socket
  if (!run_io_calls(t)) return false;
  locked g(*this);
  if (mode == serving_mode::aborting) abort_running();
  const auto now = detail::clock::now();
  tick(now);
  wait = next_wait(now);
  g.flush();  // what this round and other threads queued goes before the next sleep
  return true;
}

// The kept calls' replies are held until the last has run, then leave together: one pass over the socket, not one
// per call. A handler that runs long does not hold up those before it for more than its budget: the monitor sends
// them when it hands the role on (on_vacated()).
bool server::impl::run_io_calls(detail::io_role::ticket t) {
  for (;;) {
    detail::io_call c;
    {
      std::lock_guard k(kept_mu);
      if (kept.empty()) break;
      c = std::move(kept.front());
      kept.pop_front();
    }
    if (!pool->try_begin(c.client)) {  // others wait their turn, or the bounds are reached: it waits with them
      dispatch(c);
      continue;
    }
    role->enter(t);
    holding_replies = this;
    c.job();
    holding_replies = nullptr;
    c.job = nullptr;  // its captures go now, as a pool thread's would
    pool->end(c.client);
    if (!role->leave(t)) {  // it ran long: the role, and the calls kept behind it (on_vacated()), went on
      io_holder = {};       // this thread is a pool thread again
      send_held();          // its own reply, held after the monitor sent the others
      return false;
    }
  }
  send_held();
  return true;
}

void server::impl::send_held() {
  thread_local std::vector<detail::outbound> replies;
  {
    std::lock_guard k(kept_mu);
    if (held.empty()) return;
    replies.swap(held);
  }
  {
    locked g(*this);
    for (auto& o : replies) complete(std::move(o));
    g.flush();
  }
  replies.clear();
}

void server::impl::on_vacated() {
  std::deque<detail::io_call> waiting;
  {
    std::lock_guard k(kept_mu);
    waiting.swap(kept);
  }
  send_held();
  for (auto& c : waiting) dispatch(c);
  pool->vacate();
}

void server::impl::dispatch(detail::io_call& c) {
  const auto why = pool->submit(c.client, std::move(c.job));
  if (why == detail::fair_pool::refusal::none) return;
  locked g(*this);
  if (!c.oneway) {
    refuse(c.key, *c.method, why);
  } else {
    if (running_calls.erase(c.key)) closed_one();  // nobody to tell: dropped and counted, as on_published() does
    ++dropped;
  }
  g.flush();
}

void server::impl::on_link_event(detail::link_core& from, std::shared_ptr<event> ev) {
  std::vector<detail::inline_call> calls;
  {
    locked g(*this);
    on_event(from.identity(), std::move(ev), detail::clock::now());
    calls.swap(inline_calls);
    g.flush();
  }
  run_inline(calls, false);
}

void server::impl::on_link_closed(detail::link_core& from) {
  locked g(*this);
  drop_peer(from.identity());
  g.flush();
}

void server::impl::send(const std::string& identity, const event_header& h, std::string_view name,
                        std::span<const std::byte> args) {
  close_batch();  // what was queued before this leaves before it
  duct::buffer body = encode_event_packed(h, name, args);
  if (auto l = links.find(identity); l != links.end()) link_out[l->second.get()].events.push_back(std::move(body));
  else {
    router_out_bytes += body.size();
    router_out.emplace_back(identity, std::move(body));
  }
}

void server::impl::queue_item(const std::string& identity, const message_id& channel, bool stop,
                              std::span<const std::byte> item) {
  if (batch && (batch->identity != identity || !(batch->channel == channel))) close_batch();
  if (!batch) {
    auto l = links.find(identity);
    event_header h{ids.next(), channel};
    h.accepts_stop = stop;
    duct::buffer head = encode_event_packed(h, "STREAM_BATCH", {});
    batch.emplace(open_batch{identity, channel, l == links.end() ? nullptr : l->second.get(), {head.begin(), head.end()},
                             head.size() + 1, 0, detail::clock::now()});
    batch->body.push_back(std::byte{0xdd});  // array32: its count is patched in when the batch closes
    batch->body.resize(batch->body.size() + 4);
  }
  batch->body.insert(batch->body.end(), item.begin(), item.end());
  ++batch->count;
  if (!batch->link) router_out_bytes += item.size();
}

void server::impl::close_batch() {
  if (!batch) return;
  std::vector<std::byte>& body = batch->body;
  for (int i = 0; i < 4; ++i)  // big-endian, as msgpack has it
    body[batch->count_at + static_cast<std::size_t>(i)] = static_cast<std::byte>(batch->count >> (24 - 8 * i));
  duct::buffer packed{std::span<const std::byte>(body)};
  if (batch->link) link_out[batch->link].events.push_back(std::move(packed));
  else router_out.emplace_back(std::move(batch->identity), std::move(packed));
  batch.reset();
}

// ---- calls --------------------------------------------------------------------------------------------------------------

void server::impl::on_event(const std::string& identity, std::shared_ptr<event> ev, detail::clock::time_point now) {
  auto [it, inserted] = peers.try_emplace(identity, opts.heartbeat);
  detail::channel_table& table = it->second;
  if (ev->header.response_to) {
    detail::channel* ch = table.find(*ev->header.response_to);
    if (!ch) {  // zerorpc: "unable to route event"
      ++dropped;
      if (table.size() == 0) peers.erase(it);
      return;
    }
    ch->beat.heard(now);
    if (auto n = detail::credit_of(*ev)) {
      ch->credit.grant(*n);
      credit_cv.notify_all();
      auto waiting = pending_progress.find(call_key{identity, ch->id});
      if (waiting != pending_progress.end() && ch->credit.spend()) {  // the latest progress report was waiting
        send(identity, detail::progress_header(ids.next(), ch->id), "PROGRESS", waiting->second.span());
        pending_progress.erase(waiting);
      }
    } else if (ev->name == "_ductrpc_stop") {  // our client dropped the stream: end the call, no reply
      const message_id channel = ch->id;
      table.close(channel);
      closed_one();
      cancel(call_key{identity, channel});
    } else if (ev->name == "CHUNK" || ev->name == "CHUNK_DONE" || ev->name == "CHUNK_ERR") {
      on_input(identity, *ch, *ev);
    }
    return;  // _zpc_hb and anything else on an open call only prove the client is alive
  }
  if (ev->header.oneway && ev->name != detail::chunked_request) {  // published: no channel, no heartbeats, no answer
    if (table.size() == 0) peers.erase(it);
    on_published(identity, std::move(ev));
    return;
  }
  if (const detail::method_entry* m = receiver_method(*ev); m && !table.find(ev->header.id)) {
    // The fast path of a plain call to a run_on::receiver method: it is answered before this thread reads again,
    // so nothing could reach it meanwhile (no heartbeat is due, it cannot be cancelled, deferred or streamed) and
    // it needs no channel and no entry among the running calls. It counts as open until it is answered.
    ++open;
    detail::inline_call& c = inline_calls.emplace_back();  // built in place: an outbound is not cheap to move
    c.fn = &m->fn;
    c.o.identity = identity;
    c.o.channel = ev->header.id;
    c.o.name = "OK";
    c.ev = std::move(ev);  // not tracked: no channel, no running call
    return;
  }
  if (table.size() >= opts.per_client.open_calls) {  // answered on its channel, which is never opened
    send(identity, {ids.next(), ev->header.id}, "ERR",
         overloaded(ev->name, "this connection has " + std::to_string(table.size()) + " calls open already").span());
    return;
  }
  detail::channel* ch = table.open(ev->header.id, now);
  if (!ch) {
    ++dropped;  // a second request with an id already in use
    return;
  }
  note_deadline(ch->beat.next_deadline());
  ++open;
  on_request(identity, std::move(ev));
}

void server::impl::abort_running() {
  std::vector<call_key> keys, oneway;
  for (auto& [key, call] : running_calls) (call.oneway ? oneway : keys).push_back(key);
  for (const call_key& key : keys) {
    cancel(key);
    finish(key.identity, key.channel, "ERR",
           err_args("Cancelled", "the server is shutting down: the call was cancelled"));
  }
  for (const call_key& key : oneway) {  // nobody to answer; closed here, since its handler's end finds it gone
    cancel(key);
    closed_one();
  }
  for (detail::job* j : jobs.all()) {
    if (j->state != detail::job_state::running) continue;
    j->stop.request_stop();
    job_finished(*j, "ERR", err_args("Cancelled", "the server is shutting down: the call was cancelled"));
    j->state = detail::job_state::cancelled;
    if (!j->collected) --uncollected;  // nobody needs to fetch a cancellation
    j->collected = true;
  }
}

void server::impl::on_request(const std::string& identity, std::shared_ptr<event> ev) {
  // While draining, clients may still collect deferred results; nothing new starts.
  bool collecting = ev->name == "_ductrpc_wait" || ev->name == "_ductrpc_poll" || ev->name == "_ductrpc_list" ||
                    ev->name == "_ductrpc_cancel";
  if (mode == serving_mode::aborting || (mode == serving_mode::draining && !collecting)) {
    finish(identity, ev->header.id, "ERR",
           err_args("ShuttingDown", ev->name + ": the server is shutting down and takes no new calls"));
    return;
  }
  if (ev->name == detail::chunked_request) {
    on_chunked(identity, std::move(ev));
    return;
  }
  if (ev->name.starts_with("_ductrpc_")) {
    deferred_builtin(identity, std::move(ev));
    return;
  }
  if (builtin(identity, *ev)) return;
  auto m = methods.find(ev->name);
  if (m == methods.end()) {
    finish(identity, ev->header.id, "ERR", err_args("NameError", ev->name));
    return;
  }
  // A plain call to a method that reads a chunked request: its input is empty.
  std::shared_ptr<detail::stream_state> in = m->second.reads ? detail::empty_input(m->first) : nullptr;
  const msgpack::object& args = ev->args();
  start_call(identity, std::move(ev), m->first, m->second, args, std::move(in));
}

// A chunked call: _ductrpc_chunked [method, args]. Its input arrives as CHUNK events on the channel (on_input), as
// far as the credit we grant, starting now: that first _zpc_more tells the client we read chunks.
void server::impl::on_chunked(const std::string& identity, std::shared_ptr<event> ev) {
  const msgpack::object& wrapped = ev->args();
  if (wrapped.type != msgpack::type::ARRAY || wrapped.via.array.size != 2 ||
      wrapped.via.array.ptr[0].type != msgpack::type::STR) {
    finish(identity, ev->header.id, "ERR", err_args("TypeError", "_ductrpc_chunked takes [method, [args...]]"));
    return;
  }
  const std::string method = wrapped.via.array.ptr[0].as<std::string>();
  auto m = methods.find(method);
  if (m == methods.end()) {
    finish(identity, ev->header.id, "ERR", err_args("NameError", method));
    return;
  }
  if (!m->second.reads) {
    finish(identity, ev->header.id, "ERR",
           err_args("TypeError", method + "() does not read a chunked request (its first parameter is not rpc::source&)"));
    return;
  }
  if (ev->header.oneway && m->second.streams) {
    finish(identity, ev->header.id, "ERR",
           err_args("TypeError", method + "() streams its reply: it cannot be published, nobody would read it"));
    return;
  }
  const message_id channel = ev->header.id;
  auto in = std::make_shared<detail::stream_state>(
      method, opts.input_window, [this, identity, channel](std::size_t n) { grant_input(identity, channel, n); },
      nullptr);
  running_call& call = running_calls[call_key{identity, channel}];
  call.input = in;
  call.publish_after_input = ev->header.oneway;
  event_header h{ids.next(), channel};
  h.accepts_stop = true;  // the client may stop the call with _ductrpc_stop
  send(identity, h, "_zpc_more", pack(std::make_tuple(in->open_window())).span());
  start_call(identity, std::move(ev), m->first, m->second, wrapped.via.array.ptr[1], std::move(in));
}

// The handler read chunks: the client may send `n` more.
void server::impl::grant_input(const std::string& identity, const message_id& channel, std::size_t n) {
  locked g(*this);
  auto peer = peers.find(identity);
  if (peer == peers.end() || !peer->second.find(channel)) return;  // the call is over: no more input wanted
  send(identity, {ids.next(), channel}, "_zpc_more", pack(std::make_tuple(n)).span());
  g.flush();
}

// An event of a chunked call's input: an item, its clean end, or the error its producer ended it with.
void server::impl::on_input(const std::string& identity, detail::channel& ch, event& ev) {
  auto it = running_calls.find(call_key{identity, ch.id});
  if (it == running_calls.end() || !it->second.input) {
    ++dropped;
    return;
  }
  detail::stream_state& in = *it->second.input;
  if (ev.name == "CHUNK") {
    if (!in.offer(std::move(ev).take_args())) {  // beyond the credit we granted: a client we cannot bound
      ++dropped;
      in.fail(std::make_exception_ptr(
          protocol_error(it->second.method + ": the client sent chunks beyond the credit it was granted")));
    }
    return;
  }
  if (ev.name == "CHUNK_DONE") {
    in.end();
  } else {
    const msgpack::object& a = ev.args();
    auto part = [&](std::uint32_t i, const char* otherwise) {
      if (a.type == msgpack::type::ARRAY && a.via.array.size > i && a.via.array.ptr[i].type == msgpack::type::STR)
        return a.via.array.ptr[i].as<std::string>();
      return std::string(otherwise);
    };
    in.fail(std::make_exception_ptr(remote_error(part(0, "InputError"), part(1, "the client's input failed"))));
  }
  if (it->second.publish_after_input) {  // published: from now on the call is one-way
    it->second.oneway = true;
    const message_id channel = ch.id;
    peers.at(identity).close(channel);  // the open count keeps the call until its handler returns
  }
}

// Starts a call to method `m` (with its wire `args`, which `ev` keeps alive, and a chunked call's input `in`):
// inline, streaming, reporting progress, or on the pool to be deferred after its budget.
void server::impl::start_call(const std::string& identity, std::shared_ptr<event> ev, const std::string& method,
                              const detail::method_entry& m, const msgpack::object& args,
                              std::shared_ptr<detail::stream_state> in) {
  const call_key key{identity, ev->header.id};
  running_call& call = running_calls[key];
  call.method = method;
  if (m.where != run_on::receiver) call.stop = std::stop_source();
  const bool chunked = call.input != nullptr;
  // Our client: any of our header keys says so. It may stop a stream with _ductrpc_stop.
  const bool ours = detail::from_our_client(ev->header) || chunked;
  if (m.where == run_on::receiver) {
    outbound o{identity, ev->header.id, "OK", {}, {}};
    inline_calls.push_back({&m.fn, std::move(ev), call.stop.get_token(), std::move(o), true});
    return;
  }
  if (m.streams) {  // never deferred: the items are the reply
    call.lost = std::make_shared<std::atomic<bool>>(false);
    auto out = std::make_shared<detail::server_sink>(*this, identity, ev->header.id, method, call.stop.get_token(),
                                                     call.lost, ours, ev->header.accepts_batches);
    auto why = run_handler(client_of(identity), m.fn, std::move(ev), args, call.stop.get_token(),
                           outbound{identity, {}, "OK", {}, {}, true}, std::move(out), nullptr, std::move(in));
    if (why != detail::fair_pool::refusal::none) refuse(key, method, why);
    return;
  }
  std::shared_ptr<detail::server_progress> report;
  if (m.reports && ev->header.wants_progress)
    report = std::make_shared<detail::server_progress>(*this, identity, ev->header.id, call.stop.get_token());
  if (ev->header.accepts_deferred && m.policy != defer_policy::immediate && !report && !chunked) {
    call.defer_at = detail::clock::now();
    if (m.policy == defer_policy::after_budget) *call.defer_at += opts.defer_after;
    note_deadline(*call.defer_at);
  }
  const bool at_once = call.defer_at && m.policy == defer_policy::always;
  std::stop_token stop = call.stop.get_token();
  // Run where it arrived unless it waits for chunks, which only this thread could bring it.
  auto why = run_handler(client_of(identity), m.fn, std::move(ev), args, stop, outbound{identity, {}, "OK", {}, {}},
                         nullptr, std::move(report), std::move(in), chunked ? nullptr : &key, &method);
  if (why != detail::fair_pool::refusal::none) return refuse(key, method, why);
  // Deferred always: the token goes now, under the lock the handler's outcome needs, so it can never come first.
  if (at_once) defer_now(key);
}

// Runs a handler on the pool; its reply (or a deferred call's outcome, when o.token is set) is completed under the
// lock and sent by the handler's thread. `ev` keeps `args` alive.
detail::fair_pool::refusal server::impl::run_handler(const std::string& client, const detail::handler& fn,
                                                     std::shared_ptr<event> ev, const msgpack::object& args,
                                                     std::stop_token stop, outbound o,
                                                     std::shared_ptr<detail::server_sink> out,
                                                     std::shared_ptr<detail::server_progress> report,
                                                     std::shared_ptr<detail::stream_state> in,
                                                     const detail::call_key* inline_as, const std::string* method,
                                                     bool oneway) {
  o.channel = ev->header.id;
  std::string peer = address_of(o.identity);
  std::function<void()> job = [this, &fn, ev = std::move(ev), &args, stop = std::move(stop), o = std::move(o),
                               out = std::move(out), report = std::move(report), in = std::move(in),
                               peer = std::move(peer)]() mutable {
    std::optional<source> input;
    if (in) input.emplace(detail::access::make_source(in));
    if (stop.stop_requested()) {  // cancelled, or its client lost, while it waited its turn: it never runs
      o.name = "ERR";
      o.packed_args = err_args("Cancelled", "the call was cancelled before it started");
    } else {
      detail::call_context context{std::move(stop), out.get(), report.get(), input ? &*input : nullptr, std::move(peer)};
      execute(fn, args, context, o);
    }
    if (in) in->detach();  // before taking the lock: a grant in progress holds the state's callback lock
    if (holding_replies == this && !o.stream) {  // it leaves with the others its thread runs (run_io_calls())
      std::lock_guard k(kept_mu);
      held.push_back(std::move(o));
      return;
    }
    locked g(*this);
    if (o.stream) {
      if (o.name == "OK") {  // the handler returned: the clean end
        o.name = "STREAM_DONE";
        o.packed_args = pack(msgpack::type::nil_t());
      }
      if (!out->take_credit(g)) return;  // the call is gone: there is nothing left to end
    }
    complete(std::move(o));
    g.flush();
  };
  if (inline_as && io_holder.of == this && role->mine(io_holder.ticket) && opts.handoff_after.count() > 0) {
    io_calls.push_back({client, std::move(job), *inline_as, method, oneway});
    return detail::fair_pool::refusal::none;
  }
  return pool->submit(client, std::move(job));
}

// Runs run_on::receiver calls on this thread, then completes them all under one lock, so their replies leave in
// one batch. On the I/O thread, a fast-path call's reply (on_event()) skips the lock and the queue: it is the only
// event of its channel, so nothing it could overtake, and the I/O thread sends it on the ROUTER itself.
void server::impl::run_inline(std::vector<detail::inline_call>& calls, bool on_io) {
  if (calls.empty()) return;
  bool need_lock = !on_io;  // off the I/O thread every reply goes through the lock; on it, only a tracked call's
  for (auto& c : calls) {
    detail::call_context context{std::move(c.stop), nullptr};
    execute(*c.fn, c.ev->args(), context, c.o);
    need_lock = need_lock || c.tracked;
  }
  if (on_io) {
    thread_local std::vector<duct::buffer> bodies;  // kept for its capacity
    for (auto& c : calls)
      bodies.push_back(c.tracked ? duct::buffer() : encode_event_packed({io_ids.next(), c.o.channel}, c.o.name,
                                                                         c.o.packed_args.span()));
    for (auto& c : calls)  // closed before the reply leaves, as under the lock: whoever has it sees the call closed
      if (!c.tracked) closed_one();
    {
      std::lock_guard socket(router_mu);
      for (std::size_t i = 0; i < calls.size(); ++i)
        if (!calls[i].tracked) send_to(calls[i].o.identity, bodies[i]);
    }
    bodies.clear();
    io_input = true;  // the sends may have taken the descriptor's edge: read before sleeping
  }
  if (need_lock) {
    locked g(*this);
    for (auto& c : calls) {
      if (c.tracked) {
        complete(std::move(c.o));
      } else if (!on_io) {
        send(c.o.identity, {ids.next(), c.o.channel}, c.o.name, c.o.packed_args.span());
        closed_one();
      }
    }
    g.flush();
  }
  calls.clear();
}

const detail::method_entry* server::impl::receiver_method(const event& ev) const {
  if (mode != serving_mode::serving) return nullptr;
  auto m = methods.find(ev.name);  // never a built-in: no bound method's name starts with '_'
  return m != methods.end() && m->second.where == run_on::receiver ? &m->second : nullptr;
}

// A one-way call: run it like any other, unless it cannot be (then it is dropped and counted: nobody waits to hear).
void server::impl::on_published(const std::string& identity, std::shared_ptr<event> ev) {
  auto m = methods.find(ev->name);
  if (mode != serving_mode::serving || m == methods.end() || m->second.streams ||
      m->second.where == run_on::receiver) {
    ++dropped;
    return;
  }
  call_key key{identity, ev->header.id};
  if (running_calls.count(key)) {
    ++dropped;  // an id already in use
    return;
  }
  running_call& call = running_calls[key];
  call.method = ev->name;
  call.oneway = true;
  call.stop = std::stop_source();
  ++open;
  std::stop_token stop = call.stop.get_token();
  const msgpack::object& args = ev->args();
  auto why = run_handler(client_of(identity), m->second.fn, std::move(ev), args, stop, outbound{identity, {}, "OK", {}, {}},
                         nullptr, nullptr, m->second.reads ? detail::empty_input(m->first) : nullptr, &key, &m->first,
                         true);
  if (why != detail::fair_pool::refusal::none) {  // nobody to tell: dropped and counted
    running_calls.erase(key);
    closed_one();
    ++dropped;
  }
}

void server::impl::finish(const std::string& identity, const message_id& channel, std::string_view name,
                          const duct::buffer& args, bool announce_stop) {
  const call_key key{identity, channel};
  auto rc = running_calls.find(key);
  if (rc != running_calls.end() && rc->second.oneway) {
    running_calls.erase(rc);  // published: its outcome goes nowhere
    closed_one();
    return;
  }
  auto peer = peers.find(identity);
  if (peer == peers.end() || !peer->second.find(channel)) return;  // the client was lost meanwhile
  // Closed before the reply leaves (after the lock is released), so that a client holding its answer never sees
  // the call still counted open.
  if (rc != running_calls.end()) running_calls.erase(rc);
  if (!pending_progress.empty()) pending_progress.erase(key);  // the outcome supersedes any progress still waiting
  peer->second.close(channel);  // an emptied table stays until tick() sweeps it
  event_header h{ids.next(), channel};
  h.accepts_stop = announce_stop;
  send(identity, h, name, args.span());
  closed_one();
}

// A handler's outcome: the reply on its channel, or the outcome of the deferred call it now belongs to.
void server::impl::complete(outbound o) {
  if (o.token.empty()) {
    // A call answered with a token meanwhile: its outcome now belongs to the job.
    if (auto route = deferred_routes.find(call_key{o.identity, o.channel}); route != deferred_routes.end()) {
      o.token = std::move(route->second);
      deferred_routes.erase(route);
    }
  }
  if (o.token.empty()) {
    finish(o.identity, o.channel, o.name, o.packed_args);
  } else if (detail::job* j = jobs.find(o.token); j && j->state == detail::job_state::running) {
    job_finished(*j, std::move(o.name), std::move(o.packed_args));
  }  // else: cancelled meanwhile, its outcome is already decided
}

// A client is gone (its duct closed): forget its calls, and let their handlers stop.
void server::impl::drop_peer(const std::string& identity) {
  if (auto it = peers.find(identity); it != peers.end()) {
    for (const message_id& id : it->second.ids()) {
      it->second.close(id);
      closed_one();
      cancel(call_key{identity, id}, true);
    }
    peers.erase(it);
  }
  // Its one-way calls too: a duct says when its peer is gone (a ZeroMQ client leaves without a word, and its
  // one-way calls run to their end, within its bound on running calls).
  std::vector<call_key> oneway;
  for (auto& [key, call] : running_calls)
    if (call.oneway && key.identity == identity) oneway.push_back(key);
  for (const call_key& key : oneway) {
    cancel(key, true);
    closed_one();
  }
}

// A call from a client that accepts tokens ran past its budget: it becomes a job, and the client gets the token.
void server::impl::defer(const call_key& key, running_call& call) {
  const std::string client = client_of(key.identity);
  if (!jobs.room_for(client, opts.max_jobs, opts.per_client.jobs, opts.per_client.kept_bytes, opts.max_kept_bytes)) {
    call.defer_at.reset();  // no room: the call stays open until its result, like a plain zerorpc call
    return;
  }
  detail::job& j = jobs.create(call.method, key_of(key.identity), client);
  j.stop = call.stop;  // the same stop state: cancelling the job reaches the running handler
  ++open;              // the job is open work from now on; the channel closes below
  deferred_routes.emplace(key, j.token);
  finish(key.identity, key.channel, "DEFERRED", pack(std::make_tuple(j.token)));
}

// Defers running call `key` now: it becomes a job and its client gets the token (or, with no room for a job, it
// stays an open call).
void server::impl::defer_now(const call_key& key) {
  auto it = running_calls.find(key);
  running_call call = std::move(it->second);
  running_calls.erase(it);  // finish() in defer() would drop it anyway; the job holds its stop state now
  defer(key, call);
  if (call.defer_at == std::nullopt) running_calls.emplace(key, std::move(call));  // kept open: no room for a job
}

std::string server::impl::address_of(const std::string& identity) const {
  if (auto l = links.find(identity); l != links.end()) return "duct:" + l->second->name();
  auto a = addresses.find(identity);
  return a == addresses.end() ? std::string() : a->second.address;
}

std::string server::impl::key_of(const std::string& identity) const {
  auto a = addresses.find(identity);
  return a == addresses.end() ? std::string() : a->second.key;
}

std::string server::impl::client_of(const std::string& identity) const {
  // Prefixed, so that no routing id a client picks can pass for a key.
  if (zap)
    if (std::string key = key_of(identity); !key.empty()) return "k:" + key;
  return "c:" + identity;
}

duct::buffer server::impl::overloaded(const std::string& method, const std::string& why) {
  return err_args("Overloaded", method + ": the server is overloaded: " + why + "; try again later");
}

std::string server::impl::refused_because(detail::fair_pool::refusal why) const {
  const auto& b = pool->bounds();
  if (why == detail::fair_pool::refusal::client_queue_full)
    return "this client has " + std::to_string(b.per_client_queued) + " calls waiting for a thread already";
  return std::to_string(b.queued) + " calls are waiting for a thread already";
}

void server::impl::refuse(const call_key& key, const std::string& method, detail::fair_pool::refusal why) {
  cancel(key);  // forgets the running call (and ends a chunked call's input)
  finish(key.identity, key.channel, "ERR", overloaded(method, refused_because(why)));
}

bool server::impl::may_see(const std::string& identity, const detail::job& j) const {
  return j.owner.empty() || j.owner == key_of(identity);
}

void server::impl::tick(detail::clock::time_point now) {
  if (addresses.size() > 2 * peers.size() + 64)  // peers come and go: forget the addresses of those gone
    std::erase_if(addresses, [&](const auto& a) { return !peers.count(a.first); });
  std::vector<call_key> due;
  for (auto& [key, call] : running_calls)
    if (call.defer_at && *call.defer_at <= now) due.push_back(key);
  for (const call_key& key : due) defer_now(key);
  for (auto& [j, w] : jobs.overdue_waiters(now)) {
    finish(w.identity, w.channel, "ERR",
           err_args("StillRunning", j->method + " (token " + j->token + ") is still running"));
  }
  if (std::size_t lost = jobs.expire(now, opts.keep_results)) {
    if ((uncollected -= lost) == 0) {
      std::lock_guard lock(idle_mu);
      idle.notify_all();
    }
  }
  // A client's table stays for a while once its last call has closed, so that a client whose calls come in rounds
  // does not have its table rebuilt (and rehashed as it grows) for every round: empty ones are swept each second.
  const bool sweep = now >= next_sweep;
  if (sweep) {
    next_sweep = now + std::chrono::seconds(1);
    pool->sweep();
  }
  for (auto it = peers.begin(); it != peers.end();) {
    detail::channel_table& table = it->second;
    for (const message_id& gone : table.lost(now)) {
      // Closed and counted before the handler hears of it, so that whoever sees the stop sees the channel gone.
      table.close(gone);
      closed_one();
      cancel(call_key{it->first, gone}, true);  // the client is gone: its handler may stop
    }
    for (detail::channel* ch : table.heartbeats_due(now)) {
      send(it->first, {ids.next(), ch->id}, "_zpc_hb", detail::heartbeat_args().span());
      ch->beat.sent(now);
    }
    it = sweep && table.size() == 0 ? peers.erase(it) : std::next(it);
  }
}

}  // namespace rpc
