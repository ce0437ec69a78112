// Reads msgpack into objects, checking as it goes. See msgpack_reader.hpp.
#include "msgpack_reader.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <string>

namespace duct::detail {
namespace {

[[noreturn]] __attribute__((noinline, cold)) void bad(const std::string& why) {
  throw codec_error("malformed msgpack payload: " + why);
}

class reader {
 public:
  reader(std::span<const std::byte> bytes, std::size_t max_depth, msgpack::zone* zone)
      : begin_(bytes.data()), at_(bytes.data()), end_(bytes.data() + bytes.size()), max_depth_(max_depth),
        zone_(zone) {}

  msgpack::object whole() {
    msgpack::object root;
    value(root, 0);
    if (at_ != end_) bad(std::to_string(end_ - at_) + " trailing bytes after the value");
    return root;
  }

 private:
  // Reads one value into `o`, and everything inside it; `depth` containers enclose it. Recursion is bounded by the
  // depth limit, itself at most max_depth_.
  void value(msgpack::object& o, std::size_t depth) {
    const std::byte* const at = at_;
    const unsigned tag = byte();
    if (tag <= 0x7f) return positive(o, tag);
    if (tag >= 0xe0) return negative(o, static_cast<std::int8_t>(tag));
    if (tag <= 0x8f) return map(o, tag & 0x0f, at, depth);
    if (tag <= 0x9f) return array(o, tag & 0x0f, at, depth);
    if (tag <= 0xbf) return body(o, msgpack::type::STR, tag & 0x1f);
    switch (tag) {
      case 0xc0: o.type = msgpack::type::NIL; return;
      case 0xc1: bad("reserved byte 0xc1 at offset " + std::to_string(at - begin_));
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
      case 0xdc: return array(o, take(2), at, depth);
      case 0xdd: return array(o, take(4), at, depth);
      case 0xde: return map(o, take(2), at, depth);
      default: return map(o, take(4), at, depth);  // 0xdf, the last tag
    }
  }

  std::size_t remaining() const { return static_cast<std::size_t>(end_ - at_); }

  void need(std::uint64_t n) const {
    if (n > remaining()) [[unlikely]]
      too_short(n);
  }
  [[noreturn]] __attribute__((noinline, cold)) void too_short(std::uint64_t n) const {
    bad("value at offset " + std::to_string(at_ - begin_) + " needs " + std::to_string(n) + " bytes, " +
        std::to_string(remaining()) + " remain");
  }

  unsigned byte() {
    need(1);
    return std::to_integer<unsigned>(*at_++);
  }

  std::uint64_t take(std::size_t n) {  // a big-endian unsigned integer of n bytes
    need(n);
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | std::to_integer<unsigned>(at_[i]);
    at_ += n;
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

  // `n` bytes, once they are known to be there, copied into the zone (an empty body points at a static empty string,
  // never at the input).
  const char* copy(std::uint64_t n) {
    static constexpr char empty[1] = {};
    need(n);
    if (n == 0 || !zone_) {
      at_ += n;
      return empty;
    }
    char* to = static_cast<char*>(zone_->allocate_no_align(n));
    std::memcpy(to, at_, n);
    at_ += n;
    return to;
  }

  void body(msgpack::object& o, msgpack::type::object_type type, std::uint64_t n) {
    o.type = type;
    const auto size = static_cast<std::uint32_t>(n);  // at most 2^32 - 1: its length field has four bytes
    if (type == msgpack::type::STR) o.via.str = {size, copy(n)};
    else o.via.bin = {size, copy(n)};
  }

  // An ext of `n` data bytes: via.ext.ptr points at its type byte, which precedes the data, as msgpack-c has it.
  void ext(msgpack::object& o, std::uint64_t n) {
    o.type = msgpack::type::EXT;
    o.via.ext.size = static_cast<std::uint32_t>(n);
    o.via.ext.ptr = copy(n + 1);
  }

  // A container of `values` values (a map's keys and values both count) that starts at `at`, inside `depth`
  // containers: refused before anything is allocated for it if its values cannot fit in what remains (each takes a
  // byte at least) or it nests too deep.
  void enter(std::uint64_t values, const std::byte* at, std::size_t depth) const {
    if (values > remaining()) [[unlikely]]
      bad("container at offset " + std::to_string(at - begin_) + " claims " + std::to_string(values) +
          " elements but only " + std::to_string(remaining()) + " bytes remain");
    if (depth + 1 > max_depth_) [[unlikely]]
      bad("nested deeper than " + std::to_string(max_depth_));
  }

  template <class T>
  T* items(std::uint64_t n) {
    return static_cast<T*>(zone_->allocate_align(sizeof(T) * n, MSGPACK_ZONE_ALIGNOF(T)));
  }

  void array(msgpack::object& o, std::uint64_t n, const std::byte* at, std::size_t depth) {
    o.type = msgpack::type::ARRAY;
    o.via.array = {static_cast<std::uint32_t>(n), nullptr};
    if (n == 0) return;
    enter(n, at, depth);
    if (!zone_) {
      msgpack::object scratch;
      for (std::uint64_t i = 0; i < n; ++i) value(scratch, depth + 1);
      return;
    }
    auto* all = items<msgpack::object>(n);
    for (std::uint64_t i = 0; i < n; ++i) value(all[i], depth + 1);
    o.via.array.ptr = all;
  }

  void map(msgpack::object& o, std::uint64_t n, const std::byte* at, std::size_t depth) {
    o.type = msgpack::type::MAP;
    o.via.map = {static_cast<std::uint32_t>(n), nullptr};
    if (n == 0) return;
    enter(2 * n, at, depth);
    if (!zone_) {
      msgpack::object scratch;
      for (std::uint64_t i = 0; i < 2 * n; ++i) value(scratch, depth + 1);
      return;
    }
    auto* pairs = items<msgpack::object_kv>(n);
    for (std::uint64_t i = 0; i < n; ++i) {
      value(pairs[i].key, depth + 1);
      value(pairs[i].val, depth + 1);
    }
    o.via.map.ptr = pairs;
  }

  const std::byte* const begin_;
  const std::byte* at_;
  const std::byte* const end_;
  const std::size_t max_depth_;
  msgpack::zone* const zone_;
};

}  // namespace

msgpack::object read_object(std::span<const std::byte> bytes, const decode_limits& limits, msgpack::zone* zone) {
  constexpr std::size_t hard_depth = 1024;  // bounds the reader's recursion whatever the caller allows
  const msgpack::object root = reader(bytes, std::min(limits.max_depth, hard_depth), zone).whole();
  return zone ? root : msgpack::object();  // without a zone, containers have no items to point at
}

}  // namespace duct::detail
