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

// The reference decoder. It is also what explains a body the quick one below does not take.
void detail::decode_event_checked(std::span<const std::byte> body, event& e, const duct::decode_limits& limits) {
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
  detail::access::set_args(e, std::move(v).take_part(o.via.array.ptr[2]));
}

namespace {

// The bytes of an event as the quick decoder reads them: the outer array, the header and the name, read in place
// rather than built into msgpack objects first (ids are copied once, straight from the body). Each read takes only
// the usual shapes and returns false for anything else, which the reference decoder then handles.
class event_reader {
 public:
  explicit event_reader(std::span<const std::byte> body) : at_(body.data()), end_(body.data() + body.size()) {}

  [[nodiscard]] std::span<const std::byte> rest() const { return {at_, end_}; }

  /// An array head (a map head if `map`); `n`: its elements (a map's pairs).
  bool head(bool map, std::uint64_t& n) {
    const unsigned tag = peek(), fix = map ? 0x80 : 0x90, wide = map ? 0xde : 0xdc;
    if (tag >= fix && tag <= fix + 15) {
      n = tag - fix;
      return step(1);
    }
    return (tag == wide && sized(2, n)) || (tag == wide + 1 && sized(4, n));
  }
  /// A str, or (if `bin`) a bin; `binary` says which.
  bool bytes(std::string_view& out, bool& binary, bool bin = true) {
    const unsigned tag = peek();
    std::uint64_t n = 0;
    binary = tag >= 0xc4 && tag <= 0xc6;
    bool ok = false;
    if (tag >= 0xa0 && tag <= 0xbf) {
      n = tag - 0xa0;
      ok = step(1);
    } else if (tag >= 0xd9 && tag <= 0xdb) {
      ok = sized(std::size_t{1} << (tag - 0xd9), n);  // str8, str16, str32
    } else if (bin && binary) {
      ok = sized(std::size_t{1} << (tag - 0xc4), n);  // bin8, bin16, bin32
    }
    if (!ok || n > left()) return false;
    out = std::string_view(reinterpret_cast<const char*>(at_), n);
    return step(n);
  }
  /// A non-negative integer below 2^16.
  bool small_uint(std::uint64_t& v) {
    const unsigned tag = peek();
    if (tag <= 0x7f) {
      v = tag;
      return step(1);
    }
    return (tag == 0xcc && sized(1, v)) || (tag == 0xcd && sized(2, v));
  }
  /// A scalar that a header may hold under a key we do not read: nil, a bool, a small integer, a str or a bin.
  /// `truth`: whether it is `true`.
  bool scalar(bool& truth) {
    const unsigned tag = peek();
    truth = tag == 0xc3;
    if (tag == 0xc0 || tag == 0xc2 || tag == 0xc3) return step(1);
    std::uint64_t n;
    std::string_view s;
    bool binary;
    return small_uint(n) || bytes(s, binary);
  }

 private:
  [[nodiscard]] std::size_t left() const { return static_cast<std::size_t>(end_ - at_); }
  [[nodiscard]] unsigned peek() const { return at_ < end_ ? std::to_integer<unsigned>(*at_) : 0xc1; }  // 0xc1: unused
  bool step(std::size_t n) {
    at_ += n;
    return true;
  }
  // A tag followed by a big-endian length or value of `width` bytes.
  bool sized(std::size_t width, std::uint64_t& n) {
    if (left() < 1 + width) return false;
    n = 0;
    for (std::size_t i = 1; i <= width; ++i) n = n << 8 | std::to_integer<unsigned>(at_[i]);
    return step(1 + width);
  }

  const std::byte* at_;
  const std::byte* const end_;
};

}  // namespace

