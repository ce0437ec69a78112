// rpc::client over ZeroMQ: callers hand requests to an I/O thread that owns the DEALER socket, keeps each open
// call's heartbeat and routes replies to their futures. See client.hpp.
#include <rpc/client.hpp>

#include <atomic>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <rpc/event.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "channel.hpp"
#include "wakeup.hpp"
#include "zmq_util.hpp"

namespace rpc {
namespace {

struct open_call {
  std::string method;
  std::string token;  // set once the server deferred the call: we are now waiting on this token
  std::promise<duct::value> result;
  std::optional<detail::clock::time_point> deadline;
  std::chrono::milliseconds limit{0};
};

struct request {
  message_id id;
  duct::buffer body;
  open_call call;
};

std::string as_string(const msgpack::object& o) {
  if (o.type == msgpack::type::STR) return {o.via.str.ptr, o.via.str.size};
  if (o.type == msgpack::type::BIN) return {o.via.bin.ptr, o.via.bin.size};
  if (o.type == msgpack::type::NIL) return {};
  std::string json;
  duct::write_json(o, json, true);
  return json;
}

enum class reply { alive, result, deferred };

// What a reply event means for its call: `result` set for OK; `token` set for DEFERRED (the server answers a call
// that ran past its budget with a token, only because we announced we understand that); alive for events that only
// show the server is there (_zpc_hb, _zpc_more). Throws: the call's error for ERR, a stream, or anything unexpected.
reply settle(const event& ev, const std::string& where, duct::value& result, std::string& token) {
  const msgpack::object& args = ev.args();
  if (ev.name == "_zpc_hb" || ev.name == "_zpc_more") return reply::alive;
  if (ev.name == "OK" || ev.name == "DEFERRED") {
    if (args.type != msgpack::type::ARRAY || args.via.array.size < 1)
      throw protocol_error(where + ": " + ev.name + " without a value");
    if (ev.name == "OK") {
      result = duct::value(msgpack::clone(args.via.array.ptr[0]));
      return reply::result;
    }
    if (args.via.array.ptr[0].type != msgpack::type::STR) throw protocol_error(where + ": DEFERRED without a token");
    token = args.via.array.ptr[0].as<std::string>();
    return reply::deferred;
  }
  if (ev.name == "ERR") {
    std::string name = "RemoteError", message, traceback;
    if (args.type == msgpack::type::ARRAY) {
      if (args.via.array.size > 0) name = as_string(args.via.array.ptr[0]);
      if (args.via.array.size > 1) message = as_string(args.via.array.ptr[1]);
      if (args.via.array.size > 2) traceback = as_string(args.via.array.ptr[2]);
    }
    if (name == "NameError") throw unknown_method_error(name, message, traceback);
    if (name == "Cancelled") throw cancelled_error(name, message, traceback);
    if (name == "ShuttingDown") throw shutting_down_error(name, message, traceback);
    if (name == "StillRunning") throw still_running_error(name, message, traceback);
    if (name == "UnknownToken") throw unknown_token_error(name, message, traceback);
    throw remote_error(name, message, traceback);
  }
  if (ev.name == "STREAM" || ev.name == "STREAM_DONE")
    throw protocol_error(where + ": the method answered with a stream, which call() cannot return");
  throw protocol_error(where + ": unexpected event " + ev.name);
}

// How long one _ductrpc_wait asks the server to hold: the call's remaining time, or a minute at a time.
double wait_seconds(std::optional<detail::clock::time_point> deadline) {
  if (!deadline) return 60.0;
  return std::max(0.0, std::chrono::duration<double>(*deadline - detail::clock::now()).count());
}

duct::buffer wait_args(const std::string& token, double seconds) {
  duct::pack_buffer out;
  msgpack::pack(out, std::make_tuple(token, seconds));
  return duct::buffer(std::as_bytes(std::span(out.data(), out.size())));
}

event_header request_header(message_id id) {
  event_header h{std::move(id)};
  h.accepts_deferred = true;
  return h;
}

void send_body(zmq::socket_t& socket, const duct::buffer& body) {
  detail::send_part(socket, zmq::const_buffer(), zmq::send_flags::sndmore);
  detail::send_part(socket, zmq::buffer(body.data(), body.size()), zmq::send_flags::none);
}

std::optional<event> decode_reply(const zmq::message_t& body) {
  try {
    return decode_event(std::as_bytes(std::span(static_cast<const char*>(body.data()), body.size())));
  } catch (const protocol_error&) {
    return std::nullopt;  // not an event: nothing to route it to
  }
}

// A calling thread's own socket, for blocking calls.
struct direct_socket {
  zmq::socket_t socket;
  id_generator ids;
};

}  // namespace

struct client::impl {
  impl(std::string_view ep, client_options o) : opts(o), endpoint(ep), dealer(make_socket()) {
    io = std::thread([this] { loop(); });
  }

