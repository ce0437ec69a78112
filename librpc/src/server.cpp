// rpc::server over ZeroMQ: an I/O thread owns the ROUTER socket and every channel's heartbeat; handlers run on a
// pool and hand their replies back through a queue and an eventfd. See server.hpp.
#include <rpc/server.hpp>

#include <cxxabi.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <stop_token>
#include <mutex>
#include <thread>
#include <typeinfo>
#include <unordered_map>

#include <rpc/event.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "channel.hpp"
#include "job_store.hpp"
#include "thread_pool.hpp"
#include "wakeup.hpp"
#include "zmq_util.hpp"

namespace rpc {
namespace {

struct method_entry {
  detail::handler fn;
  std::string doc;
  std::vector<std::string> arg_names;
  defer_policy policy;
};

// A call whose handler is running, by client identity and channel.
struct call_key {
  std::string identity;
  message_id channel;
  bool operator==(const call_key&) const = default;
};
struct call_key_hash {
  std::size_t operator()(const call_key& k) const noexcept {
    return std::hash<std::string>()(k.identity) ^ message_id_hash()(k.channel);
  }
};

enum class serving_mode { serving, draining, aborting };

// A call whose handler is running on the pool.
struct running_call {
  std::stop_source stop;
  std::string method;
  std::optional<detail::clock::time_point> defer_at;  // when to answer with a token instead (clients that accept it)
};

struct outbound {
  std::string identity;
  message_id channel;
  std::string name;  // OK or ERR
  duct::buffer packed_args;
  std::string token;  // set when this is the outcome of a deferred call rather than a reply on a channel
};

std::string type_name_of(const std::exception& e) {
  int status = 0;
  char* demangled = abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status);
  std::string name = status == 0 && demangled ? demangled : typeid(e).name();
  std::free(demangled);
  return name;
}

template <class T>
duct::buffer pack(const T& value) {
  duct::pack_buffer out;
  msgpack::pack(out, value);
  return duct::buffer(std::as_bytes(std::span(out.data(), out.size())));
}

// ERR args: [name, message, traceback]; traceback nil rather than "", which zerorpc's CLI would print as a blank line.
duct::buffer err_args(const std::string& name, const std::string& message) {
  return pack(std::make_tuple(name, message, msgpack::type::nil_t()));
}

// OK args: [result], the result already packed.
duct::buffer ok_args(const duct::buffer& packed_result) {
  duct::buffer out(1 + packed_result.size());
  out.data()[0] = std::byte{0x91};
  std::memcpy(out.data() + 1, packed_result.data(), packed_result.size());
  return out;
}

}  // namespace

