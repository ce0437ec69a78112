// rpc::server's call path: a request's event to its handler (inline, on the receiving thread, on the pool), its
// reply, streams, progress and chunked input on its channel, deferral into a job, refusals, heartbeats and time
// limits (tick()). See server_impl.hpp.
#include <cxxabi.h>

#include <cstring>
#include <typeinfo>

#include <rpc/server.hpp>

#include "access.hpp"
#include "reply.hpp"
#include "server_impl.hpp"
#include "server_streams.hpp"

namespace rpc {

using detail::call_key;
using detail::err_args;
using detail::outbound;
using detail::pack;
using detail::running_call;
using detail::serving_mode;

using detail::holding_replies;
using detail::io_holder;

namespace {

std::string type_name_of(const std::exception& e) {
  int status = 0;
  char* demangled = abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status);
  std::string name = status == 0 && demangled ? demangled : typeid(e).name();
  std::free(demangled);
  return name;
}

}  // namespace

duct::buffer detail::ok_args(const duct::buffer& packed_result) {
  duct::buffer out(1 + packed_result.size());
  out.data()[0] = std::byte{0x91};
  std::memcpy(out.data() + 1, packed_result.data(), packed_result.size());
  return out;
}

void detail::reply_batch::add(std::string identity, const event_header& h, bool ok, std::string_view name,
                              std::span<const std::byte> args) {
  const std::size_t at = bytes_.size();
  pack_event_head(bytes_, h, ok ? "OK" : name);
  if (ok) bytes_.write("\x91", 1);  // [result]
  bytes_.write(reinterpret_cast<const char*>(args.data()), args.size());
  to_.push_back({std::move(identity), at, bytes_.size() - at});
}

void detail::execute(const handler& fn, const msgpack::object& args, call_context& ctx, outbound& o) {
  if (execute_unwrapped(fn, args, ctx, o)) o.packed_args = ok_args(o.packed_args);
}

bool detail::execute_unwrapped(const handler& fn, const msgpack::object& args, call_context& ctx, outbound& o) {
  try {
    o.packed_args = fn(args, ctx);
    return true;
  } catch (const remote_error& e) {
    o.name = "ERR";
    o.packed_args = err_args(e.name(), e.message());
    return false;
  } catch (const std::exception& e) {
    o.name = "ERR";
    o.packed_args = err_args(type_name_of(e), e.what());
    return false;
  } catch (...) {
    o.name = "ERR";
    o.packed_args = err_args("UnknownError", "the handler threw something that is not a std::exception");
    return false;
  }
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
  const auto* bound = mode == serving_mode::serving ? bound_method(*ev) : nullptr;
  if (bound && bound->second.where == run_on::receiver && !table.find(ev->header.id)) {
    // The fast path of a plain call to a run_on::receiver method: it is answered before this thread reads again,
    // so nothing could reach it meanwhile (no heartbeat is due, it cannot be cancelled, deferred or streamed) and
    // it needs no channel and no entry among the running calls. It counts as open until it is answered.
    ++open;
    detail::inline_call& c = inline_calls.emplace_back();  // built in place: an outbound is not cheap to move
    c.fn = &bound->second.fn;
    c.o.identity = identity;
    c.o.channel = ev->header.id;
    c.o.name = "OK";
    c.ev = std::move(ev);  // not tracked: no channel, no running call
    return;
  }
  if (bound && may_run_quick(*ev, bound->second, table)) {  // the holder runs it, untracked (server_quick.cpp)
    ++open;
    detail::quick_call& q = quick_calls.emplace_back();
    q.identity = identity;
    q.m = &bound->second;
    q.method = &bound->first;
    q.client = client_of(identity);
    if (bound->second.peer) q.peer = address_of(identity);
    q.ev = std::move(ev);
    return;
  }
  open_call(identity, table, std::move(ev), now, false);
}

void server::impl::open_call(const std::string& identity, detail::channel_table& table, std::shared_ptr<event> ev,
                             detail::clock::time_point now, bool counted) {
  if (table.size() >= opts.per_client.open_calls) {  // answered on its channel, which is never opened
    send(identity, {ids.next(), ev->header.id}, "ERR",
         overloaded(ev->name, "this connection has " + std::to_string(table.size()) + " calls open already").span());
    if (counted) closed_one();
    return;
  }
  detail::channel* ch = table.open(ev->header.id, now);
  if (!ch) {
    ++dropped;  // a second request with an id already in use
    if (counted) closed_one();
    return;
  }
  note_deadline(ch->beat.next_deadline());
  if (!counted) ++open;
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
  if (ev->header.accepts_deferred && m.policy != defer_policy::immediate && !report && !chunked)
    schedule_deferral(call, m.policy, detail::clock::now());
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
      detail::execute(fn, args, context, o);
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
  if (inline_as && opts.handoff_after.count() > 0 && !detail::to_pool &&
      ((io_holder.of == this && role->mine(io_holder.ticket)) || detail::pipe_keeps == this)) {
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
    if (on_io && !c.tracked) c.unwrapped = detail::execute_unwrapped(*c.fn, c.ev->args(), context, c.o);
    else detail::execute(*c.fn, c.ev->args(), context, c.o);
    need_lock = need_lock || c.tracked;
  }
  if (on_io) {
    thread_local detail::reply_batch replies;  // kept for its capacity
    for (auto& c : calls)
      if (!c.tracked)
        replies.add(c.o.identity, {io_ids.next(), c.o.channel}, c.unwrapped, c.o.name, c.o.packed_args.span());
    // Closed before the replies leave, as under the lock: whoever has one sees its call closed.
    for (std::size_t i = 0; i < replies.size(); ++i) closed_one();
    {
      std::lock_guard socket(router_mu);
      replies.each([&](const std::string& identity, std::span<const std::byte> body) { send_to(identity, body); });
    }
    replies.clear();
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

const std::pair<const std::string, detail::method_entry>* server::impl::bound_method(const event& ev) const {
  auto m = methods.find(ev.name);  // never a built-in: no bound method's name starts with '_'
  return m != methods.end() ? &*m : nullptr;
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
  if (auto p = pipes.find(identity); p != pipes.end()) return p->second.pipe->peer();
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
