// Codecs: Python-identical JSON, checked msgpack, raw bytes, user types.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <duct/codec.hpp>
#include <duct/msgpack.hpp>

#include "support.hpp"

namespace {

duct::buffer packed(const auto& v) {
  duct::pack_buffer sb;
  msgpack::pack(sb, v);
  return duct::buffer(std::as_bytes(std::span(sb.data(), sb.size())));
}

std::string json_of(const auto& v) { return std::string(duct::encode(duct::codec::json, packed(v).span()).view()); }

duct::value decode_hex(duct::codec c, std::string_view hex) { return duct::decode(c, test::unhex(hex).span()); }

struct point {
  int x = 0;
  std::string label;
  MSGPACK_DEFINE(x, label)
};

}  // namespace

TEST_CASE("JSON is written exactly as Python's json.dumps writes it", "[codec][json]") {
  CHECK(json_of(std::make_tuple(std::string("hello world"), 42)) == R"(["hello world", 42])");
  CHECK(json_of(std::map<std::string, std::string>{{"k", "v"}}) == R"({"k": "v"})");
  CHECK(json_of(std::string("\xc3\xa9")) == R"("\u00e9")");
  CHECK(json_of(std::string("\xf0\x9f\x98\x80")) == R"("\ud83d\ude00")");
  CHECK(json_of(std::string("a\"b\\c\n\t\x01")) == R"("a\"b\\c\n\t\u0001")");
  CHECK(json_of(std::string("\x7f")) == R"("\u007f")");
  CHECK(json_of(msgpack::type::nil_t()) == "null");
  CHECK(json_of(std::vector<int>{}) == "[]");
  CHECK(json_of(std::string()) == R"("")");
  CHECK(json_of(-3) == "-3");
  CHECK(json_of(18446744073709551615ull) == "18446744073709551615");
}

TEST_CASE("floats are written as Python's repr writes them", "[codec][json]") {
  CHECK(json_of(2.5) == "2.5");
  CHECK(json_of(100.0) == "100.0");
  CHECK(json_of(1e5) == "100000.0");
  CHECK(json_of(1e16) == "1e+16");
  CHECK(json_of(1.5e-5) == "1.5e-05");
  CHECK(json_of(0.0001) == "0.0001");
  CHECK(json_of(3.14159) == "3.14159");
  CHECK(json_of(0.1) == "0.1");
  CHECK(json_of(-0.0) == "-0.0");
  CHECK(json_of(1099511627776.0) == "1099511627776.0");
  CHECK(json_of(123456789012345678.0) == "1.2345678901234568e+17");
  CHECK(json_of(std::numeric_limits<double>::infinity()) == "Infinity");
  CHECK(json_of(std::nan("")) == "NaN");
}

TEST_CASE("JSON map keys follow Python's conversions", "[codec][json]") {
  CHECK(json_of(std::map<int, int>{{1, 2}}) == R"({"1": 2})");
  CHECK_THROWS_AS(json_of(std::map<std::vector<int>, int>{{{1}, 2}}), duct::codec_error);
}

TEST_CASE("JSON cannot carry bytes: a clear error", "[codec][json]") {
  CHECK_THROWS_WITH(json_of(std::vector<char>{'a'}), Catch::Contains("bytes"));
}

TEST_CASE("JSON payloads decode, invalid UTF-8 replaced as Python does", "[codec][json]") {
  auto v = duct::decode(duct::codec::json, duct::buffer(std::string_view(R"({"a": [1, 2.5, null, true, "\u00e9"]})")).span());
  CHECK(v.to_json() == R"({"a": [1, 2.5, null, true, "\u00e9"]})");
  CHECK(decode_hex(duct::codec::json, "22ff22").as<std::string>() == "\xef\xbf\xbd");
  CHECK(decode_hex(duct::codec::json, "22c3a922").as<std::string>() == "\xc3\xa9");
}

