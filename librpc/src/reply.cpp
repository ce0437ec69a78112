// Internal: what a reply event means for the call it answers. See reply.hpp.
#include "reply.hpp"

#include <algorithm>

#include <duct/msgpack.hpp>
#include <rpc/error.hpp>

namespace rpc::detail {
namespace {

std::string as_string(const msgpack::object& o) {
  if (o.type == msgpack::type::STR) return {o.via.str.ptr, o.via.str.size};
  if (o.type == msgpack::type::BIN) return {o.via.bin.ptr, o.via.bin.size};
  if (o.type == msgpack::type::NIL) return {};
  std::string json;
  duct::write_json(o, json, true);
  return json;
}

// A value of an event (a result, an item of a batch) as a value of its own: a scalar needs no memory; anything else
// is copied out of the event.
duct::value own(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
    case msgpack::type::BOOLEAN:
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER:
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return duct::value(msgpack::object_handle(o, msgpack::unique_ptr<msgpack::zone>()));
    default:
      return duct::value(msgpack::clone(o));
  }
}

}  // namespace

reply settle(const event& ev, call_name where, duct::value& result, std::string& token) {
  const msgpack::object& args = ev.args();
  if (ev.name == "_zpc_hb" || ev.name == "_zpc_more") return reply::alive;
  if (ev.name == "OK" || ev.name == "DEFERRED") {
    if (args.type != msgpack::type::ARRAY || args.via.array.size < 1)
      throw protocol_error(where.str() + ": " + ev.name + " without a value");
    if (ev.name == "OK") {
      result = own(args.via.array.ptr[0]);
      return reply::result;
    }
    if (args.via.array.ptr[0].type != msgpack::type::STR) throw protocol_error(where.str() + ": DEFERRED without a token");
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
    if (name == "Overloaded") throw overloaded_error(name, message, traceback);
    if (name == "UnknownToken") throw unknown_token_error(name, message, traceback);
    // A broker whose worker died with the call open says so: the same as losing the server ourselves.
    if (name == "LostRemote") throw lost_remote_error(message);
    throw remote_error(name, message, traceback);
  }
  if (ev.name == "STREAM" || ev.name == "STREAM_DONE")
    throw protocol_error(where.str() + ": the method answered with a stream, which call() cannot return");
  throw protocol_error(where.str() + ": unexpected event " + ev.name);
}

bool settle_stream(event& ev, stream_state& st, bool progress) {
  if (ev.name == (progress ? "PROGRESS" : "STREAM")) {
    const std::size_t size = ev.wire_size;
    st.push(std::move(ev).take_args(), size);
    return false;
  }
  if (!progress && ev.name == "STREAM_BATCH" && ev.args().type == msgpack::type::ARRAY) {
    const msgpack::object_array& batch = ev.args().via.array;
    std::vector<duct::value> items;
    items.reserve(batch.size);
    for (std::uint32_t i = 0; i < batch.size; ++i) items.push_back(own(batch.ptr[i]));
    st.push_many(items, ev.wire_size);
    return false;
  }
  try {
    duct::value result;
    std::string token;
    if (progress && (ev.name == "STREAM" || ev.name == "STREAM_DONE"))
      throw protocol_error(st.where() + ": the method streams its reply: call it with stream()");
    if (ev.name != "STREAM_DONE") {
      switch (settle(ev, st.where(), result, token)) {
        case reply::alive: return false;
        case reply::result:
          if (progress) st.finish(std::move(result));
          else st.push(std::move(result));  // one result: the stream's only item
          break;
        case reply::deferred: throw protocol_error(st.where() + ": a stream was answered with a token");
      }
    }
    st.end();
  } catch (...) {
    st.fail(std::current_exception());
  }
  return true;
}

duct::buffer credit_event(message_id id, const message_id& channel, std::size_t n) {
  duct::pack_buffer args;
  msgpack::pack(args, std::make_tuple(n));
  return encode_event_packed({std::move(id), channel}, "_zpc_more", std::as_bytes(std::span(args.data(), args.size())));
}

std::optional<std::int64_t> credit_of(const event& ev) {
  const msgpack::object& args = ev.args();
  if (ev.name != "_zpc_more" || args.type != msgpack::type::ARRAY || args.via.array.size != 1 ||
      args.via.array.ptr[0].type != msgpack::type::POSITIVE_INTEGER)
    return std::nullopt;
  return static_cast<std::int64_t>(std::min<std::uint64_t>(args.via.array.ptr[0].via.u64, INT64_MAX));
}

std::exception_ptr call_cancelled(const std::string& where) {
  return std::make_exception_ptr(cancelled_error("Cancelled", where + ": the call was cancelled", ""));
}

duct::buffer method_and_args(std::string_view method, std::span<const std::byte> packed_args) {
  duct::pack_buffer out;
  msgpack::packer<duct::pack_buffer> p(out);
  p.pack_array(2);
  p.pack(method);
  out.write(reinterpret_cast<const char*>(packed_args.data()), packed_args.size());
  return out.take();
}

duct::buffer stop_event(message_id id, const message_id& channel) {
  return encode_event_packed({std::move(id), channel}, "_ductrpc_stop", std::as_bytes(std::span("\x90", 1)));
}

duct::buffer cancel_event(message_id id, const std::string& token) {
  duct::pack_buffer args;
  msgpack::pack(args, std::make_tuple(token));
  return encode_event_packed(request_header(std::move(id)), "_ductrpc_cancel", args.take().span());
}

event_header request_header(message_id id) {
  event_header h{std::move(id)};
  h.accepts_deferred = true;
  return h;
}

duct::buffer wait_args(const std::string& token, std::optional<clock::time_point> deadline, clock::time_point now) {
  double seconds = 60.0;
  if (deadline) seconds = std::max(0.0, std::chrono::duration<double>(*deadline - now).count());
  duct::pack_buffer out;
  msgpack::pack(out, std::make_tuple(token, seconds));
  return out.take();
}

std::string no_result_within(const std::string& where, std::chrono::milliseconds limit) {
  return where + ": no result within " + std::to_string(limit.count()) + " ms";
}

}  // namespace rpc::detail