// The quick decoder, for the events peers send. It reads the header and the name in place and decodes only the args
// into msgpack objects: about half the work of the reference, on every message a client or server receives.
bool detail::decode_event_quickly(std::span<const std::byte> body, event& e, const duct::decode_limits& limits) {
  // The reference checks depth from the outer array; the args are one level in. The reader caps depth at 1024.
  const std::size_t depth = std::min<std::size_t>(limits.max_depth, 1024);
  if (depth < 2) return false;
  event_reader r(body);
  std::uint64_t n = 0;
  if (!r.head(false, n) || n != 3 || !r.head(true, n) || n > r.rest().size() / 2) return false;
  bool has_id = false;
  for (std::uint64_t i = 0; i < n; ++i) {
    std::string_view k, v;
    bool binary, truth;
    if (!r.bytes(k, binary, false)) return false;  // a key that is not a str (the reference skips those)
    if (k == "message_id" || k == "response_to") {
      if (!r.bytes(v, binary)) return false;
      if (k[0] == 'm') {
        e.header.id = message_id(v, binary);
        has_id = true;
      } else {
        e.header.response_to.emplace(v, binary);
      }
    } else if (k == "v") {
      std::uint64_t version;
      if (!r.small_uint(version) || version > 1000) return false;
      e.header.version = static_cast<int>(version);
    } else {
      if (!r.scalar(truth)) return false;
      for (const auto& [flag_key, member] : flag_keys)
        if (k == flag_key) e.header.*member = truth;
    }
  }
  std::string_view name;
  bool binary;
  if (!has_id || !r.bytes(name, binary, false) || !duct::is_valid_utf8(name)) return false;
  try {
    detail::access::set_args(e, duct::decode(duct::codec::msgpack, r.rest(), {.max_depth = depth - 1}));
  } catch (const duct::codec_error&) {
    return false;
  }
  e.name.assign(name);
  e.wire_size = body.size();
  return true;
}

void detail::decode_event_into(std::span<const std::byte> body, event& e, const duct::decode_limits& limits) {
  if (decode_event_quickly(body, e, limits)) return;
  e = event();  // what the quick decoder left
  decode_event_checked(body, e, limits);
}

namespace {

// An event's head as msgpack bytes, written straight into an array: its keys and the version are fixed bytes, and only
// the ids and the name vary. The same bytes as msgpack-c's packer makes (the shortest form of each), at about a third
// of the cost: no call per part. For ids and a name under 256 bytes each, which is every one we make or have seen.
class head_writer {
 public:
  static bool fits(const event_header& h, std::string_view name) {
    return h.id.bytes().size() < 256 && (!h.response_to || h.response_to->bytes().size() < 256) && name.size() < 256 &&
           h.version >= 0 && h.version < 128;
  }

  explicit head_writer(const event_header& h, std::string_view name) {
    std::uint32_t flags = 0;
    for (const auto& [flag_key, member] : flag_keys) flags += h.*member ? 1 : 0;
    byte(0x93);                                          // [header, name, args]
    byte(0x80 | (2 + (h.response_to ? 1 : 0) + flags));  // a fixmap: at most 8 entries
    str("message_id");
    id(h.id);
    str("v");
    byte(static_cast<unsigned>(h.version));  // a positive fixint
    if (h.response_to) {
      str("response_to");
      id(*h.response_to);
    }
    for (const auto& [flag_key, member] : flag_keys) {
      if (!(h.*member)) continue;
      str(flag_key);
      byte(0xc3);  // true
    }
    str(name);
  }

  [[nodiscard]] const char* data() const noexcept { return bytes_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

 private:
  void byte(unsigned b) { bytes_[size_++] = static_cast<char>(b); }
  void raw(std::string_view s) {
    std::memcpy(bytes_ + size_, s.data(), s.size());
    size_ += s.size();
  }
  void str(std::string_view s) {  // under 256 bytes
    if (s.size() < 32) {
      byte(0xa0 | static_cast<unsigned>(s.size()));
    } else {
      byte(0xd9);
      byte(static_cast<unsigned>(s.size()));
    }
    raw(s);
  }
  void id(const message_id& i) {
    if (!i.binary()) return str(i.bytes());
    byte(0xc4);  // bin8
    byte(static_cast<unsigned>(i.bytes().size()));
    raw(i.bytes());
  }

  // The largest head: two ids and a name of 255 bytes with their tags (771 bytes), and every key and flag (109).
  // Left uninitialised: only what was written is read.
  char bytes_[3 * 257 + 128];
  std::size_t size_ = 0;
};

}  // namespace

namespace detail {
void pack_event_head(duct::pack_buffer& out, const event_header& h, std::string_view name) {
  if (head_writer::fits(h, name)) {
    const head_writer head(h, name);
    out.write(head.data(), head.size());
    return;
  }
  msgpack::packer<duct::pack_buffer> p(out);
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
  detail::pack_event_head(out, h, name);
  out.write(reinterpret_cast<const char*>(packed_args.data()), packed_args.size());
  return out.take();
}

}  // namespace rpc