TEST_CASE("bad JSON is a codec error that keeps the payload", "[codec][json]") {
  try {
    decode_hex(duct::codec::json, "616263");
    FAIL("no exception");
  } catch (const duct::codec_error& e) {
    CHECK(e.payload().view() == "abc");
    CHECK_THAT(e.what(), Catch::Contains("json"));
  }
  CHECK_THROWS_AS(decode_hex(duct::codec::json, ""), duct::codec_error);
  CHECK_THROWS_AS(decode_hex(duct::codec::json, "312032"), duct::codec_error);  // "1 2": trailing data
}

TEST_CASE("deeply nested JSON is refused before parsing", "[codec][json]") {
  std::string deep(100000, '[');
  CHECK_THROWS_WITH(duct::decode(duct::codec::json, duct::buffer(std::string_view(deep)).span()),
                    Catch::Contains("nested deeper"));
}

TEST_CASE("msgpack round-trips user types", "[codec][msgpack]") {
  point p{7, "seven"};
  duct::value v = duct::decode(duct::codec::msgpack, packed(p).span());
  auto back = v.as<point>();
  CHECK(back.x == 7);
  CHECK(back.label == "seven");
  CHECK(v.to_json() == R"([7, "seven"])");
}

// A small input gets a small first chunk to decode into (it stays in malloc's per-thread cache); one that decodes
// into far more than that must still come out whole, and a large one into many chunks as well.
TEST_CASE("small inputs that decode big, and large inputs, come out whole", "[codec][msgpack]") {
  std::vector<int> small(250);  // 253 bytes on the wire, 16 bytes each decoded
  for (std::size_t i = 0; i < small.size(); ++i) small[i] = static_cast<int>(i % 100);
  std::map<std::string, std::vector<int>> mixed;
  for (int i = 0; i < 3; ++i) mixed["k" + std::to_string(i)] = {i, i + 1};
  std::vector<std::string> large(2000, std::string(40, 'x'));  // about 84 KB: many 8 KiB chunks
  large.back() = "last";

  const duct::buffer small_wire = packed(small);
  REQUIRE(small_wire.size() <= 256);
  CHECK(duct::decode(duct::codec::msgpack, small_wire.span()).as<std::vector<int>>() == small);
  CHECK(duct::decode(duct::codec::msgpack, packed(mixed).span()).as<decltype(mixed)>() == mixed);
  CHECK(duct::decode(duct::codec::msgpack, packed(large).span()).as<std::vector<std::string>>() == large);
}