struct server::impl {
  explicit impl(server_options o) : opts(std::move(o)) {
    router.set(zmq::sockopt::linger, 0);
    router.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(opts.max_message_size));
  }

  server_options opts;
  zmq::context_t ctx{1};
  zmq::socket_t router{ctx, zmq::socket_type::router};
  bool listening = false;  // listen() succeeded at least once
  std::map<std::string, method_entry> methods;
  detail::wakeup wake;
  std::mutex out_mu;
  std::vector<outbound> outq;
  std::unique_ptr<detail::thread_pool> pool;
  std::thread io;
  std::atomic<bool> running{false};
  std::atomic<std::uint64_t> dropped{0};
  std::atomic<std::size_t> open{0};
  std::atomic<serving_mode> mode{serving_mode::serving};
  std::atomic<std::size_t> uncollected{0};  // deferred outcomes (done or failed) no client has fetched yet
  std::mutex idle_mu;
  std::condition_variable idle;  // notified whenever the last open call closes

  // Owned by the I/O thread.
  std::unordered_map<std::string, detail::channel_table> peers;
  std::unordered_map<call_key, running_call, call_key_hash> running_calls;
  std::unordered_map<call_key, std::string, call_key_hash> deferred_routes;  // a deferred call's channel -> token
  detail::job_store jobs;
  id_generator ids;

  void closed_one() {
    if (--open == 0) {
      std::lock_guard lock(idle_mu);
      idle.notify_all();
    }
  }
  void collected_one(detail::job& j) {
    if (j.collected || j.state == detail::job_state::running || j.state == detail::job_state::cancelled) return;
    j.collected = true;
    if (--uncollected == 0) {
      std::lock_guard lock(idle_mu);
      idle.notify_all();
    }
  }
  // Waits until no call is open (and, with `collected`, no deferred outcome is waiting to be fetched).
  bool wait_idle(std::optional<detail::clock::time_point> until, bool collected = false) {
    std::unique_lock lock(idle_mu);
    auto drained = [&] { return open.load() == 0 && (!collected || uncollected.load() == 0); };
    if (!until) {
      idle.wait(lock, drained);
      return true;
    }
    return idle.wait_until(lock, *until, drained);
  }
  void cancel(const call_key& key) {
    auto it = running_calls.find(key);
    if (it == running_calls.end()) return;
    it->second.stop.request_stop();
    running_calls.erase(it);
  }
  void abort_running();
  void defer(const call_key& key, running_call& call);
  void run_handler(const detail::handler& fn, std::shared_ptr<event> ev, const msgpack::object& args,
                   std::stop_token stop, outbound o);
  void deferred_builtin(const std::string& identity, std::shared_ptr<event> ev);
  void job_finished(detail::job& j, std::string name, duct::buffer outcome);
  void answer_waiter(detail::job& j, const detail::job_waiter& w);

  void loop();
  void on_message(std::vector<zmq::message_t>& frames, detail::clock::time_point now);
  void on_request(const std::string& identity, std::shared_ptr<event> ev);
  bool builtin(const std::string& identity, const event& ev);
  void send(const std::string& identity, const event_header& h, std::string_view name, std::span<const std::byte> args);
  void finish(const std::string& identity, const message_id& channel, std::string_view name, const duct::buffer& args);
  void flush_outbound();
  void tick(detail::clock::time_point now);
  void post(outbound o) {
    {
      std::lock_guard lock(out_mu);
      outq.push_back(std::move(o));
    }
    wake.signal();
  }
};

server::server(server_options opts) : impl_(std::make_unique<impl>(std::move(opts))) {}
server::~server() { stop(); }

void server::bind_handler(const std::string& name, detail::handler h, std::string doc,
                          std::vector<std::string> arg_names, std::size_t arity, defer_policy policy) {
  if (impl_->running) throw error("bind '" + name + "': the server is already running");
  if (name.empty() || name.front() == '_') throw error("bind '" + name + "': method names must not be empty or start with '_'");
  if (impl_->methods.count(name)) throw error("bind '" + name + "': a method of that name is bound already");
  if (arg_names.empty())
    for (std::size_t i = 0; i < arity; ++i) arg_names.push_back("a" + std::to_string(i));
  impl_->methods.emplace(name, method_entry{std::move(h), std::move(doc), std::move(arg_names), policy});
}

std::string server::listen(std::string_view endpoint) {
  if (impl_->running) throw error("listen " + std::string(endpoint) + ": the server is already running");
  std::string bound = detail::bind_endpoint(impl_->router, endpoint);
  impl_->listening = true;
  return bound;
}

void server::start() {
  if (impl_->running) throw error("the server is already running");
  if (impl_->io.joinable() || impl_->mode != serving_mode::serving)
    throw error("the server was stopped and cannot start again: make a new one");
  if (!impl_->listening) throw error("the server listens nowhere: call listen() first");
  impl_->pool = std::make_unique<detail::thread_pool>(impl_->opts.threads);
  impl_->running = true;
  impl_->io = std::thread([this] { impl_->loop(); });
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
}

void server::stop() noexcept {
  if (!impl_ || !impl_->running.exchange(false)) return;
  impl_->wake.signal();
  impl_->io.join();
  impl_->pool.reset();  // lets running handlers finish; their replies go nowhere
  impl_->mode = serving_mode::aborting;  // for accepting(), and so that start() refuses
}

