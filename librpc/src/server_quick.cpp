// rpc::server's quick calls: a plain call to a pool method, received by the I/O role's holder, runs on the holder
// with none of a tracked call's bookkeeping (no channel, no running-call entry, no job to queue), and its reply
// leaves with the others of the holder's round. Nothing can reach such a call while it runs: the holder is the only
// thread that reads. If it outlasts the budget, the monitor hands the role on, and hand_on_quick() tracks it as
// start_call() would have (channel, running call, deferral deadline, stop state), so the next holder sends its
// heartbeats, defers or cancels it; the quick calls waiting behind it start the long way, on the pool. The holder
// and the monitor meet under kept_mu: whoever comes first decides whether the reply leaves the quick way or
// through complete(). What a client sends on a quick call's channel while it runs untracked (it could only be in the
// same batch: a zerorpc client's first heartbeat comes a whole period after its request) is dropped and counted as
// for a channel not open, and a second request reusing its id runs as well, answered on the same channel: both
// touch that client's own call only. See server_impl.hpp.
#include "server_impl.hpp"

namespace rpc {

using detail::outbound;
using detail::serving_mode;

namespace detail {
thread_local const server::impl* quick_for = nullptr;
thread_local bool to_pool = false;
}  // namespace detail

bool server::impl::may_run_quick(const event& ev, const detail::method_entry& m, detail::channel_table& table) const {
  if (detail::quick_for != this) return false;
  if (m.where != run_on::pool || m.streams || m.reads || (m.reports && ev.header.wants_progress)) return false;
  // Deferred at once, or sooner than the role could pass on: the long way, where its deadline is kept from the start.
  if (ev.header.accepts_deferred &&
      (m.policy == defer_policy::always ||
       (m.policy == defer_policy::after_budget && opts.defer_after <= 2 * opts.handoff_after)))
    return false;
  return !table.find(ev.header.id) && table.size() < opts.per_client.open_calls;
}

namespace {
// Looked up once per use, not inlined (see round_scratch, server_io.cpp).
[[gnu::noinline]] detail::reply_batch& this_threads_replies() {
  thread_local detail::reply_batch replies;
  return replies;
}

// Starts quick call `q` the long way, on the pool (`mu` held): it is among the open calls already.
void start_long_way(server::impl& s, detail::quick_call& q, detail::clock::time_point now) {
  const detail::marked<bool> pooled(detail::to_pool, true);
  detail::channel_table& table = s.peers.try_emplace(q.identity, s.opts.heartbeat).first->second;
  s.open_call(q.identity, table, std::move(q.ev), now, true);
}
}  // namespace

// No lock per call. The monitor reaches `quick`, quick_running, quick_held and `q` only in hand_on_quick(), after it
// took the role from a handler that ran long (between enter() and leave()): what this thread wrote before enter()
// it sees (the role's state is seq_cst), and once leave() has failed this thread writes none of them again but
// under kept_mu. The next holder starts after hand_on_quick() has returned (pool->vacate()). The pool's count
// passes from one call to the next without its lock while nothing waits there (fair_pool::go_on()).
//
// Replies leave in groups of reply_group, not all at the end of the run: the ZeroMQ I/O thread then writes the
// first ones while this thread runs the next calls, as a raw loop's sending each reply at once lets it. Each group
// costs a pass under kept_mu and the socket's lock. In A/Bs of 80 to 120 alternating rounds, 16 in flight, groups of
// 4 ran at 1.03x to 1.07x the rate of holding them all over ipc (four A/Bs; 1.00x in a fifth, across two builds of
// the library) and 1.01x to 1.03x over tcp; one at a time 1.02x, groups of 2 0.99x to 1.03x, of 8 no better.
bool server::impl::run_quick_calls(detail::io_role::ticket t) {
  detail::quick_call q;
  detail::fair_pool::counted counted;  // the call that ran last, still counted as running
  bool ok = false;
  outbound o;
  for (;;) {
    if (counted) {  // it ended within the budget: nothing else knew of it (hand_on_quick() did not run)
      quick_running.store(nullptr, std::memory_order_relaxed);
      quick_held.add(std::move(q.identity), {io_ids.next(), q.ev->header.id}, ok, o.name, o.packed_args.span());
      if (quick_held.size() >= reply_group) send_quick_held();
    }
    if (quick_next == quick.size()) {  // all taken: emptied, keeping its capacity
      quick.clear();
      quick_next = 0;
      break;
    }
    q = std::move(quick[quick_next++]);
    counted = pool->go_on(counted, q.client);
    if (!counted) {  // others wait their turn, or the bounds are reached: it waits with them
      locked g(*this);
      start_long_way(*this, q, detail::clock::now());
      g.flush();
      continue;
    }
    if (q.m->stops) q.stop = std::stop_source();  // else it could not tell: no stop state is made for it
    q.started = detail::clock::now();
    quick_running.store(&q, std::memory_order_relaxed);  // published by enter()
    role->enter(t, q.started);
    o = outbound{};
    o.name = "OK";
    detail::call_context context{q.stop.get_token(), nullptr, nullptr, nullptr, std::move(q.peer)};
    ok = detail::execute_unwrapped(q.m->fn, q.ev->args(), context, o);
    if (role->leave(t)) continue;
    // It ran long: the role went on, and the calls waiting behind it to the pool (hand_on_quick()), which also
    // sends the replies held before it.
    bool tracked = false;
    {
      std::lock_guard k(kept_mu);
      tracked = q.tracked;
      // Unless hand_on_quick() came first (and the next holder may be running a call of its own by now).
      detail::quick_call* mine = &q;
      quick_running.compare_exchange_strong(mine, nullptr);
    }
    pool->end(counted);
    if (ok) o.packed_args = detail::ok_args(o.packed_args);
    {
      locked g(*this);
      if (tracked) {  // as any call's
        o.identity = q.identity;
        o.channel = q.ev->header.id;
        complete(std::move(o));
      } else {  // the ids are the next holder's now, so under `mu`
        send(q.identity, {ids.next(), q.ev->header.id}, o.name, o.packed_args.span());
        closed_one();
      }
      g.flush();
    }
    detail::io_holder = {};
    return false;
  }
  if (counted) pool->end(counted);
  send_quick_held();
  return true;
}

void server::impl::send_quick_held() {
  detail::reply_batch& replies = this_threads_replies();  // kept for its capacity, swapped with quick_held's
  {
    std::lock_guard k(kept_mu);
    if (quick_held.empty()) return;
    std::swap(replies, quick_held);
  }
  // Closed before the replies leave, as under the lock: whoever has an answer sees its call closed.
  for (std::size_t i = 0; i < replies.size(); ++i) closed_one();
  {
    std::lock_guard socket(router_mu);
    replies.each([&](const std::string& identity, std::span<const std::byte> body) { send_to(identity, body); });
  }
  replies.clear();
  io_input = true;  // the sends may have taken the descriptor's edge: the holder reads before it sleeps
}

void server::impl::hand_on_quick() {
  std::vector<detail::quick_call> waiting;
  {
    locked g(*this);
    const auto now = detail::clock::now();
    {
      std::lock_guard k(kept_mu);
      waiting.assign(std::make_move_iterator(quick.begin() + static_cast<std::ptrdiff_t>(quick_next)),
                     std::make_move_iterator(quick.end()));
      quick.clear();
      quick_next = 0;
      if (detail::quick_call* q = quick_running.exchange(nullptr)) {
        detail::channel_table& table = peers.try_emplace(q->identity, opts.heartbeat).first->second;
        // Unless a second request took its id meanwhile: then it ends untracked, as it began.
        if (detail::channel* ch = table.open(q->ev->header.id, now)) {
          note_deadline(ch->beat.next_deadline());
          detail::running_call& call = running_calls[detail::call_key{q->identity, q->ev->header.id}];
          call.method = *q->method;
          call.stop = q->stop;
          // As start_call() would have (never `always` here: may_run_quick() sends those the long way).
          if (q->ev->header.accepts_deferred && q->m->policy != defer_policy::immediate)
            schedule_deferral(call, q->m->policy, q->started);
          q->tracked = true;
        }
      }
    }
    for (auto& q : waiting) start_long_way(*this, q, now);
    g.flush();
  }
  send_quick_held();
}

}  // namespace rpc
