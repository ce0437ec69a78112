// rpc::client over ZeroMQ. A blocking call runs on the calling thread over a DEALER of that thread's own. An
// asynchronous call is registered and sent by the calling thread over a shared DEALER (under a lock). Replies on it
// are read by the first thread waiting on one of its futures (the leader), which sleeps on the socket itself so
// that its own reply wakes it directly; by the I/O thread while no thread leads and somebody needs them promptly
// (a stream's consumer, a thread waiting behind the leader); and otherwise by the I/O thread when it wakes for
// the calls' heartbeats and time limits, which it keeps. The blocking calls are in zmq_call.cpp. See client.hpp and
// future.hpp.
#include "zmq_client.hpp"

#include <algorithm>

#include "access.hpp"
#include "reply.hpp"

namespace rpc {
namespace detail {
namespace {

thread_local const zmq_client* leading_here = nullptr;  // the client this thread leads for, if any

// The futures release() settles, swapped with `done` so that both keep their capacity. Reached through a call that
// is not inlined: GCC recomputes an inlined thread-local's address (a call to __tls_get_addr in a shared library)
// at every use.
[[gnu::noinline]] std::vector<settlement>& this_threads_settlements() {
  thread_local std::vector<settlement> settling;
  return settling;
}

// What glance() reads into (see above).
[[gnu::noinline]] std::vector<zmq::message_t>& this_threads_frames() {
  thread_local std::vector<zmq::message_t> frames;
  return frames;
}

}  // namespace

// Sends one event without waiting. Returns: false if the socket has no connection to queue it on (its handshake
// failed: our sockets queue without limit, so that is the only reason), where a blocking send would wait for ever.
// Throws: zmq::error_t for any other refusal.
bool send_body(zmq::socket_t& socket, const duct::buffer& body) {
  if (!detail::send_part(socket, zmq::const_buffer(), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
    return false;
  detail::send_part(socket, zmq::buffer(body.data(), body.size()), zmq::send_flags::dontwait);  // the rest follows the first part
  return true;
}

std::optional<event> decode_reply(const zmq::message_t& body) {
  std::optional<event> ev(std::in_place);  // decoded in place: an event is large to move
  try {
    detail::decode_event_into(std::as_bytes(std::span(static_cast<const char*>(body.data()), body.size())), *ev);
  } catch (const protocol_error&) {
    ev.reset();  // not an event: nothing to route it to
  }
  return ev;
}

zmq_client::~zmq_client() {
  {
    std::lock_guard lock(self->mu);
    self->client = nullptr;  // sources outliving the client no longer reach it
  }
  {
    std::lock_guard lock(mu);
    closing = true;
  }
  running = false;
  closing_signal.signal();  // the leader, if any, stops reading
  wake.signal();
  io.join();
  auto closed = [](const std::string& where) {
    return std::make_exception_ptr(closed_error(where + ": the client was closed"));
  };
  {
    std::unique_lock lock(mu);
    detail::effects fx;
    calls.fail_all(closed, fx);
    absorb(fx);
    release(lock);
  }
  reader->detach();  // the threads waiting on futures, all settled now, leave the client alone
}

std::shared_ptr<detail::stream_state> zmq_client::stream(std::string_view method, const duct::buffer& packed_args,
                                                         bool progress) {
  detail::stream_spec kind;
  kind.progress = progress;
  return open_stream(method, packed_args, kind).out;
}

detail::chunked_halves zmq_client::chunked(std::string_view method, const duct::buffer& packed_args, bool oneway) {
  detail::stream_spec kind;
  kind.chunked = true;
  kind.oneway = oneway;
  return open_stream(method, packed_args, kind);
}

// Registers and sends a call whose events go to a stream_state (and, for a chunked call, whose input goes from
// an upload_state): a stream, a call asking for progress, a chunked call.
detail::chunked_halves zmq_client::open_stream(std::string_view method, const duct::buffer& packed_args,
                                               detail::stream_spec kind) {
  check_size(method, packed_args.size());
  kind.window = opts.stream_window;
  kind.window_bytes = opts.stream_window_bytes;
  detail::call_table::stream_request r;
  bool wake_io = false;
  {
    std::lock_guard lock(mu);
    if (closing) throw closed_error(endpoint + ": " + std::string(method) + ": the client is closing");
    const auto now = detail::clock::now();
    // Its consumer needs its events promptly: the I/O thread reads them unless a leader does until it leaves.
    wake_io = now + opts.heartbeat < io_wakes_at || (!io_watching && !leading);
    r = calls.open_stream(method, packed_args.span(), spec(method, std::nullopt), kind, now);
  }
  // Attached without `mu`: a callback runs under the state's callback lock and then takes `mu`, so the two are
  // never taken in the other order. Nothing calls back before the caller has the state; events that arrive
  // meanwhile only fill it.
  const message_id id = r.id;
  r.halves.out->attach(
      [ref = self, id](std::size_t n) {
        std::lock_guard hold(ref->mu);
        if (ref->client) ref->client->grant(id, n);
      },
      [ref = self, id] {
        std::lock_guard hold(ref->mu);
        if (ref->client) ref->client->stop_stream(id);
      });
  if (r.halves.in) {
    r.halves.in->attach([ref = self, id, where = r.halves.out->where()](std::string_view event_name,
                                                                      std::span<const std::byte> args) {
      std::lock_guard hold(ref->mu);
      if (!ref->client) throw closed_error(where + ": the client was closed");
      return ref->client->send_chunk(id, event_name, args);
    });
  }
  try {
    send_async(r.body, method);
  } catch (const error&) {
    std::unique_lock lock(mu);
    fail(id, std::current_exception());
    release(lock);
  }
  if (wake_io) wake.signal();
  return r.halves;
}

// The writer of chunked call `id` sends an event of its input. Returns: false if the call has ended meanwhile.
// Throws: error if the event is over the size limit; lost_remote_error if the socket refused it, which also ends
// the call (as over a duct).
bool zmq_client::send_chunk(const message_id& id, std::string_view name, std::span<const std::byte> args) {
  std::optional<duct::buffer> body;
  {
    std::lock_guard lock(mu);
    if (over_size(args.size())) {
      const auto where = calls.where(id);
      if (!where) return false;  // it ended meanwhile: its upload_state was closed first
      throw too_big(*where, args.size());
    }
    body = calls.chunk(id, name, args);
    if (!body) return false;  // as above
  }
  try {
    send_async(*body);
  } catch (const error& e) {
    std::unique_lock lock(mu);
    const auto where = calls.where(id);
    auto why = std::make_exception_ptr(
        lost_remote_error((where ? *where : endpoint) + ": cannot send " + std::string(name) + ": " + e.what()));
    fail(id, why);
    release(lock);
    std::rethrow_exception(why);
  }
  return true;
}

void zmq_client::publish(std::string_view method, const duct::buffer& packed_args) {
  check_size(method, packed_args.size());
  duct::buffer body;
  {
    std::lock_guard lock(mu);
    if (closing) throw closed_error(endpoint + ": " + std::string(method) + ": the client is closing");
    body = calls.publish(method, packed_args.span());
  }
  send_async(body, method);
}

// The consumer took items: the server may send `n` more.
void zmq_client::grant(const message_id& id, std::size_t n) {
  std::optional<duct::buffer> body;
  {
    std::lock_guard lock(mu);
    body = calls.credit(id, n);
  }
  if (!body) return;  // it ended meanwhile
  try {
    send_async(*body);
  } catch (const error&) {
    // the socket refused it: the stream stalls and ends with the heartbeat or the consumer's time limit
  }
}

// The consumer dropped the stream: forget it, and tell the server if it listens.
void zmq_client::stop_stream(const message_id& id) {
  std::unique_lock lock(mu);
  detail::effects fx;
  calls.stop(id, fx);
  absorb(fx);
  release(lock);
}

// Unlocks `mu`, then settles the futures that were decided under it. The leader sleeps on the socket, not on its
// future: if another thread settled the leader's call, it wakes the leader. It looks after settling (see
// call_state::led): the leader may have started leading meanwhile.
void zmq_client::release(std::unique_lock<std::mutex>& lock) {
  // Swapped with `done`, so that both keep their capacity (a vector grown afresh per batch was a malloc per reply).
  // Emptied before this thread can come back here: settling runs nothing of ours that could.
  std::vector<detail::settlement>& now = this_threads_settlements();
  now.swap(done);
  lock.unlock();
  bool led = false;
  for (auto& d : now) {
    d.state->settle(std::move(d.value), std::move(d.error));
    led = led || d.state->led;
  }
  now.clear();
  if (led && leading_here != this) leader_wake.signal();
}

void zmq_client::absorb(detail::effects& fx) {
  for (const duct::buffer& body : fx.sends) {
    try {
      send_async(body);
    } catch (const error&) {
      // a missed heartbeat or follow-up is survivable: the heartbeats find a server that is gone
    }
  }
  fx.sends.clear();
  for (detail::settlement& d : fx.settles) done.push_back(std::move(d));
  fx.settles.clear();
}

void zmq_client::fail(const message_id& id, std::exception_ptr e) {
  detail::effects fx;
  calls.fail(id, std::move(e), fx);
  absorb(fx);
}

detail::call_spec zmq_client::spec(std::string_view method, std::optional<std::chrono::milliseconds> limit) const {
  detail::call_spec s;
  s.endpoint = endpoint;
  s.method = method;
  s.heartbeat = opts.heartbeat;
  if (limit) {
    s.deadline = detail::clock::now() + *limit;
    s.limit = *limit;
  }
  return s;
}

// Sends on the shared DEALER. While it sends, ZeroMQ may take the edge of the descriptor that the thread reading
// replies sleeps on: if input is waiting, that thread is woken. Throws: zmq::error_t.
void zmq_client::send_async(const duct::buffer& body, std::string_view where) {
  bool lead = false, io_reads = false;
  auto call = [&] { return where.empty() ? endpoint : endpoint + ": " + std::string(where); };
  {
    std::lock_guard lock(dealer_mu);
    // After a refused handshake ZeroMQ keeps the connection's queue but does not try again: what is sent there
    // would wait for ever (until the heartbeats gave up). A later handshake that succeeds clears the refusal.
    if (refusing.load(std::memory_order_relaxed)) {
      if (auto why = refusal()) throw connection_error(call(), "cannot send: " + *why);
    }
    try {
      ++dealer_uses;
      if (!send_body(dealer, body))
        throw connection_error(call(), "cannot send: " + refusal().value_or("no connection to the server is ready"));
    } catch (const zmq::error_t& e) {
      throw error(call() + ": " + e.what());
    }
    // Read under dealer_mu: a reader that starts later takes dealer_mu after us, and reads before it sleeps.
    lead = leading;
    io_reads = io_watching;
    if (!lead && !io_reads) return;  // nobody sleeps on the socket: asking ZeroMQ costs a system call for nothing
    ++dealer_uses;
    if (!detail::has_input(dealer)) return;
  }
  if (lead) leader_wake.signal();
  else wake.signal();
}

future zmq_client::start(std::string_view method, const duct::buffer& packed_args,
                         std::optional<std::chrono::milliseconds> limit) {
  check_size(method, packed_args.size());
  auto result = std::make_shared<detail::call_state>(reader);
  future f = detail::access::make_future(result);
  detail::call_spec s = spec(method, limit_of(limit));
  detail::call_table::request r;
  bool wake_io = false;
  {
    // Registered before it is sent, so that the I/O thread knows the reply when it comes.
    std::lock_guard lock(mu);
    if (closing) throw closed_error(s.where() + ": the client is closing");
    const auto now = detail::clock::now();
    wake_io = now + opts.heartbeat < io_wakes_at || (s.deadline && *s.deadline < io_wakes_at);
    r = calls.open(method, packed_args.span(), std::move(s), std::move(result), now);
  }
  try {
    send_async(r.body, method);
  } catch (const error&) {
    std::unique_lock lock(mu);
    fail(r.id, std::current_exception());
    release(lock);
  }
  if (wake_io) wake.signal();
  return f;
}

// With a server key and no key pair of its own, the client makes a fresh pair, which all its sockets share.
// Throws: error for a key that is not Z85.
client_options zmq_client::with_curve_keys(client_options o) {
  if (o.curve_server_key.empty()) return o;
  if (!is_curve_key(o.curve_server_key)) throw error("client_options::curve_server_key is not a Z85 key of 40 characters");
  if (o.curve_public_key.empty() && o.curve_secret_key.empty()) {
    curve_keypair mine = make_curve_keypair();
    o.curve_public_key = mine.public_key;
    o.curve_secret_key = mine.secret_key;
  }
  if (!is_curve_key(o.curve_secret_key) || curve_public_key(o.curve_secret_key) != o.curve_public_key)
    throw error("client_options::curve_public_key and curve_secret_key are not one Z85 key pair");
  return o;
}

zmq::socket_t zmq_client::make_socket(std::unique_ptr<detail::handshake_watch>& watch) {
  detail::check_endpoint(endpoint);
  zmq::socket_t socket(ctx, zmq::socket_type::dealer);
  // No limit on what is queued: the calls in flight are the caller's to bound. So a send that cannot queue means
  // there is no connection to queue on (its handshake failed), which send_body() reports instead of waiting.
  socket.set(zmq::sockopt::sndhwm, 0);
  watch = std::make_unique<detail::handshake_watch>(ctx, socket, !opts.curve_server_key.empty());
  if (!opts.curve_server_key.empty()) {  // before connect: the handshake is CURVE from its first byte
    socket.set(zmq::sockopt::curve_serverkey, opts.curve_server_key);
    socket.set(zmq::sockopt::curve_publickey, opts.curve_public_key);
    socket.set(zmq::sockopt::curve_secretkey, opts.curve_secret_key);
  }
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(opts.max_message_size));
  try {
    detail::retry_eintr([&] { socket.connect(endpoint); });
  } catch (const zmq::error_t& e) {
    throw error("cannot connect to " + endpoint + ": " + e.what());
  }
  return socket;
}

// The I/O thread. It sleeps in poll() until the calls' next heartbeat or time limit, and on the DEALER's descriptor
// too while somebody needs replies promptly and no leader reads them. ZeroMQ signals that descriptor by edges, which
// any thread touching the socket may consume: so it looks at ZMQ_EVENTS before sleeping, and a sender that sees
// input waiting wakes it (send_async()).
void zmq_client::loop() {
  std::vector<zmq::message_t> frames, bodies;
  while (running) {
    auto now = detail::clock::now();
    std::chrono::milliseconds wait(1000);
    bool watch = false;
    {
      std::lock_guard lock(mu);
      io_wakes_at = calls.next_due(now + wait);
      wait = detail::ms_until(io_wakes_at, now);
      watch = !leading && (followers > 0 || calls.streams() > 0);
      io_watching = watch;
    }
    if (watch) {
      std::lock_guard lock(dealer_mu);
      ++dealer_uses;
      if (detail::has_input(dealer)) wait = std::chrono::milliseconds(0);
    }
    pollfd fds[] = {{wake.fd(), POLLIN, 0}, {dealer_watch->fd(), POLLIN, 0}, {dealer_fd, POLLIN, 0}};
    detail::poll_fds(fds, watch ? 3 : 2, wait);
    const bool poked = (fds[0].revents & POLLIN) != 0;
    if (poked) wake.drain();
    std::optional<std::string> handshake;
    const bool heard = (fds[1].revents & POLLIN) != 0;
    if (heard) {
      handshake = dealer_watch->read();
      if (up.exchange(dealer_watch->connected()) != dealer_watch->connected() && up_changed) up_changed();
    }
    {
      std::lock_guard lock(dealer_mu);
      if (!leading) {
        (void)take_replies(frames, bodies);  // a full batch: the next loop looks again if anyone needs it
      } else if (watch || poked) {
        // A leader started meanwhile and reads from now on. But the edge it sleeps on may be gone: taken by this
        // thread's look at ZMQ_EVENTS, or by a sender who then woke this thread, not the leader. Pass it on.
        leader_wake.signal();
      }
    }
    std::unique_lock lock(mu);
    for (const auto& body : bodies) on_reply(body, detail::clock::now());
    bodies.clear();
    if (heard) {
      {
        std::lock_guard hold(refused_mu);
        refused = handshake;
        refusing = handshake.has_value();
      }
      if (handshake) fail_all(*handshake);
    }
    detail::effects fx;
    calls.tick(detail::clock::now(), fx);
    absorb(fx);
    release(lock);
  }
}

// Takes what is queued on the DEALER, a thousand replies at most, into `bodies` (dealer_mu held). Returns: whether
// the batch was full: more may be waiting, which no edge of the descriptor will announce. After a shorter batch,
// ZeroMQ signals the descriptor when the next reply comes.
bool zmq_client::take_replies(std::vector<zmq::message_t>& frames, std::vector<zmq::message_t>& bodies) {
  int i = 0;
  ++dealer_uses;
  for (; i < 1000 && detail::try_recv(dealer, frames); ++i)
    if (!frames.empty()) bodies.push_back(std::move(frames.back()));
  return i == 1000;
}

// A thread waiting on future `st`. The first one leads: it reads replies, settling every call they belong to, until
// its own is settled; sleeping on the socket, so that its reply wakes it directly. Others wait behind it; when it
// leaves, the I/O thread reads for them. It takes one reply at a time and leaves as soon as its own is settled,
// without looking for more: a read that finds nothing costs ZeroMQ two system calls, about a microsecond each on a
// virtual machine, so it reads until nothing is queued only when it has to sleep anyway (ZeroMQ signals the
// descriptor again only after a read found nothing). Whoever reads next reads before sleeping.
void zmq_client::read_for(detail::call_state& st, std::optional<detail::clock::time_point> until) {
  std::optional<std::uint64_t> found_nothing_at;
  if (glance(st, found_nothing_at)) return;
  {
    std::unique_lock lock(mu);
    if (st.settled()) return;
    if (leading || closing) {
      ++followers;
      lock.unlock();
      st.wait_settled(until);
      lock.lock();
      --followers;
      return;
    }
    leading = true;
    st.led = true;  // before it looks at st.settled() again
    leading_here = this;
  }
  for (;;) {
    bool got = false;
    {
      std::lock_guard lock(dealer_mu);
      // Unless glance() found nothing and nobody used the socket since: then the descriptor signals the next reply,
      // and reading first would only cost ZeroMQ a look at its queue (a system call) to find nothing again.
      if (found_nothing_at != dealer_uses) {
        ++dealer_uses;
        got = detail::try_recv(dealer, lead_frames);
      }
      found_nothing_at.reset();
    }
    if (got && !lead_frames.empty()) {
      std::unique_lock lock(mu);
      on_reply(lead_frames.back(), detail::clock::now());
      // The reply settles our own call: the lead ends in this same pass under `mu`, not in one more.
      const bool ours = std::any_of(done.begin(), done.end(), [&](const detail::settlement& d) { return d.state.get() == &st; });
      const bool wake_io = ours && step_down(st);
      release(lock);
      if (ours) {
        if (wake_io) wake.signal();
        return;
      }
    }
    if (st.settled() || !running) break;
    std::chrono::milliseconds wait(-1);
    if (until) {
      const auto now = detail::clock::now();
      if (now >= *until) break;
      wait = detail::ms_until(*until, now);
    }
    if (got) continue;
    pollfd fds[] = {{dealer_fd, POLLIN, 0}, {leader_wake.fd(), POLLIN, 0}, {closing_signal.fd(), POLLIN, 0}};
    detail::poll_fds(fds, 3, wait);
    if (fds[1].revents & POLLIN) leader_wake.drain();
  }
  bool wake_io = false;
  {
    std::lock_guard lock(mu);
    wake_io = step_down(st);
  }
  if (wake_io) wake.signal();
}

// Before taking the lead: a reply already queued is read without it, which costs neither the leader's flags nor its
// passes under `mu`. A thread asleep on the descriptor (the I/O thread, or a leader that started meanwhile) may have
// lost the descriptor's edge to this read: it is woken if more input waits, as a sender does (send_async()).
bool zmq_client::glance(detail::call_state& st, std::optional<std::uint64_t>& found_nothing_at) {
  if (st.settled()) return true;
  if (leading.load(std::memory_order_relaxed)) return false;  // the leader reads: wait behind it
  std::vector<zmq::message_t>& frames = this_threads_frames();
  bool got = false, lead = false, io_reads = false;
  {
    std::lock_guard lock(dealer_mu);
    ++dealer_uses;
    got = detail::try_recv(dealer, frames);
    if (!got) found_nothing_at = dealer_uses;
    lead = leading;
    io_reads = io_watching;
    if (got && (lead || io_reads)) ++dealer_uses;
    if (!got || (!lead && !io_reads) || !detail::has_input(dealer)) lead = io_reads = false;
  }
  if (lead) leader_wake.signal();
  else if (io_reads) wake.signal();
  if (!got || frames.empty()) return false;
  std::unique_lock lock(mu);
  on_reply(frames.back(), detail::clock::now());
  release(lock);
  return st.settled();
}

bool zmq_client::step_down(detail::call_state& st) {
  leading = false;
  st.led = false;
  leading_here = nullptr;
  return followers > 0 || calls.streams() > 0;  // they need a reader: the I/O thread
}

void zmq_client::fail_all(const std::string& reason) {
  detail::effects fx;
  calls.fail_all([&](const std::string& where) { return std::make_exception_ptr(connection_error(where, reason)); },
                 fx);
  absorb(fx);
}

void zmq_client::on_reply(const zmq::message_t& body, detail::clock::time_point now) {
  std::optional<event> ev = decode_reply(body);
  if (!ev) return;
  calls.on_event(*ev, now, replied);  // false: a late reply to a call that has ended, dropped
  absorb(replied);  // which empties it
}

}  // namespace detail

std::unique_ptr<client::impl> make_zmq_client(std::string_view endpoint, client_options opts) {
  return std::make_unique<detail::zmq_client>(endpoint, opts);
}

}  // namespace rpc
