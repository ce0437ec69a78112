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

namespace rpc {
namespace {

struct open_call {
  std::string method;
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

}  // namespace

struct client::impl {
  impl(std::string_view ep, client_options o) : opts(o), endpoint(ep) {
    dealer.set(zmq::sockopt::linger, 0);
    dealer.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(opts.max_message_size));
    try {
      dealer.connect(endpoint);
    } catch (const zmq::error_t& e) {
      throw error("cannot connect to " + endpoint + ": " + e.what());
    }
    io = std::thread([this] { loop(); });
  }

  client_options opts;
  std::string endpoint;
  zmq::context_t ctx{1};
  zmq::socket_t dealer{ctx, zmq::socket_type::dealer};
  detail::wakeup wake;
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
  void send_body(const duct::buffer& body);
  void on_reply(const zmq::message_t& body, detail::clock::time_point now);
  void fail(const message_id& id, std::exception_ptr e);
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
  impl_->wake.signal();
  impl_->io.join();
  auto closed = [&](const std::string& method) {
    return std::make_exception_ptr(closed_error(impl_->endpoint + ": " + method + ": the client was closed"));
  };
  for (auto& [id, call] : impl_->calls) call.result.set_exception(closed(call.method));
  for (auto& r : impl_->inbox) r.call.result.set_exception(closed(r.call.method));
}

const std::string& client::endpoint() const noexcept { return impl_->endpoint; }

std::future<duct::value> client::submit(std::string_view method, duct::buffer packed_args,
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
    r.body = encode_event_packed({r.id}, method, packed_args.span());
    impl_->inbox.push_back(std::move(r));
  }
  impl_->wake.signal();
  return f;
}

void client::impl::send_body(const duct::buffer& body) {
  dealer.send(zmq::message_t(), zmq::send_flags::sndmore);
  dealer.send(zmq::buffer(body.data(), body.size()), zmq::send_flags::none);
}

void client::impl::loop() {
  std::vector<zmq::message_t> frames;
  while (running) {
    auto now = detail::clock::now();
    std::chrono::milliseconds wait(1000);
    auto until = [&](detail::clock::time_point t) {
      wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(std::max(t - now, detail::clock::duration(0))));
    };
    if (auto d = channels.next_deadline()) until(*d);
    for (const auto& [id, call] : calls)
      if (call.deadline) until(*call.deadline);
    zmq::pollitem_t items[] = {{dealer.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, wake.fd(), ZMQ_POLLIN, 0}};
    zmq::poll(items, 2, wait);
    if (items[1].revents & ZMQ_POLLIN) wake.drain();

    std::vector<request> fresh;
    {
      std::lock_guard lock(mu);
      fresh.swap(inbox);
    }
    for (auto& r : fresh) {
      send_body(r.body);
      channels.open(r.id, detail::clock::now());
      calls.emplace(r.id, std::move(r.call));
    }
    for (int i = 0; i < 1000; ++i) {
      frames.clear();
      if (!zmq::recv_multipart(dealer, std::back_inserter(frames), zmq::recv_flags::dontwait)) break;
      if (!frames.empty()) on_reply(frames.back(), detail::clock::now());
    }
    tick(detail::clock::now());
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
  event ev;
  try {
    ev = decode_event(std::as_bytes(std::span(static_cast<const char*>(body.data()), body.size())));
  } catch (const protocol_error&) {
    return;  // not an event: nothing to route it to
  }
  if (!ev.header.response_to) return;
  const message_id& id = *ev.header.response_to;
  detail::channel* ch = channels.find(id);
  auto call = calls.find(id);
  if (!ch || call == calls.end()) return;  // a late reply to a call that timed out
  ch->beat.heard(now);
  const std::string where = endpoint + ": " + call->second.method;
  const msgpack::object& args = ev.args();
  if (ev.name == "_zpc_hb" || ev.name == "_zpc_more") return;
  if (ev.name == "OK") {
    if (args.type != msgpack::type::ARRAY || args.via.array.size < 1) {
      fail(id, std::make_exception_ptr(protocol_error(where + ": OK without a result")));
      return;
    }
    call->second.result.set_value(duct::value(msgpack::clone(args.via.array.ptr[0])));
    calls.erase(call);
    channels.close(id);
  } else if (ev.name == "ERR") {
    std::string name = "RemoteError", message, traceback;
    if (args.type == msgpack::type::ARRAY) {
      if (args.via.array.size > 0) name = as_string(args.via.array.ptr[0]);
      if (args.via.array.size > 1) message = as_string(args.via.array.ptr[1]);
      if (args.via.array.size > 2) traceback = as_string(args.via.array.ptr[2]);
    }
    if (name == "NameError") fail(id, std::make_exception_ptr(unknown_method_error(name, message, traceback)));
    else fail(id, std::make_exception_ptr(remote_error(name, message, traceback)));
  } else if (ev.name == "STREAM" || ev.name == "STREAM_DONE") {
    fail(id, std::make_exception_ptr(protocol_error(where + ": the method answered with a stream, which call() "
                                                            "cannot return")));
  } else {
    fail(id, std::make_exception_ptr(protocol_error(where + ": unexpected event " + ev.name)));
  }
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
  static const duct::buffer heartbeat_args = [] {
    duct::pack_buffer out;
    msgpack::pack(out, std::make_tuple(0));
    return duct::buffer(std::as_bytes(std::span(out.data(), out.size())));
  }();
  for (detail::channel* ch : channels.heartbeats_due(now)) {
    send_body(encode_event_packed({hb_ids.next(), ch->id}, "_zpc_hb", heartbeat_args.span()));
    ch->beat.sent(now);
  }
}

}  // namespace rpc