namespace {

// A random msgpack value of every kind the format has, each integer at every width it can be written in, and
// strings, bins, exts and containers with lengths on both sides of each size class's boundary.
void pack_random(msgpack::packer<duct::pack_buffer>& p, std::mt19937_64& rng, int depth) {
  auto pick = [&](std::initializer_list<std::uint32_t> lengths) { return *(lengths.begin() + rng() % lengths.size()); };
  static const std::string filler(70000, 'q');
  switch (rng() % (depth < 3 ? 13 : 11)) {
    case 0: p.pack_nil(); break;
    case 1: p.pack(static_cast<bool>(rng() & 1)); break;
    case 2: {
      const std::uint64_t v = rng() >> (rng() % 64);
      switch (rng() % 4) {
        case 0: p.pack_fix_uint8(static_cast<std::uint8_t>(v)); break;
        case 1: p.pack_fix_uint16(static_cast<std::uint16_t>(v)); break;
        case 2: p.pack_fix_uint32(static_cast<std::uint32_t>(v)); break;
        default: p.pack_fix_uint64(v);
      }
      break;
    }
    case 3: {
      const auto v = static_cast<std::int64_t>(rng()) >> (rng() % 64);  // either sign
      switch (rng() % 5) {
        case 0: p.pack_fix_int8(static_cast<std::int8_t>(v)); break;
        case 1: p.pack_fix_int16(static_cast<std::int16_t>(v)); break;
        case 2: p.pack_fix_int32(static_cast<std::int32_t>(v)); break;
        case 3: p.pack_fix_int64(v); break;
        default: p.pack(static_cast<std::int8_t>(v | -32));  // negative fixint
      }
      break;
    }
    case 4: p.pack_float(static_cast<float>(static_cast<std::int64_t>(rng() % 2000000) - 1000000) / 7.0f); break;
    case 5: p.pack_double(static_cast<double>(static_cast<std::int64_t>(rng())) / 3.0); break;
    case 6: {
      const std::uint32_t n = pick({0, 1, 31, 32, 255, 256, 65535, 65536});
      p.pack_str(n);
      p.pack_str_body(filler.data(), n);
      break;
    }
    case 7: {
      const std::uint32_t n = pick({0, 1, 255, 256, 65535, 65536});
      p.pack_bin(n);
      p.pack_bin_body(filler.data(), n);
      break;
    }
    case 8: {
      const std::uint32_t n = pick({0, 1, 2, 3, 4, 8, 16, 17, 255, 256, 65536});
      p.pack_ext(n, static_cast<std::int8_t>(rng()));
      p.pack_ext_body(filler.data(), n);
      break;
    }
    case 9: p.pack(std::string("short")); break;
    case 10: p.pack(static_cast<std::int64_t>(rng() % 300) - 150); break;
    case 11: {
      const std::uint32_t n = pick({0, 1, 3, 15, 16, 17});
      p.pack_array(n);
      for (std::uint32_t i = 0; i < n; ++i) pack_random(p, rng, depth + 1);
      break;
    }
    default: {
      const std::uint32_t n = pick({0, 1, 2, 15, 16});
      p.pack_map(n);
      for (std::uint32_t i = 0; i < 2 * n; ++i) pack_random(p, rng, depth + 1);
    }
  }
}

// Whether two objects are the same, type for type (a FLOAT32 is not a FLOAT64, nor a non-negative NEGATIVE_INTEGER
// a POSITIVE_INTEGER) and byte for byte. msgpack-c's own operator== would do, but it hands memcmp the null pointer
// msgpack::unpack leaves in an empty str, which UBSan rightly reports.
bool same(const msgpack::object& a, const msgpack::object& b) {
  if (a.type != b.type) return false;
  auto bytes = [](const char* x, const char* y, std::uint32_t n) { return n == 0 || std::memcmp(x, y, n) == 0; };
  switch (a.type) {
    case msgpack::type::NIL: return true;
    case msgpack::type::BOOLEAN: return a.via.boolean == b.via.boolean;
    case msgpack::type::POSITIVE_INTEGER: return a.via.u64 == b.via.u64;
    case msgpack::type::NEGATIVE_INTEGER: return a.via.i64 == b.via.i64;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return std::memcmp(&a.via.f64, &b.via.f64, sizeof(double)) == 0;
    case msgpack::type::STR:
      return a.via.str.size == b.via.str.size && bytes(a.via.str.ptr, b.via.str.ptr, a.via.str.size);
    case msgpack::type::BIN:
      return a.via.bin.size == b.via.bin.size && bytes(a.via.bin.ptr, b.via.bin.ptr, a.via.bin.size);
    case msgpack::type::EXT:  // ptr points at the type byte, followed by size bytes of data
      return a.via.ext.size == b.via.ext.size && bytes(a.via.ext.ptr, b.via.ext.ptr, a.via.ext.size + 1);
    case msgpack::type::ARRAY:
      if (a.via.array.size != b.via.array.size) return false;
      for (std::uint32_t i = 0; i < a.via.array.size; ++i)
        if (!same(a.via.array.ptr[i], b.via.array.ptr[i])) return false;
      return true;
    case msgpack::type::MAP:
      if (a.via.map.size != b.via.map.size) return false;
      for (std::uint32_t i = 0; i < a.via.map.size; ++i)
        if (!same(a.via.map.ptr[i].key, b.via.map.ptr[i].key) || !same(a.via.map.ptr[i].val, b.via.map.ptr[i].val))
          return false;
      return true;
  }
  return false;
}

}  // namespace

