// The raw loops' codec: zerorpc events with msgpack-c's own unpack and packer, as a program without our library
// would write them. The baselines use it, not rpc::decode_event and rpc::encode_event, so that they stay what a raw
// ZeroMQ + msgpack loop costs when our codec gets faster. Trusting: it checks only what the loops need.
#pragma once

#include <stdexcept>
#include <string_view>

#include <msgpack.hpp>
#include <zmq.hpp>

namespace raw {

/// An id as it travels: its bytes, and whether it is a msgpack bin (Python) or a str (node).
struct id {
  std::string_view bytes;
  bool binary = true;
};

/// One decoded event; its views point into `handle`.
struct event {
  msgpack::object_handle handle;
  id message_id, response_to;
  std::string_view name;
  const msgpack::object* args = nullptr;
};

inline id id_of(const msgpack::object& o) {
  if (o.type == msgpack::type::BIN) return {std::string_view(o.via.bin.ptr, o.via.bin.size), true};
  if (o.type == msgpack::type::STR) return {std::string_view(o.via.str.ptr, o.via.str.size), false};
  throw std::runtime_error("raw codec: an id that is neither bin nor str");
}

/// Decodes `body`. Throws: msgpack's errors, or runtime_error for an event that is not [header, name, args].
inline event decode(const zmq::message_t& body) {
  event e;
  e.handle = msgpack::unpack(static_cast<const char*>(body.data()), body.size());
  const msgpack::object& o = e.handle.get();
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 3 || o.via.array.ptr[0].type != msgpack::type::MAP ||
      o.via.array.ptr[1].type != msgpack::type::STR)
    throw std::runtime_error("raw codec: not an event");
  const msgpack::object_map& header = o.via.array.ptr[0].via.map;
  for (std::uint32_t i = 0; i < header.size; ++i) {
    const msgpack::object& key = header.ptr[i].key;
    if (key.type != msgpack::type::STR) continue;
    const std::string_view k(key.via.str.ptr, key.via.str.size);
    if (k == "message_id") e.message_id = id_of(header.ptr[i].val);
    else if (k == "response_to") e.response_to = id_of(header.ptr[i].val);
  }
  e.name = std::string_view(o.via.array.ptr[1].via.str.ptr, o.via.array.ptr[1].via.str.size);
  e.args = &o.via.array.ptr[2];
  return e;
}

inline void pack_id(msgpack::packer<msgpack::sbuffer>& p, id i) {
  if (i.binary) {
    p.pack_bin(static_cast<std::uint32_t>(i.bytes.size()));
    p.pack_bin_body(i.bytes.data(), static_cast<std::uint32_t>(i.bytes.size()));
  } else {
    p.pack_str(static_cast<std::uint32_t>(i.bytes.size()));
    p.pack_str_body(i.bytes.data(), static_cast<std::uint32_t>(i.bytes.size()));
  }
}

/// Encodes [{"message_id": id, "v": 3, "response_to": response_to (if any)}, name, args].
template <class Args>
msgpack::sbuffer encode(id message_id, id response_to, std::string_view name, const Args& args) {
  msgpack::sbuffer out(128);
  msgpack::packer<msgpack::sbuffer> p(out);
  p.pack_array(3);
  p.pack_map(response_to.bytes.empty() ? 2 : 3);
  p.pack(std::string_view("message_id"));
  pack_id(p, message_id);
  p.pack(std::string_view("v"));
  p.pack(3);
  if (!response_to.bytes.empty()) {
    p.pack(std::string_view("response_to"));
    pack_id(p, response_to);
  }
  p.pack(name);
  p.pack(args);
  return out;
}

}  // namespace raw