bool server::accepting() const noexcept { return impl_->running && impl_->mode == serving_mode::serving; }

std::uint64_t server::dropped_events() const noexcept { return impl_->dropped.load(); }
std::size_t server::open_channels() const noexcept { return impl_->open.load(); }

void server::impl::loop() {
  std::vector<zmq::message_t> frames;
  while (running) {
    auto now = detail::clock::now();
    std::chrono::milliseconds wait(1000);
    auto until = [&](detail::clock::time_point d) { wait = std::min(wait, detail::ms_until(d, now)); };
    for (auto& [identity, table] : peers)
      if (auto d = table.next_deadline()) until(*d);
    if (auto d = jobs.next_deadline()) until(*d);
    for (const auto& [key, call] : running_calls)
      if (call.defer_at) until(*call.defer_at);
    zmq::pollitem_t items[] = {{router.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, wake.fd(), ZMQ_POLLIN, 0}};
    detail::poll_items(items, 2, wait);
    if (items[1].revents & ZMQ_POLLIN) wake.drain();
    flush_outbound();
    // Take what has arrived, but not without end: a flood from one client must not hold up heartbeats.
    for (int i = 0; i < 1000 && detail::try_recv(router, frames); ++i) on_message(frames, detail::clock::now());
    if (mode == serving_mode::aborting) abort_running();
    tick(detail::clock::now());
  }
}

