// zerorpc event codec. See event.hpp.
#include <rpc/event.hpp>

#include <cstring>
#include <random>
#include <utility>

#include "access.hpp"

namespace rpc {
namespace {

// Our extensions' header keys: each is `true` when present, and a plain zerorpc peer never sends one.
constexpr std::pair<std::string_view, bool event_header::*> flag_keys[] = {
    {deferred_header_key, &event_header::accepts_deferred},
    {stop_header_key, &event_header::accepts_stop},
    {progress_header_key, &event_header::wants_progress},
    {oneway_header_key, &event_header::oneway},
    {batch_header_key, &event_header::accepts_batches},
};

}  // namespace

message_id message_id::from_object(const msgpack::object& o) {
  if (o.type == msgpack::type::BIN) return {std::string_view(o.via.bin.ptr, o.via.bin.size), true};
  if (o.type == msgpack::type::STR) return {std::string_view(o.via.str.ptr, o.via.str.size), false};
  throw protocol_error("message id must be a string or bytes, not msgpack " + duct::value::type_name(o));
}

namespace {
constexpr char hex_digits[] = "0123456789abcdef";
}

std::size_t detail::hash_bytes(std::string_view bytes) noexcept {
  static const std::uint64_t seed = []() -> std::uint64_t {
    try {
      std::random_device rd;
      return (std::uint64_t{rd()} << 32) | rd();
    } catch (const std::exception&) {  // no entropy source: the address of this function varies with ASLR
      return reinterpret_cast<std::uintptr_t>(&hash_bytes) * 0x9e3779b97f4a7c15u;
    }
  }();
  std::uint64_t h = seed ^ (bytes.size() * 0x9e3779b97f4a7c15u);
  auto mix = [&h](std::uint64_t word) {
    h ^= word;
    h *= 0xbf58476d1ce4e5b9u;
    h ^= h >> 31;
  };
  const char* p = bytes.data();
  std::size_t n = bytes.size();
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t word;
    std::memcpy(&word, p, 8);
    mix(word);
  }
  if (n > 0) {
    std::uint64_t word = 0;
    std::memcpy(&word, p, n);
    mix(word);
  }
  h *= 0x94d049bb133111ebu;
  return static_cast<std::size_t>(h ^ (h >> 32));
}

id_generator::id_generator() {
  std::random_device rd;
  counter_ = rd();
  for (std::size_t i = 8; i < text_.size(); ++i) text_[i] = hex_digits[rd() & 15];
}

message_id id_generator::next() {
  const std::uint32_t n = counter_++;
  for (int i = 0; i < 8; ++i) text_[static_cast<std::size_t>(i)] = hex_digits[(n >> (28 - 4 * i)) & 15];
  return {std::string_view(text_.data(), text_.size()), true};
}

event decode_event(std::span<const std::byte> body, const duct::decode_limits& limits) {
  event e;
  detail::decode_event_into(body, e, limits);
  return e;
}

void detail::decode_event_into(std::span<const std::byte> body, event& e, const duct::decode_limits& limits) {
  duct::value v;
  try {
    v = duct::decode(duct::codec::msgpack, body, limits);
  } catch (const duct::codec_error& not_msgpack) {
    throw protocol_error(std::string("event is not msgpack: ") + not_msgpack.what());
  }
  const msgpack::object& o = v.get();
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 3)
    throw protocol_error("event is not an array of [header, name, args] but msgpack " + duct::value::type_name(o) +
                         (o.type == msgpack::type::ARRAY ? " of " + std::to_string(o.via.array.size) : ""));
  const msgpack::object& header = o.via.array.ptr[0];
  const msgpack::object& name = o.via.array.ptr[1];

  bool has_id = false;
  if (header.type == msgpack::type::MAP) {
    for (std::uint32_t i = 0; i < header.via.map.size; ++i) {
      const msgpack::object& key = header.via.map.ptr[i].key;
      const msgpack::object& val = header.via.map.ptr[i].val;
      if (key.type != msgpack::type::STR) continue;
      std::string_view k(key.via.str.ptr, key.via.str.size);
      if (k == "message_id") {
        e.header.id = message_id::from_object(val);
        has_id = true;
      } else if (k == "response_to") {
        e.header.response_to = message_id::from_object(val);
      } else if (k == "v") {
        if (val.type != msgpack::type::POSITIVE_INTEGER || val.via.u64 > 1000)
          throw protocol_error("event header 'v' must be a small positive integer");
        e.header.version = static_cast<int>(val.via.u64);
      } else {
        for (const auto& [flag_key, member] : flag_keys)
          if (k == flag_key) e.header.*member = val.type == msgpack::type::BOOLEAN && val.via.boolean;
      }
    }
  }
  if (!has_id) throw protocol_error("event header has no message_id");
  if (name.type != msgpack::type::STR) throw protocol_error("event name is msgpack " + duct::value::type_name(name) + ", not a string");
  e.name.assign(name.via.str.ptr, name.via.str.size);
  if (!duct::is_valid_utf8(e.name)) throw protocol_error("event name is not valid UTF-8");
  e.wire_size = body.size();
  const msgpack::object* args = &o.via.array.ptr[2];  // lives in the value's zone, which moves with it
  detail::access::set_body(e, std::move(v), args);
}

namespace detail {
void pack_event_head(msgpack::packer<duct::pack_buffer>& p, const event_header& h, std::string_view name) {
  std::uint32_t flags = 0;
  for (const auto& [flag_key, member] : flag_keys) flags += h.*member ? 1 : 0;
  p.pack_array(3);
  p.pack_map(2 + (h.response_to ? 1 : 0) + flags);
  p.pack(std::string_view("message_id"));
  p.pack(h.id);
  p.pack(std::string_view("v"));
  p.pack(h.version);
  if (h.response_to) {
    p.pack(std::string_view("response_to"));
    p.pack(*h.response_to);
  }
  for (const auto& [flag_key, member] : flag_keys) {
    if (!(h.*member)) continue;
    p.pack(flag_key);
    p.pack(true);
  }
  p.pack(name);
}
}  // namespace detail

duct::buffer encode_event_packed(const event_header& h, std::string_view name, std::span<const std::byte> packed_args) {
  // Room for the header (two ids, the version and what the flags add) and the name: one allocation, the args copied
  // once, and the buffer taken as it is.
  duct::pack_buffer out(128 + h.id.bytes().size() + (h.response_to ? h.response_to->bytes().size() : 0) + name.size() +
                        packed_args.size());
  msgpack::packer<duct::pack_buffer> p(out);
  detail::pack_event_head(p, h, name);
  out.write(reinterpret_cast<const char*>(packed_args.data()), packed_args.size());
  return out.take();
}

}  // namespace rpc
