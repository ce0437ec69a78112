// rpc::server: its shared state, its public API and its life cycle (listening, starting, draining, stopping).
// The rest of the server: server_io.cpp (the transports: the I/O role over the ROUTER, pipes, sending),
// server_calls.cpp (the path of a call from request to reply), server_input.cpp (a chunked call's input),
// server_quick.cpp (the calls the I/O role's holder runs untracked), server_builtins.cpp (the _zerorpc_* and
// _ductrpc_* methods), server_broker.cpp (serving as rpc-broker's worker). See server.hpp and server_impl.hpp.
#include <rpc/server.hpp>

#include <rpc/curve.hpp>

#include "access.hpp"
#include "broker_wire.hpp"
#include "server_impl.hpp"
#include "zmq_util.hpp"

namespace rpc {

using detail::call_key;
using detail::serving_mode;

namespace {

// READY's `jobs`: the calls a broker may send at once, `threads` x `prefetch` (at least 1 each), but no more than
// the server can hold (`threads` running, `queued` waiting), nor 65536.
std::uint32_t take_at_once(std::size_t threads, std::size_t prefetch, std::size_t queued) {
  constexpr std::size_t most = 65536;
  prefetch = std::clamp<std::size_t>(prefetch, 1, most);
  const std::size_t asked = threads >= most / prefetch ? most : threads * prefetch;
  const std::size_t room = threads + std::min(queued, most);
  return static_cast<std::uint32_t>(std::min({asked, room, most}));
}

}  // namespace

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

void server::impl::begin(bool with_io) {
  const std::size_t threads = std::max<std::size_t>(opts.threads, 1);
  started = true;
  running = true;
  role = std::make_unique<detail::io_role>(opts.handoff_after, [this] { on_vacated(); });
  pool = std::make_unique<detail::fair_pool>(
      detail::fair_pool::limits{threads, opts.per_client.running ? opts.per_client.running : std::max<std::size_t>(threads - 1, 1),
                                opts.per_client.queued, opts.max_queued},
      with_io ? std::function<void()>([this] { lead(); }) : nullptr);
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
  for (auto& l : impl_->served_links()) l->detach(*impl_);  // release links claimed by a server never started
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
    for (std::size_t i = 0; i < is.arity; ++i) {
      std::string arg("a");  // appended, not "a" + ...: GCC 12 at -O3 warns falsely (-Wrestrict) about that
      arg += std::to_string(i);
      how.arg_names.push_back(std::move(arg));
    }
  impl_->methods.emplace(name, detail::method_entry{std::move(h), std::move(how.doc), std::move(how.arg_names),
                                                    how.defer, how.where, is.streams, is.reports, is.reads,
                                                    is.stops, is.peer});
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
    impl_->add_pipe(*detail::access::core(over), detail::access::core(over));
  }
  impl_->listening = true;
  if (impl_->running) detail::access::core(over)->attach(*impl_, impl_->opts.handoff_after);
  return where;
}

std::string server::connect(std::string_view broker_backend, const std::string& broker_key) {
  impl_->connect_broker(broker_backend, broker_key);
  impl_->listening = true;
  return std::string(broker_backend);
}

void server::start() {
  if (impl_->running) throw error("the server is already running");
  if (impl_->started || impl_->mode != serving_mode::serving)
    throw error("the server was stopped and cannot start again: make a new one");
  if (!impl_->listening) throw error("the server listens nowhere: call listen() first");
  const server_options& o = impl_->opts;
  const std::size_t threads = std::max<std::size_t>(o.threads, 1);
  impl_->begin(true);
  if (!impl_->brokers.empty()) {  // the methods are fixed now: announce them
    duct::pack_buffer methods;
    msgpack::packer<duct::pack_buffer> p(methods);
    impl_->pack_methods(p);
    duct::buffer m = methods.take();
    impl_->ready = detail::make_ready(take_at_once(threads, o.broker_prefetch, o.max_queued),
                                      std::chrono::duration_cast<std::chrono::milliseconds>(o.heartbeat),
                                      impl_->jobs.prefix(), o.name, m.span());
    std::lock_guard lock(impl_->router_mu);
    impl_->tell_brokers(detail::cmd_ready, impl_->ready.span());
    impl_->next_beat = detail::clock::now() + o.heartbeat;
  }
  impl_->pool->vacate();  // a pool thread takes the I/O role
  const auto links = impl_->served_links();
  for (auto& l : links) l->attach(*impl_, o.handoff_after);
}

void server::shutdown(shutdown_mode how, std::chrono::milliseconds grace) {
  if (!impl_->running) return;
  impl_->mode = how == shutdown_mode::drain ? serving_mode::draining : serving_mode::aborting;
  if (!impl_->brokers.empty()) {
    std::lock_guard lock(impl_->router_mu);
    impl_->tell_brokers(detail::cmd_drain);  // no new calls, while those open finish
  }
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
  for (auto& b : impl_->brokers) b.dealer.set(zmq::sockopt::linger, 1000);
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
  const auto links = impl_->served_links();
  for (auto& l : links) l->detach(*impl_);  // no reader hands us anything from here on
  impl_->pool->stop();  // lets running handlers finish, their replies going nowhere but to ducts still open; a
                        // handler the role's holder ran itself still counts itself out, so the pool must stay
  impl_->pool.reset();
  impl_->mode = serving_mode::aborting;  // for accepting(), and so that start() refuses
  if (!impl_->brokers.empty()) {
    std::lock_guard lock(impl_->router_mu);
    impl_->tell_brokers(detail::cmd_bye);  // its calls end with it: the broker fails them at once
  }
  release_ipc_files();  // a stopped server listens no more: its ipc:// sockets go
}

bool server::accepting() const noexcept { return impl_->running && impl_->mode == serving_mode::serving; }

std::uint64_t server::dropped_events() const noexcept { return impl_->dropped.load(); }

std::size_t server::open_channels() const noexcept { return impl_->open.load(); }

std::uint64_t server::handoffs() const noexcept {
  std::uint64_t n = impl_->role ? impl_->role->handoffs() : 0;
  for (auto& l : impl_->served_links()) n += l->handoffs();
  return n;
}

}  // namespace rpc
