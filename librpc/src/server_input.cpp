// rpc::server's chunked requests: a call whose input arrives as CHUNK events on its channel (_ductrpc_chunked), the
// credit granted for it, and its end or failure. The rest of the call path is in server_calls.cpp. See
// server_impl.hpp.
#include <rpc/server.hpp>

#include "server_impl.hpp"

namespace rpc {

using detail::call_key;
using detail::err_args;
using detail::pack;
using detail::running_call;

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

}  // namespace rpc