// Our decoder builds msgpack-c's objects itself (msgpack::unpack allocates its parser's stacks for every value):
// whatever it is given, it must build exactly what msgpack::unpack builds.
TEST_CASE("decoding builds exactly the objects msgpack-c's unpack builds", "[codec][msgpack]") {
  std::mt19937_64 rng(20261122);
  for (int round = 0; round < 3000; ++round) {
    duct::pack_buffer sb;
    msgpack::packer<duct::pack_buffer> p(sb);
    pack_random(p, rng, 0);
    std::vector<char> wire(sb.data(), sb.data() + sb.size());
    duct::value ours = duct::decode(duct::codec::msgpack, std::as_bytes(std::span(wire)));
    msgpack::object_handle theirs = msgpack::unpack(wire.data(), wire.size());
    INFO("round " << round << ", " << wire.size() << " bytes");
    REQUIRE(same(ours.get(), theirs.get()));
    std::fill(wire.begin(), wire.end(), 'x');  // the value has its own copies of every body
    REQUIRE(same(ours.get(), theirs.get()));
  }
}

TEST_CASE("asking a value for the wrong type is a type_error", "[codec]") {
  duct::value v = duct::decode(duct::codec::msgpack, packed(std::string("x")).span());
  CHECK_THROWS_WITH(v.as<int>(), Catch::Contains("str"));
}

TEST_CASE("a msgpack container claiming more elements than bytes is refused without allocating", "[codec][limits]") {
  test::reset_largest_allocation();
  // array32 claiming 4294967295 elements, then nothing
  CHECK_THROWS_WITH(decode_hex(duct::codec::msgpack, "ddffffffff"), Catch::Contains("claims 4294967295 elements"));
  CHECK(test::largest_allocation() < 4096);
  // map16 claiming 2 pairs with one byte left
  CHECK_THROWS_AS(decode_hex(duct::codec::msgpack, "de000201"), duct::codec_error);
  // str32 claiming 4 GiB
  CHECK_THROWS_AS(decode_hex(duct::codec::msgpack, "dbffffffff41"), duct::codec_error);
  CHECK(test::largest_allocation() < 4096);
}

TEST_CASE("malformed msgpack is named precisely", "[codec][limits]") {
  CHECK_THROWS_WITH(decode_hex(duct::codec::msgpack, "c1"), Catch::Contains("0xc1"));
  CHECK_THROWS_WITH(decode_hex(duct::codec::msgpack, "0102"), Catch::Contains("trailing"));
  CHECK_THROWS_WITH(decode_hex(duct::codec::msgpack, "cd01"), Catch::Contains("needs 2 bytes"));
  CHECK_THROWS_AS(decode_hex(duct::codec::msgpack, ""), duct::codec_error);
  std::string deep(300, '\x91');
  deep += '\x01';
  CHECK_THROWS_WITH(duct::decode(duct::codec::msgpack, duct::buffer(std::string_view(deep)).span()),
                    Catch::Contains("nested deeper than 256"));
}

TEST_CASE("check_msgpack accepts every kind of value", "[codec][msgpack]") {
  // nil, bools, ints of every width, floats, str8/16, bin8, ext, fixext, nested map and array
  for (const char* hex : {"c0", "c2", "c3", "7f", "e0", "cc80", "cd0100", "ce00010000", "cf0000000100000000",
                          "d080", "d1ff00", "d2ffff0000", "d3ffffffff00000000", "ca3f800000", "cb3ff0000000000000",
                          "a3616263", "d903616263", "da0003616263", "c403010203", "c7020101 02", "d40101",
                          "d80100000000000000000000000000000000", "82a16101a16292c0c3", "dc0002c0c0",
                          "de0001a161c0"}) {
    std::string h = hex;
    h.erase(std::remove(h.begin(), h.end(), ' '), h.end());
    CAPTURE(h);
    CHECK_NOTHROW(duct::check_msgpack(test::unhex(h).span()));
  }
}