  client_options opts;
  std::string endpoint;
  zmq::context_t ctx{1};
  zmq::socket_t dealer;
  detail::wakeup wake;
  detail::wakeup closing_signal;  // written once on close and never drained: wakes every blocked call()
  std::mutex sockets_mu;
  std::unordered_map<std::thread::id, std::unique_ptr<direct_socket>> sockets;  // guarded by sockets_mu
  std::mutex mu;
  std::vector<request> inbox;  // guarded by mu
  id_generator ids;            // guarded by mu
  bool closing = false;        // guarded by mu
  std::atomic<bool> running{true};
  std::thread io;

  // Owned by the I/O thread.
  detail::channel_table channels{opts.heartbeat};
  std::unordered_map<message_id, open_call, message_id_hash> calls;
  id_generator hb_ids;

  void loop();
  zmq::socket_t make_socket();
  direct_socket& my_socket();
  void on_reply(const zmq::message_t& body, detail::clock::time_point now);
  void fail(const message_id& id, std::exception_ptr e);
  void wait_on_token(open_call call, const std::string& token);
  void tick(detail::clock::time_point now);
};

client::client(std::string_view endpoint, client_options opts)
    : impl_(std::make_unique<impl>(endpoint, opts)) {}

client::~client() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->closing = true;
  }
  impl_->running = false;
  impl_->closing_signal.signal();
  impl_->wake.signal();
  impl_->io.join();
  auto closed = [&](const std::string& method) {
    return std::make_exception_ptr(closed_error(impl_->endpoint + ": " + method + ": the client was closed"));
  };
  for (auto& [id, call] : impl_->calls) call.result.set_exception(closed(call.method));
  for (auto& r : impl_->inbox) r.call.result.set_exception(closed(r.call.method));
}

const std::string& client::endpoint() const noexcept { return impl_->endpoint; }

std::future<duct::value> client::start_async(std::string_view method, duct::buffer packed_args,
                                             std::optional<std::chrono::milliseconds> limit) {
  if (!limit) limit = impl_->opts.timeout;
  request r;
  r.call.method = std::string(method);
  if (limit) {
    r.call.deadline = detail::clock::now() + *limit;
    r.call.limit = *limit;
  }
  std::future<duct::value> f = r.call.result.get_future();
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->closing) throw closed_error(impl_->endpoint + ": " + r.call.method + ": the client is closing");
    r.id = impl_->ids.next();
    r.body = encode_event_packed(request_header(r.id), method, packed_args.span());
    impl_->inbox.push_back(std::move(r));
  }
  impl_->wake.signal();
  return f;
}

zmq::socket_t client::impl::make_socket() {
  zmq::socket_t socket(ctx, zmq::socket_type::dealer);
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(opts.max_message_size));
  try {
    socket.connect(endpoint);
  } catch (const zmq::error_t& e) {
    throw error("cannot connect to " + endpoint + ": " + e.what());
  }
  return socket;
}

direct_socket& client::impl::my_socket() {
  std::lock_guard lock(sockets_mu);
  auto& slot = sockets[std::this_thread::get_id()];
  if (!slot) slot = std::make_unique<direct_socket>(direct_socket{make_socket(), {}});
  return *slot;
}