void server::impl::abort_running() {
  std::vector<call_key> keys;
  for (auto& [key, call] : running_calls) keys.push_back(key);
  for (const call_key& key : keys) {
    cancel(key);
    finish(key.identity, key.channel, "ERR",
           err_args("Cancelled", "the server is shutting down: the call was cancelled"));
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

void server::impl::on_message(std::vector<zmq::message_t>& frames, detail::clock::time_point now) {
  if (frames.size() < 2) {
    ++dropped;
    return;
  }
  std::string identity = frames.front().to_string();
  const zmq::message_t& body = frames.back();
  std::shared_ptr<event> ev;
  try {
    ev = std::make_shared<event>(decode_event(std::as_bytes(std::span(static_cast<const char*>(body.data()), body.size()))));
  } catch (const protocol_error&) {
    ++dropped;
    return;
  }
  auto [it, inserted] = peers.try_emplace(identity, opts.heartbeat);
  detail::channel_table& table = it->second;
  if (ev->header.response_to) {
    detail::channel* ch = table.find(*ev->header.response_to);
    if (!ch) {  // zerorpc: "unable to route event"
      ++dropped;
      return;
    }
    ch->beat.heard(now);
    if (ev->name == "_zpc_more" && ev->args().type == msgpack::type::ARRAY && ev->args().via.array.size == 1 &&
        ev->args().via.array.ptr[0].type == msgpack::type::POSITIVE_INTEGER) {
      ch->credit.grant(static_cast<std::int64_t>(std::min<std::uint64_t>(ev->args().via.array.ptr[0].via.u64, INT64_MAX)));
    }
    return;  // _zpc_hb and anything else on an open call only prove the client is alive
  }
  if (!table.open(ev->header.id, now)) {
    ++dropped;  // a second request with an id already in use
    return;
  }
  ++open;
  on_request(identity, std::move(ev));
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
  running_call& call = running_calls[call_key{identity, ev->header.id}];
  call.method = ev->name;
  if (ev->header.accepts_deferred && m->second.policy != defer_policy::immediate) {
    call.defer_at = detail::clock::now();
    if (m->second.policy == defer_policy::after_budget) *call.defer_at += opts.defer_after;
  }
  std::stop_token stop = call.stop.get_token();
  const msgpack::object& args = ev->args();
  run_handler(m->second.fn, std::move(ev), args, stop, outbound{identity, {}, "OK", {}, {}});
}

// Runs a handler on the pool; its reply (or a deferred call's outcome, when o.token is set) comes back to the I/O
// thread through post(). `ev` keeps `args` alive.
void server::impl::run_handler(const detail::handler& fn, std::shared_ptr<event> ev, const msgpack::object& args,
                               std::stop_token stop, outbound o) {
  o.channel = ev->header.id;
  pool->submit([this, &fn, ev = std::move(ev), &args, stop = std::move(stop), o = std::move(o)]() mutable {
    try {
      o.packed_args = ok_args(fn(args, stop));
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
    post(std::move(o));
  });
}

void server::impl::deferred_builtin(const std::string& identity, std::shared_ptr<event> ev) {
  const std::string& n = ev->name;
  const msgpack::object& a = ev->args();
  auto fail = [&](const std::string& name, const std::string& message) {
    finish(identity, ev->header.id, "ERR", err_args(name, message));
  };
  auto reply = [&](const auto& value) { finish(identity, ev->header.id, "OK", pack(std::make_tuple(value))); };
  const bool is_array = a.type == msgpack::type::ARRAY;
  const std::uint32_t argc = is_array ? a.via.array.size : 0;
  auto str_arg = [&](std::uint32_t i) -> std::optional<std::string> {
    if (i >= argc || a.via.array.ptr[i].type != msgpack::type::STR) return std::nullopt;
    return a.via.array.ptr[i].as<std::string>();
  };

  if (n == "_ductrpc_list") {
    std::vector<std::map<std::string, std::string>> out;
    for (const detail::job* j : jobs.all())
      out.push_back({{"token", j->token}, {"method", j->method}, {"state", detail::to_string(j->state)}});
    reply(out);
    return;
  }
  if (n == "_ductrpc_submit") {
    auto method = str_arg(0);
    if (!method || argc != 2 || a.via.array.ptr[1].type != msgpack::type::ARRAY)
      return fail("TypeError", "_ductrpc_submit(method, [args]) takes a method name and an array of arguments");
    auto m = methods.find(*method);
    if (m == methods.end()) return fail("NameError", *method);
    if (jobs.size() >= opts.max_jobs) jobs.expire(detail::clock::now(), std::chrono::seconds(0));
    if (jobs.size() >= opts.max_jobs)
      return fail("TooManyJobs", "the server keeps " + std::to_string(opts.max_jobs) + " deferred calls at most");
    detail::job& j = jobs.create(*method);
    ++open;  // a running job is open work: a drain waits for it
    run_handler(m->second.fn, ev, a.via.array.ptr[1], j.stop.get_token(), outbound{{}, {}, "OK", {}, j.token});
    reply(j.token);
    return;
  }
  auto token = str_arg(0);
  detail::job* j = token ? jobs.find(*token) : nullptr;
  if (!token) return fail("TypeError", n + "(token, ...) takes a token string first");
  if (!j) return fail("UnknownToken", "no deferred call has token " + *token + " (or its outcome has expired)");
  if (n == "_ductrpc_poll") {
    duct::pack_buffer out;
    msgpack::packer<duct::pack_buffer> p(out);
    p.pack_array(1);
    bool finished = j->state != detail::job_state::running;
    p.pack_map(finished ? 2 : 1);
    p.pack(std::string_view("state"));
    p.pack(std::string_view(detail::to_string(j->state)));
    if (finished) {
      // OK args are [result]: the result follows the array's first byte. ERR args are [name, message, traceback].
      bool ok = j->outcome_name == "OK";
      p.pack(std::string_view(ok ? "result" : "error"));
      auto bytes = ok ? j->outcome.span().subspan(1) : j->outcome.span();
      out.write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      collected_one(*j);
    }
    finish(identity, ev->header.id, "OK", duct::buffer(std::as_bytes(std::span(out.data(), out.size()))));
  } else if (n == "_ductrpc_wait") {
    double seconds = 0;
    if (argc != 2) return fail("TypeError", "_ductrpc_wait(token, seconds) takes a token and a time limit");
    try {
      seconds = a.via.array.ptr[1].as<double>();
    } catch (const msgpack::type_error&) {
      return fail("TypeError", "_ductrpc_wait: the time limit must be a number of seconds");
    }
    detail::job_waiter w{identity, ev->header.id, detail::clock::now()};
    if (j->state != detail::job_state::running) return answer_waiter(*j, w);
    seconds = std::clamp(seconds, 0.0, 86400.0);
    w.deadline += std::chrono::duration_cast<detail::clock::duration>(std::chrono::duration<double>(seconds));
    j->waiters.push_back(std::move(w));  // answered when the call finishes, or by tick() at the limit
  } else if (n == "_ductrpc_cancel") {
    bool was_running = j->state == detail::job_state::running;
    if (was_running) {
      j->stop.request_stop();
      job_finished(*j, "ERR", err_args("Cancelled", j->method + ": cancelled by a client (token " + j->token + ")"));
      j->state = detail::job_state::cancelled;
      if (!j->collected) --uncollected;  // nobody needs to fetch a cancellation
      j->collected = true;
    }
    reply(was_running);
  } else {
    fail("NameError", n);
  }
}

// A deferred call ended (or was cancelled): keep its outcome and answer everyone waiting for it.
void server::impl::job_finished(detail::job& j, std::string name, duct::buffer outcome) {
  j.state = name == "OK" ? detail::job_state::done : detail::job_state::failed;
  ++uncollected;
  j.outcome_name = std::move(name);
  j.outcome = std::move(outcome);
  j.finished = detail::clock::now();
  for (const detail::job_waiter& w : j.waiters) answer_waiter(j, w);
  j.waiters.clear();
  closed_one();
}

void server::impl::answer_waiter(detail::job& j, const detail::job_waiter& w) {
  finish(w.identity, w.channel, j.outcome_name, j.outcome);
  collected_one(j);
}

bool server::impl::builtin(const std::string& identity, const event& ev) {
  const std::string& n = ev.name;
  if (!n.starts_with("_zerorpc_")) return false;
  auto method_arg = [&]() -> const method_entry* {
    const msgpack::object& a = ev.args();
    if (a.type != msgpack::type::ARRAY || a.via.array.size != 1 || a.via.array.ptr[0].type != msgpack::type::STR)
      return nullptr;
    auto it = methods.find(a.via.array.ptr[0].as<std::string>());
    return it == methods.end() ? nullptr : &it->second;
  };
  duct::pack_buffer out;
  msgpack::packer<duct::pack_buffer> p(out);
  p.pack_array(1);
  if (n == "_zerorpc_ping") {
    p.pack(std::make_tuple(std::string("pong"), opts.name));
  } else if (n == "_zerorpc_name") {
    p.pack(opts.name);
  } else if (n == "_zerorpc_list") {
    std::vector<std::string> names;
    for (const auto& [name, m] : methods) names.push_back(name);
    p.pack(names);
  } else if (n == "_zerorpc_help" || n == "_zerorpc_args") {
    const method_entry* m = method_arg();
    if (!m) {
      finish(identity, ev.header.id, "ERR", err_args("NameError", n + ": no such method"));
      return true;
    }
    if (n == "_zerorpc_help") {
      if (m->doc.empty()) p.pack_nil();
      else p.pack(m->doc);
    } else {
      p.pack_array(4);  // [args, varargs, keywords, defaults], as Python's argspec
      p.pack(m->arg_names);
      p.pack_nil();
      p.pack_nil();
      p.pack_nil();
    }
  } else if (n == "_zerorpc_inspect") {
    p.pack_map(2);
    p.pack(std::string_view("name"));
    p.pack(opts.name);
    p.pack(std::string_view("methods"));
    p.pack_map(static_cast<std::uint32_t>(methods.size()));
    for (const auto& [name, m] : methods) {
      p.pack(name);
      p.pack_map(2);
      p.pack(std::string_view("args"));
      p.pack_array(static_cast<std::uint32_t>(m.arg_names.size()));
      for (const auto& a : m.arg_names) {
        p.pack_map(1);
        p.pack(std::string_view("name"));
        p.pack(a);
      }
      p.pack(std::string_view("doc"));
      if (m.doc.empty()) p.pack_nil();
      else p.pack(m.doc);
    }
  } else {
    finish(identity, ev.header.id, "ERR", err_args("NameError", n));
    return true;
  }
  finish(identity, ev.header.id, "OK", duct::buffer(std::as_bytes(std::span(out.data(), out.size()))));
  return true;
}

void server::impl::send(const std::string& identity, const event_header& h, std::string_view name,
                        std::span<const std::byte> args) {
  duct::buffer body = encode_event_packed(h, name, args);
  try {
    detail::send_part(router, zmq::buffer(identity), zmq::send_flags::sndmore);
    detail::send_part(router, zmq::const_buffer(), zmq::send_flags::sndmore);
    detail::send_part(router, zmq::buffer(body.data(), body.size()), zmq::send_flags::none);
  } catch (const zmq::error_t&) {
    ++dropped;  // the socket refused it: this event is lost, the server goes on
  }
}

void server::impl::finish(const std::string& identity, const message_id& channel, std::string_view name,
                          const duct::buffer& args) {
  auto peer = peers.find(identity);
  if (peer == peers.end() || !peer->second.find(channel)) return;  // the client was lost meanwhile
  // Closed before the reply leaves, so that a client holding its answer never sees the call still counted open.
  event_header h{ids.next(), channel};
  running_calls.erase(call_key{identity, channel});
  peer->second.close(channel);
  if (peer->second.size() == 0) peers.erase(peer);
  closed_one();  // shutdown() may now proceed, but stop() joins this thread, so the reply below still leaves
  send(identity, h, name, args.span());
}

void server::impl::flush_outbound() {
  std::vector<outbound> batch;
  {
    std::lock_guard lock(out_mu);
    batch.swap(outq);
  }
  for (auto& o : batch) {
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
}

// A call from a client that accepts tokens ran past its budget: it becomes a job, and the client gets the token.
void server::impl::defer(const call_key& key, running_call& call) {
  if (jobs.size() >= opts.max_jobs) jobs.expire(detail::clock::now(), std::chrono::seconds(0));
  if (jobs.size() >= opts.max_jobs) {
    call.defer_at.reset();  // no room: the call stays open until its result, like a plain zerorpc call
    return;
  }
  detail::job& j = jobs.create(call.method);
  j.stop = call.stop;  // the same stop state: cancelling the job reaches the running handler
  ++open;              // the job is open work from now on; the channel closes below
  deferred_routes.emplace(key, j.token);
  finish(key.identity, key.channel, "DEFERRED", pack(std::make_tuple(j.token)));
}

void server::impl::tick(detail::clock::time_point now) {
  std::vector<call_key> due;
  for (auto& [key, call] : running_calls)
    if (call.defer_at && *call.defer_at <= now) due.push_back(key);
  for (const call_key& key : due) {
    auto it = running_calls.find(key);
    running_call call = std::move(it->second);
    running_calls.erase(it);  // finish() below would drop it anyway; the job holds its stop state now
    defer(key, call);
    if (call.defer_at == std::nullopt) running_calls.emplace(key, std::move(call));  // kept open: no room for a job
  }
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
  for (auto it = peers.begin(); it != peers.end();) {
    detail::channel_table& table = it->second;
    for (const message_id& gone : table.lost(now)) {
      // Closed and counted before the handler hears of it, so that whoever sees the stop sees the channel gone.
      table.close(gone);
      closed_one();
      cancel(call_key{it->first, gone});  // the client is gone: its handler may stop
    }
    for (detail::channel* ch : table.heartbeats_due(now)) {
      send(it->first, {ids.next(), ch->id}, "_zpc_hb", detail::heartbeat_args().span());
      ch->beat.sent(now);
    }
    it = table.size() == 0 ? peers.erase(it) : std::next(it);
  }
}

}  // namespace rpc
