// rpc::server's transports: the I/O role (whoever holds it receives on the ROUTER, sends, heartbeats and keeps
// the timers; see io_role.hpp), the pipes (duct links) whose reader threads hand events over, and sending: each
// locked step queues its events and flush()es them after letting go of the lock. See server_impl.hpp.
#include <rpc/server.hpp>

#include "access.hpp"
#include "broker_wire.hpp"
#include "server_impl.hpp"
#include "zmq_util.hpp"

namespace rpc {

using detail::outbound;
using detail::serving_mode;

namespace detail {
thread_local io_holding io_holder;
thread_local const server::impl* holding_replies = nullptr;
thread_local const server::impl* pipe_keeps = nullptr;
}  // namespace detail
using detail::holding_replies;
using detail::io_holder;

// ---- sending -------------------------------------------------------------------------------------------------------

server::impl::locked::~locked() {
  if (!lock_.owns_lock()) return;
  const bool waiting = !s_.router_out.empty() || s_.batch || s_.pipe_out_waiting();
  lock_.unlock();
  if (waiting) s_.wake.signal();
}

namespace {
// What a round keeps from one round to the next on its thread, for the capacity of its vectors. Per thread, not per
// role: a round leaves them empty, and a thread that lost the role mid-round may still be dispatching its calls
// while the next holder runs its own round. One thread-local, looked up once a round: a shared library reaches each
// of its thread-locals through a call (__tls_get_addr), at nearly every use.
struct round_scratch {
  std::vector<zmq::message_t> frames;
  std::vector<std::pair<std::string, zmq::message_t>> arrived;  // identity and body, as received
  struct decoded_event {
    std::string identity;
    std::shared_ptr<event> ev;
    zmq::message_t body;  // kept for its metadata: the peer's address, read once per peer
  };
  std::vector<decoded_event> decoded;
  std::vector<detail::inline_call> calls;
  std::vector<pollfd> fds;
  int last_taken = 0;  // how many events the last round that found any took
};

// Not inlined: GCC recomputes an inlined thread-local's address at every use rather than keep it.
[[gnu::noinline]] round_scratch& this_threads_round() {
  thread_local round_scratch scratch;
  return scratch;
}

[[gnu::noinline]] std::vector<std::pair<std::string, duct::buffer>>& this_threads_router_sends() {
  thread_local std::vector<std::pair<std::string, duct::buffer>> sends;
  return sends;
}
}  // namespace

void server::impl::locked::flush() {
  // On the role's thread. While it runs a handler the role may pass to another thread: after sending, it checks.
  const detail::io_holding holder = io_holder;  // thread-locals are looked up once (see round_scratch)
  const bool on_io = holder.of == &s_;
  bool wake_holder = s_.wake_io && !on_io;
  s_.wake_io = false;
  const bool full = s_.router_out_bytes >= 64 * 1024 || (s_.batch && s_.batch->body.size() >= 64 * 1024);
  if (s_.batch && (full || (on_io && detail::clock::now() - s_.batch->opened >= impl::batch_delay))) s_.close_batch();
  if (s_.batch && !s_.batch->io_told && !on_io) {  // a new batch: the I/O thread times it
    s_.batch->io_told = true;
    wake_holder = true;
  }
  std::vector<detail::server_pipe*> to_drain;
  for (auto& [p, box] : s_.pipe_out) {
    if (!box.events.empty() && !box.draining) {
      box.draining = true;
      to_drain.push_back(p);
    }
  }
  // Swapped with router_out, so both keep their capacity: a vector grown afresh for every batch was a string of
  // mallocs per reply. Cleared by send_router() before this thread comes back here.
  auto& router_sends = this_threads_router_sends();
  if (!defer_router_ || on_io || full) {
    router_sends.swap(s_.router_out);
    s_.router_io_asked = false;
    s_.router_out_bytes = s_.batch && !s_.batch->pipe ? s_.batch->body.size() : 0;
  } else if (!s_.router_out.empty() && !s_.router_io_asked) {
    s_.router_io_asked = true;
    wake_holder = true;
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
    else wake_holder = input || wake_holder;
  }
  // A handler run by the role's holder, whose role went to another thread meanwhile: that thread may sleep past
  // what this one queued, or input whose edge the sends took. (If the role goes after this check, its new holder
  // starts by reading, and computes its deadlines afresh.)
  if (on_io && !s_.role->mine(holder.ticket)) wake_holder = true;
  for (detail::server_pipe* p : to_drain) s_.drain(*p);
  if (wake_holder) s_.wake.signal();
}

bool server::impl::pipe_out_waiting() const {
  for (const auto& [p, box] : pipe_out)
    if (!box.events.empty() && !box.draining) return true;
  return false;
}

void server::impl::drain(detail::server_pipe& p) {
  std::deque<duct::buffer> sending;
  for (;;) {
    {
      std::lock_guard lock(mu);
      pipe_outbox& box = pipe_out[&p];
      if (box.events.empty()) {
        box.draining = false;
        return;
      }
      sending.swap(box.events);
    }
    for (const duct::buffer& body : sending) {
      try {
        p.send(body.span());
      } catch (const std::exception&) {
        ++dropped;  // the pipe broke: its reader tells the server, which forgets the calls from there
      }
    }
    sending.clear();
  }
}

void server::impl::send_to(const std::string& identity, std::span<const std::byte> body) {
  if (!brokers.empty() && send_via_broker(identity, body)) return;
  try {
    detail::send_part(router, zmq::buffer(identity), zmq::send_flags::sndmore);
    detail::send_part(router, zmq::const_buffer(), zmq::send_flags::sndmore);
    detail::send_part(router, zmq::buffer(body.data(), body.size()), zmq::send_flags::none);
  } catch (const zmq::error_t&) {
    ++dropped;  // the socket refused it: this event is lost, the server goes on
  }
}

bool server::impl::send_router(std::vector<std::pair<std::string, duct::buffer>>& sends, bool ask) {
  for (auto& [identity, body] : sends) send_to(identity, body.span());
  sends.clear();
  return ask && (detail::has_input(router) || (!brokers.empty() && brokers_have_input()));
}

// ---- the transports ---------------------------------------------------------------------------------------------------

detail::clock::duration server::impl::next_wait(detail::clock::time_point now) {
  auto next = now + std::chrono::seconds(1);
  if (batch) next = std::min(next, batch->opened + batch_delay);
  for (auto& [identity, table] : peers)
    if (auto d = table.next_deadline()) next = std::min(next, *d);
  if (auto d = jobs.next_deadline(opts.keep_results)) next = std::min(next, *d);
  if (!brokers.empty()) next = std::min(next, next_beat);
  for (const auto& [key, call] : running_calls)
    if (call.defer_at) next = std::min(next, *call.defer_at);
  io_wakes_at = next;
  deadline_noted = false;
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
  round_scratch& scratch = this_threads_round();
  auto& frames = scratch.frames;
  auto& arrived = scratch.arrived;
  auto& decoded = scratch.decoded;
  auto& calls = scratch.calls;
  int& last_taken = scratch.last_taken;
  const bool slept = !io_input.exchange(false);  // else it reads at once, without a system call to learn what it knows
  const bool in_zmq = quiet.load(std::memory_order_relaxed);
  if (slept && !in_zmq) {
    auto& fds = scratch.fds;
    fds.clear();
    fds.push_back({wake.fd(), POLLIN, 0});
    fds.push_back({detail::retry_eintr([&] { return router.get(zmq::sockopt::fd); }), POLLIN, 0});
    for (broker_conn& b : brokers)  // fixed once started, so safe to read without router_mu
      fds.push_back({detail::retry_eintr([&] { return b.dealer.get(zmq::sockopt::fd); }), POLLIN, 0});
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
    const timespec until{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    if (::ppoll(fds.data(), fds.size(), &until, nullptr) > 0 && (fds[0].revents & POLLIN)) wake.drain();
  }
  // Take what has arrived, but not without end: a flood from one client must not hold up heartbeats. Only the
  // socket is held while ZeroMQ is asked, and events are decoded before the server's lock is taken: handler
  // threads need that lock to complete their calls.
  //
  // A round reads until a read finds nothing, which ZeroMQ needs before it signals the descriptor again; such a
  // read costs two system calls. A round that slept first takes one event only, if the last round that found any
  // found one (a client calling one call at a time): its reply is sent before the next read, which must come
  // anyway (a send may take the descriptor's edge), so that read is the only one to find nothing, where reading on
  // would have made two. Whatever else came meanwhile, the next round takes at once, without sleeping.
  //
  // While the server is quiet (nothing runs but what this thread runs), no other thread wants the socket, and this
  // one waits inside ZeroMQ's own receive, socket held, for at most quiet_wait: ZeroMQ then looks at its queues
  // before it sleeps, so no read that finds nothing is needed, and it wakes on the socket's own signal, so no poll of
  // ours either. A call costs 7 system calls here, where the wait on the descriptor costs 11 and a raw loop's
  // blocking receive 8. A wait that runs out with nothing ends the quiet until an event comes: an idle server sleeps
  // on the descriptor, without a wake-up every quiet_wait. An event that had to be waited for most likely came alone
  // (that client calls one at a time): the round takes it only. One that was there at once may have others behind
  // it: the round reads on.
  {
    std::lock_guard lock(router_mu);
    auto take = [&] {
      if (frames.size() < 2) ++dropped;
      else arrived.emplace_back(frames.front().to_string(), std::move(frames.back()));
    };
    int most = slept && last_taken == 1 ? 1 : 1000;
    int i = 0;
    if (in_zmq) {
      const int ms = static_cast<int>(std::min(std::chrono::ceil<std::chrono::milliseconds>(wait), quiet_wait).count());
      if (ms != router_timeout) {
        router.set(zmq::sockopt::rcvtimeo, ms);
        router_timeout = ms;
      }
      const auto asked = detail::clock::now();
      if (!detail::recv_within(router, frames)) {
        most = 0;  // nothing came within the wait
        quiet_missed.store(true, std::memory_order_relaxed);
      } else {
        take();
        i = 1;
        io_input = true;  // a wait on the descriptor (if the next round is not quiet) needs a read first
        if (last_taken == 1 && detail::clock::now() - asked >= std::chrono::microseconds(5)) most = 1;
      }
    }
    for (; i < most && detail::try_recv(router, frames); ++i) take();
    if (i > 0) {
      last_taken = i;
      quiet_missed.store(false, std::memory_order_relaxed);
    }
    if (most > 0 && i == most) io_input = true;  // it stopped before a read found nothing: more may be waiting
    if (!brokers.empty() && receive_brokers(arrived, frames)) io_input = true;
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
    // New calls may be quick calls (server_quick.cpp) while this thread holds the role.
    const detail::marked<const impl*> dispatching(detail::quick_for,
                                                  opts.handoff_after.count() > 0 && role->mine(t) ? this : nullptr);
    const auto now = detail::clock::now();  // the round's events arrived together
    const std::string* last = nullptr;
    for (auto& [identity, ev, body] : decoded) {
      // Read once per peer (and not looked up again for the next event of a batch from the same one); with CURVE
      // on every message, since the key decides whose jobs a request reaches and a client may choose its routing
      // id, even one a client that left had.
      if (zap || !last || *last != identity) {
        if (auto [a, fresh] = addresses.try_emplace(identity); fresh || zap) {
          if (auto b = brokers.empty() ? std::nullopt : broker_of(identity))  // the broker vouches for its client's key
            a->second = {"via rpc-broker " + brokers[b->first].endpoint, std::string(detail::client_key(b->second))};
          else
            a->second = {detail::peer_address(body), detail::peer_key(body)};
        }
      }
      last = &identity;
      on_event(identity, std::move(ev), now);
    }
    calls.swap(inline_calls);
    {
      std::lock_guard k(kept_mu);
      for (auto& c : io_calls) kept.push_back(std::move(c));
      if (quick.empty()) quick.swap(quick_calls);  // the usual case: no copying
      else for (auto& q : quick_calls) quick.push_back(std::move(q));
    }
    io_calls.clear();
    quick_calls.clear();
    g.flush();  // after kept_mu: flushing takes `mu` again (drain())
  }
  decoded.clear();
  run_inline(calls, true);  // the replies leave together, in one pass over the socket
  if (!run_quick_calls(t) || !run_io_calls(t)) return false;
  locked g(*this);
  if (mode == serving_mode::aborting) abort_running();
  const auto now = detail::clock::now();
  const bool beat = !brokers.empty() && now >= next_beat;
  if (beat) next_beat = now + opts.heartbeat;
  // tick() and next_wait() go over every open channel. Nothing is due before io_wakes_at unless a deadline was
  // noted since (every path that sets one notes it: the holder could not sleep right otherwise), or a batch of
  // stream items waits: else the round skips both, which a round per call (a client calling one at a time) would
  // pay for over every open channel of every client.
  if (now >= io_wakes_at || deadline_noted || batch) {
    tick(now);
    wait = next_wait(now);
  } else {
    wait = io_wakes_at - now;
  }
  quiet.store(!quiet_missed.load(std::memory_order_relaxed) && mode == serving_mode::serving && brokers.empty() &&
                  pipes.empty() && running_calls.empty() && router_out.empty() && !batch && pool->idle(),
              std::memory_order_relaxed);
  g.flush();  // what this round and other threads queued goes before the next sleep
  if (beat) {
    std::lock_guard lock(router_mu);
    tell_brokers(detail::cmd_heartbeat);
  }
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
    const auto counted = pool->try_begin(c.client);
    if (!counted) {  // others wait their turn, or the bounds are reached: it waits with them
      dispatch(c);
      continue;
    }
    role->enter(t);
    holding_replies = this;
    c.job();
    holding_replies = nullptr;
    c.job = nullptr;  // its captures go now, as a pool thread's would
    pool->end(counted);
    if (!role->leave(t)) {  // it ran long: the role, and the calls kept behind it (on_vacated()), went on
      io_holder = {};       // this thread is a pool thread again
      send_held();          // its own reply, held after the monitor sent the others
      return false;
    }
  }
  send_held();
  return true;
}

namespace {
[[gnu::noinline]] std::vector<detail::outbound>& this_threads_held() {  // see round_scratch
  thread_local std::vector<detail::outbound> replies;
  return replies;
}
}  // namespace

void server::impl::send_held() {
  std::vector<detail::outbound>& replies = this_threads_held();
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
  hand_on_quick();
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

// A pipe's calls run where they arrive, as on the ROUTER: its reader runs a call that may start at once itself,
// lending the pipe's role (server_pipe::lend(); a link's, link_core.hpp), and a free thread reads the pipe
// meanwhile if the call runs long. What on_pipe_event() leaves for the thread waits in these until
// run_pipe_calls(), which a handler calling out over the same duct may re-enter (link_core::call()): it takes them
// out before running any.
namespace {
thread_local std::vector<detail::inline_call> pipe_inline;
thread_local std::vector<detail::io_call> pipe_kept;
}  // namespace

void server::impl::on_pipe_event(detail::server_pipe& from, std::shared_ptr<event> ev, bool keep) {
  locked g(*this);
  const detail::marked<const impl*> keeping(detail::pipe_keeps, keep ? this : nullptr);  // for this event only
  on_event(from.identity(), std::move(ev), detail::clock::now());
  for (auto& c : inline_calls) pipe_inline.push_back(std::move(c));
  inline_calls.clear();
  for (auto& c : io_calls) pipe_kept.push_back(std::move(c));
  io_calls.clear();
  g.flush();
}

void server::impl::run_pipe_calls(detail::server_pipe& from) {
  if (pipe_inline.empty() && pipe_kept.empty()) return;
  std::vector<detail::inline_call> calls;
  std::vector<detail::io_call> mine;
  calls.swap(pipe_inline);
  mine.swap(pipe_kept);
  run_inline(calls, false);
  for (auto& c : mine) {
    const auto counted = pool->try_begin(c.client);
    if (!counted) {  // others wait their turn, or the bounds are reached: it waits with them
      dispatch(c);
      continue;
    }
    from.lend();
    c.job();
    c.job = nullptr;  // its captures go now, as a pool thread's would
    pool->end(counted);
    from.reclaim();
  }
}

void server::impl::on_pipe_vacated(std::function<void()> relieve) { pool->vacate(std::move(relieve)); }

void server::impl::on_pipe_closed(detail::server_pipe& from) {
  locked g(*this);
  drop_peer(from.identity());
  g.flush();
}

void server::impl::send(const std::string& identity, const event_header& h, std::string_view name,
                        std::span<const std::byte> args) {
  close_batch();  // what was queued before this leaves before it
  duct::buffer body = encode_event_packed(h, name, args);
  if (auto p = pipes.find(identity); p != pipes.end()) pipe_out[p->second.pipe].events.push_back(std::move(body));
  else {
    router_out_bytes += body.size();
    router_out.emplace_back(identity, std::move(body));
  }
}

void server::impl::queue_item(const std::string& identity, const message_id& channel, bool stop,
                              std::span<const std::byte> item) {
  if (batch && (batch->identity != identity || !(batch->channel == channel))) close_batch();
  if (!batch) {
    auto p = pipes.find(identity);
    event_header h{ids.next(), channel};
    h.accepts_stop = stop;
    duct::buffer head = encode_event_packed(h, "STREAM_BATCH", {});
    batch.emplace(open_batch{identity, channel, p == pipes.end() ? nullptr : p->second.pipe, {head.begin(), head.end()},
                             head.size() + 1, 0, detail::clock::now()});
    batch->body.push_back(std::byte{0xdd});  // array32: its count is patched in when the batch closes
    batch->body.resize(batch->body.size() + 4);
  }
  batch->body.insert(batch->body.end(), item.begin(), item.end());
  ++batch->count;
  if (!batch->pipe) router_out_bytes += item.size();
}

void server::impl::close_batch() {
  if (!batch) return;
  std::vector<std::byte>& body = batch->body;
  for (int i = 0; i < 4; ++i)  // big-endian, as msgpack has it
    body[batch->count_at + static_cast<std::size_t>(i)] = static_cast<std::byte>(batch->count >> (24 - 8 * i));
  duct::buffer packed{std::span<const std::byte>(body)};
  if (batch->pipe) pipe_out[batch->pipe].events.push_back(std::move(packed));
  else router_out.emplace_back(std::move(batch->identity), std::move(packed));
  batch.reset();
}

}  // namespace rpc