void client::impl::loop() {
  std::vector<zmq::message_t> frames;
  while (running) {
    auto now = detail::clock::now();
    std::chrono::milliseconds wait(1000);
    auto until = [&](detail::clock::time_point t) { wait = std::min(wait, detail::ms_until(t, now)); };
    if (auto d = channels.next_deadline()) until(*d);
    for (const auto& [id, call] : calls)
      if (call.deadline) until(*call.deadline);
    zmq::pollitem_t items[] = {{dealer.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, wake.fd(), ZMQ_POLLIN, 0}};
    detail::poll_items(items, 2, wait);
    if (items[1].revents & ZMQ_POLLIN) wake.drain();

    std::vector<request> fresh;
    {
      std::lock_guard lock(mu);
      fresh.swap(inbox);
    }
    for (auto& r : fresh) {
      try {
        send_body(dealer, r.body);
      } catch (const zmq::error_t& e) {
        r.call.result.set_exception(std::make_exception_ptr(error(endpoint + ": " + r.call.method + ": " + e.what())));
        continue;
      }
      channels.open(r.id, detail::clock::now());
      calls.emplace(r.id, std::move(r.call));
    }
    for (int i = 0; i < 1000 && detail::try_recv(dealer, frames); ++i)
      if (!frames.empty()) on_reply(frames.back(), detail::clock::now());
    tick(detail::clock::now());
  }
}

// A blocking call the server deferred: wait on its token, a held _ductrpc_wait at a time, until the outcome or the
// call's own deadline.
duct::value client::collect(const std::string& token, std::optional<std::chrono::steady_clock::time_point> deadline,
                            const std::string& where, std::optional<std::chrono::milliseconds> limit) {
  for (;;) {
    if (deadline && detail::clock::now() >= *deadline)
      throw timeout_error(where + ": no result within " + std::to_string(limit->count()) + " ms");
    try {
      // No client-side limit on the wait itself: the server answers at the wait's limit, and heartbeats cover the rest.
      return call_here("_ductrpc_wait", wait_args(token, wait_seconds(deadline)), std::chrono::milliseconds(-1));
    } catch (const still_running_error&) {
      // the wait's limit passed before the call ended: ask again, or give up at our deadline (checked above)
    }
  }
}

duct::value client::call_here(std::string_view method, const duct::buffer& packed_args,
                               std::optional<std::chrono::milliseconds> limit) {
  impl& c = *impl_;
  if (!limit) limit = c.opts.timeout;
  if (limit && limit->count() < 0) limit.reset();  // -1: explicitly no limit
  const std::string where = c.endpoint + ": " + std::string(method);
  if (!c.running) throw closed_error(where + ": the client is closing");
  direct_socket& mine = c.my_socket();
  const message_id id = mine.ids.next();
  auto now = detail::clock::now();
  std::optional<detail::clock::time_point> deadline;
  if (limit) deadline = now + *limit;
  detail::heartbeat beat(c.opts.heartbeat, now);
  send_body(mine.socket, encode_event_packed(request_header(id), method, packed_args.span()));
  std::vector<zmq::message_t> frames;
  for (;;) {
    now = detail::clock::now();
    auto until = beat.next_deadline();
    if (deadline) until = std::min(until, *deadline);
    auto wait = detail::ms_until(until, now);
    zmq::pollitem_t items[] = {{mine.socket.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, c.closing_signal.fd(), ZMQ_POLLIN, 0}};
    detail::poll_items(items, 2, wait);
    if (items[1].revents & ZMQ_POLLIN) throw closed_error(where + ": the client was closed");
    while (detail::try_recv(mine.socket, frames)) {
      if (frames.empty()) continue;
      std::optional<event> ev = decode_reply(frames.back());
      // Replies to earlier calls of this thread that timed out are ignored, like any event of an unknown channel.
      if (!ev || ev->header.response_to != id) continue;
      beat.heard(detail::clock::now());
      duct::value result;
      std::string token;
      switch (settle(*ev, where, result, token)) {
        case reply::alive: break;
        case reply::result: return result;
        case reply::deferred: return collect(token, deadline, where, limit);
      }
    }
    now = detail::clock::now();
    if (deadline && now >= *deadline)
      throw timeout_error(where + ": no result within " + std::to_string(limit->count()) + " ms");
    if (beat.lost(now))
      throw lost_remote_error(where + ": lost remote after " + std::to_string(2 * c.opts.heartbeat.count()) +
                              " ms without a heartbeat");
    if (beat.send_due(now)) {
      send_body(mine.socket, encode_event_packed({mine.ids.next(), id}, "_zpc_hb", detail::heartbeat_args().span()));
      beat.sent(now);
    }
  }
}

