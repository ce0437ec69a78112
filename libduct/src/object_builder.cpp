// Builds msgpack objects from checked input. See object_builder.hpp.
#include "object_builder.hpp"

#include <bit>
#include <cstdint>
#include <cstring>

namespace duct::detail {
namespace {

class builder {
 public:
  builder(const std::byte* at, msgpack::zone& zone) : at_(at), zone_(zone) {}

  // Reads one value into `o`, and everything inside it. Recursion is bounded by check_msgpack()'s depth limit.
  void value(msgpack::object& o) {
    const unsigned tag = byte();
    if (tag <= 0x7f) return positive(o, tag);
    if (tag >= 0xe0) return negative(o, static_cast<std::int8_t>(tag));
    if (tag <= 0x8f) return map(o, tag & 0x0f);
    if (tag <= 0x9f) return array(o, tag & 0x0f);
    if (tag <= 0xbf) return body(o, msgpack::type::STR, tag & 0x1f);
    switch (tag) {
      case 0xc0: o.type = msgpack::type::NIL; return;
      case 0xc2: case 0xc3:
        o.type = msgpack::type::BOOLEAN;
        o.via.boolean = tag == 0xc3;
        return;
      case 0xc4: return body(o, msgpack::type::BIN, take(1));
      case 0xc5: return body(o, msgpack::type::BIN, take(2));
      case 0xc6: return body(o, msgpack::type::BIN, take(4));
      case 0xc7: return ext(o, take(1));
      case 0xc8: return ext(o, take(2));
      case 0xc9: return ext(o, take(4));
      case 0xca:
        o.type = msgpack::type::FLOAT32;
        o.via.f64 = std::bit_cast<float>(static_cast<std::uint32_t>(take(4)));
        return;
      case 0xcb:
        o.type = msgpack::type::FLOAT64;
        o.via.f64 = std::bit_cast<double>(take(8));
        return;
      case 0xcc: return positive(o, take(1));
      case 0xcd: return positive(o, take(2));
      case 0xce: return positive(o, take(4));
      case 0xcf: return positive(o, take(8));
      case 0xd0: return signed_int(o, static_cast<std::int8_t>(take(1)));
      case 0xd1: return signed_int(o, static_cast<std::int16_t>(take(2)));
      case 0xd2: return signed_int(o, static_cast<std::int32_t>(take(4)));
      case 0xd3: return signed_int(o, static_cast<std::int64_t>(take(8)));
      case 0xd4: return ext(o, 1);
      case 0xd5: return ext(o, 2);
      case 0xd6: return ext(o, 4);
      case 0xd7: return ext(o, 8);
      case 0xd8: return ext(o, 16);
      case 0xd9: return body(o, msgpack::type::STR, take(1));
      case 0xda: return body(o, msgpack::type::STR, take(2));
      case 0xdb: return body(o, msgpack::type::STR, take(4));
      case 0xdc: return array(o, take(2));
      case 0xdd: return array(o, take(4));
      case 0xde: return map(o, take(2));
      default: return map(o, take(4));  // 0xdf: check_msgpack() accepted nothing else (0xc1 is refused)
    }
  }

 private:
  unsigned byte() { return std::to_integer<unsigned>(*at_++); }

  std::uint64_t take(std::size_t n) {  // a big-endian unsigned integer of n bytes
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | byte();
    return v;
  }

  static void positive(msgpack::object& o, std::uint64_t v) {
    o.type = msgpack::type::POSITIVE_INTEGER;
    o.via.u64 = v;
  }
  static void negative(msgpack::object& o, std::int64_t v) {
    o.type = msgpack::type::NEGATIVE_INTEGER;
    o.via.i64 = v;
  }
  static void signed_int(msgpack::object& o, std::int64_t v) {
    if (v >= 0) positive(o, static_cast<std::uint64_t>(v));
    else negative(o, v);
  }

  // `n` bytes copied into the zone (an empty body points at a static empty string, never at the input).
  const char* copy(std::size_t n) {
    static constexpr char empty[1] = {};
    if (n == 0) return empty;
    char* to = static_cast<char*>(zone_.allocate_no_align(n));
    std::memcpy(to, at_, n);
    at_ += n;
    return to;
  }

  void body(msgpack::object& o, msgpack::type::object_type type, std::uint64_t n) {
    o.type = type;
    const auto size = static_cast<std::uint32_t>(n);
    if (type == msgpack::type::STR) o.via.str = {size, copy(size)};
    else o.via.bin = {size, copy(size)};
  }

  // An ext of `n` data bytes: via.ext.ptr points at its type byte, which precedes the data, as msgpack-c has it.
  void ext(msgpack::object& o, std::uint64_t n) {
    o.type = msgpack::type::EXT;
    o.via.ext.size = static_cast<std::uint32_t>(n);
    o.via.ext.ptr = copy(static_cast<std::size_t>(n) + 1);
  }

  void array(msgpack::object& o, std::uint64_t n) {
    o.type = msgpack::type::ARRAY;
    o.via.array.size = static_cast<std::uint32_t>(n);
    o.via.array.ptr = nullptr;
    if (n == 0) return;
    auto* items = static_cast<msgpack::object*>(
        zone_.allocate_align(sizeof(msgpack::object) * n, MSGPACK_ZONE_ALIGNOF(msgpack::object)));
    for (std::uint64_t i = 0; i < n; ++i) value(items[i]);
    o.via.array.ptr = items;
  }

  void map(msgpack::object& o, std::uint64_t n) {
    o.type = msgpack::type::MAP;
    o.via.map.size = static_cast<std::uint32_t>(n);
    o.via.map.ptr = nullptr;
    if (n == 0) return;
    auto* pairs = static_cast<msgpack::object_kv*>(
        zone_.allocate_align(sizeof(msgpack::object_kv) * n, MSGPACK_ZONE_ALIGNOF(msgpack::object_kv)));
    for (std::uint64_t i = 0; i < n; ++i) {
      value(pairs[i].key);
      value(pairs[i].val);
    }
    o.via.map.ptr = pairs;
  }

  const std::byte* at_;
  msgpack::zone& zone_;
};

}  // namespace

msgpack::object build_object(std::span<const std::byte> checked, msgpack::zone& zone) {
  msgpack::object root;
  builder(checked.data(), zone).value(root);
  return root;
}

}  // namespace duct::detail