TEST_CASE("check_msgpack refuses what decoding refuses, naming the problem", "[codec][msgpack][limits]") {
  const std::pair<const char*, const char*> refused[] = {
      {"", "needs 1 bytes"},                         // nothing at all
      {"c1", "0xc1"},                                // the reserved byte
      {"0102", "1 trailing bytes"},                  // two values, not one
      {"cd01", "needs 2 bytes"},                     // a uint16 cut short
      {"ddffffffff", "claims 4294967295 elements"},  // an array32 claiming more than remains
      {"de000201", "claims 4 elements"},             // a map16 of 2 pairs: 4 values, 1 byte left
      {"dbffffffff41", "needs 4294967295 bytes"},    // a str32 of 4 GiB
      {"92cd01", "needs 2 bytes"},                   // an array whose first item is cut short
  };
  for (const auto& [hex, why] : refused) {
    CAPTURE(hex);
    CHECK_THROWS_WITH(duct::check_msgpack(test::unhex(hex).span()), Catch::Contains(why));
    CHECK_THROWS_WITH(decode_hex(duct::codec::msgpack, hex), Catch::Contains(why));
  }
  std::string deep(300, '\x91');
  deep += '\x01';
  CHECK_THROWS_WITH(duct::check_msgpack(std::as_bytes(std::span(deep))), Catch::Contains("nested deeper than 256"));
  CHECK_NOTHROW(duct::check_msgpack(std::as_bytes(std::span(deep)), {.max_depth = 300}));
}

TEST_CASE("the raw codec carries bytes untouched", "[codec][raw]") {
  CHECK(duct::encode(duct::codec::raw, packed(std::string("abc")).span()).view() == "abc");
  CHECK(duct::encode(duct::codec::raw, packed(std::vector<char>{'\0', 'x'}).span()).view() == std::string_view("\0x", 2));
  CHECK_THROWS_AS(duct::encode(duct::codec::raw, packed(42).span()), duct::codec_error);
  duct::value v = decode_hex(duct::codec::raw, "00ff");
  REQUIRE(v.get().type == msgpack::type::BIN);
  CHECK(v.get().via.bin.size == 2);
  CHECK(decode_hex(duct::codec::raw, "").get().via.bin.size == 0);
}

TEST_CASE("floats stay floats on the wire, unlike msgpack-cxx's default packer", "[codec][msgpack]") {
  CHECK(test::hex(packed(2.0)) == "cb4000000000000000");
  CHECK(test::hex(packed(-0.0)) == "cb8000000000000000");
  CHECK(test::hex(packed(1099511627776.0)) == "cb4270000000000000");
  CHECK(test::hex(packed(1.0f)) == "ca3f800000");
  CHECK(test::hex(packed(2)) == "02");
  // A decoded float object re-packs as a float too.
  duct::value v = duct::decode(duct::codec::msgpack, packed(3.0).span());
  CHECK(test::hex(packed(v.get())) == "cb4008000000000000");
}

TEST_CASE("is_valid_utf8 accepts well-formed text and nothing else", "[codec]") {
  CHECK(duct::is_valid_utf8(""));
  CHECK(duct::is_valid_utf8("plain"));
  CHECK(duct::is_valid_utf8("\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbd"));  // é, 😀, and a genuine U+FFFD
  CHECK_FALSE(duct::is_valid_utf8("\xff"));
  CHECK_FALSE(duct::is_valid_utf8("\xc0\xaf"));          // overlong
  CHECK_FALSE(duct::is_valid_utf8("\xed\xa0\x80"));      // surrogate
  CHECK_FALSE(duct::is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  CHECK_FALSE(duct::is_valid_utf8("ab\xe2\x82"));        // truncated
}

TEST_CASE("pack_buffer::take hands its bytes to a buffer without copying them", "[codec][msgpack]") {
  duct::pack_buffer sb(16);
  msgpack::pack(sb, std::string(100, 'x'));  // past the first 16 bytes: the storage was reallocated
  const char* storage = sb.data();
  const std::string expected(sb.data(), sb.size());
  duct::buffer b = sb.take();
  CHECK(reinterpret_cast<const char*>(b.data()) == storage);
  CHECK(b.view() == expected);
  CHECK(sb.size() == 0);
  CHECK(sb.data() == nullptr);
  msgpack::pack(sb, 7);  // still usable
  CHECK(sb.size() == 1);

  duct::pack_buffer empty(0);
  CHECK(empty.take().empty());
  CHECK(duct::buffer::adopt(nullptr, 5).size() == 0);  // nothing adopted: an empty buffer, never a size without bytes
}