void client::impl::fail(const message_id& id, std::exception_ptr e) {
  auto it = calls.find(id);
  if (it == calls.end()) return;
  it->second.result.set_exception(std::move(e));
  calls.erase(it);
  channels.close(id);
}

void client::impl::on_reply(const zmq::message_t& body, detail::clock::time_point now) {
  std::optional<event> ev = decode_reply(body);
  if (!ev || !ev->header.response_to) return;
  const message_id& id = *ev->header.response_to;
  detail::channel* ch = channels.find(id);
  auto call = calls.find(id);
  if (!ch || call == calls.end()) return;  // a late reply to a call that timed out
  ch->beat.heard(now);
  try {
    duct::value result;
    std::string token;
    switch (settle(*ev, endpoint + ": " + call->second.method, result, token)) {
      case reply::alive: return;
      case reply::result:
        call->second.result.set_value(std::move(result));
        break;
      case reply::deferred: wait_on_token(std::move(call->second), token); break;
    }
  } catch (const still_running_error&) {
    if (call->second.token.empty()) {  // a StillRunning the caller asked for (its own _ductrpc_wait)
      fail(id, std::current_exception());
      return;
    }
    std::string token = call->second.token;
    wait_on_token(std::move(call->second), token);  // the wait's own limit passed: ask again
  } catch (...) {
    fail(id, std::current_exception());
    return;
  }
  calls.erase(id);
  channels.close(id);
}

// Goes on waiting for a deferred call on a fresh channel: _ductrpc_wait, held by the server.
void client::impl::wait_on_token(open_call call, const std::string& token) {
  if (call.deadline && detail::clock::now() >= *call.deadline) {
    call.result.set_exception(std::make_exception_ptr(timeout_error(
        endpoint + ": " + call.method + ": no result within " + std::to_string(call.limit.count()) + " ms")));
    return;
  }
  message_id id = hb_ids.next();
  call.token = token;
  try {
    send_body(dealer, encode_event_packed(request_header(id), "_ductrpc_wait",
                                          wait_args(token, wait_seconds(call.deadline)).span()));
  } catch (const zmq::error_t& e) {
    call.result.set_exception(std::make_exception_ptr(error(endpoint + ": " + call.method + ": " + e.what())));
    return;
  }
  channels.open(id, detail::clock::now());
  calls.emplace(std::move(id), std::move(call));
}

void client::impl::tick(detail::clock::time_point now) {
  std::vector<message_id> expired;
  for (const auto& [id, call] : calls)
    if (call.deadline && now >= *call.deadline) expired.push_back(id);
  for (const auto& id : expired) {
    const open_call& c = calls.at(id);
    fail(id, std::make_exception_ptr(timeout_error(endpoint + ": " + c.method + ": no result within " +
                                                   std::to_string(c.limit.count()) + " ms")));
  }
  for (const message_id& id : channels.lost(now)) {
    auto it = calls.find(id);
    std::string method = it == calls.end() ? "?" : it->second.method;
    fail(id, std::make_exception_ptr(lost_remote_error(endpoint + ": " + method + ": lost remote after " +
                                                       std::to_string(2 * opts.heartbeat.count()) +
                                                       " ms without a heartbeat")));
  }
  for (detail::channel* ch : channels.heartbeats_due(now)) {
    try {
      send_body(dealer, encode_event_packed({hb_ids.next(), ch->id}, "_zpc_hb", detail::heartbeat_args().span()));
    } catch (const zmq::error_t&) {
      // a missed heartbeat is survivable: the next one is due in a period
    }
    ch->beat.sent(now);
  }
}

}  // namespace rpc
