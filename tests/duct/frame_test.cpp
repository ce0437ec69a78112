// The sans-I/O frame codec: both framings, partial input, limits.
#include <catch2/catch.hpp>

#include <array>

#include <duct/error.hpp>
#include <duct/frame.hpp>

#include "support.hpp"

using duct::framing;

namespace {

std::string header_hex(framing f, std::uint64_t size) {
  std::array<std::byte, duct::max_header_size> h{};
  std::size_t n = duct::encode_header(f, size, h);
  return test::hex(std::span<const std::byte>(h.data(), n));
}

std::optional<duct::frame_header> parse(framing f, std::string_view hex, std::uint64_t limit = UINT64_MAX) {
  duct::buffer b = test::unhex(hex);
  return duct::parse_header(f, b.span(), limit, "test");
}

}  // namespace

TEST_CASE("ductworks headers are 0x54 and a big-endian uint32", "[frame]") {
  CHECK(header_hex(framing::ductworks, 0) == "5400000000");
  CHECK(header_hex(framing::ductworks, 0x13) == "5400000013");
  CHECK(header_hex(framing::ductworks, 204802) == "5400032002");
  CHECK(header_hex(framing::ductworks, 0xffffffffu) == "54ffffffff");
  CHECK_THROWS_AS(header_hex(framing::ductworks, 0x100000000u), duct::protocol_error);
}

TEST_CASE("multiprocessing headers use the ffffffff escape above 2 GiB", "[frame]") {
  CHECK(header_hex(framing::multiprocessing, 5) == "00000005");
  CHECK(header_hex(framing::multiprocessing, 0) == "00000000");
  CHECK(header_hex(framing::multiprocessing, 0x7fffffff) == "7fffffff");
  CHECK(header_hex(framing::multiprocessing, 0x80000000u) == "ffffffff0000000080000000");
  CHECK(header_hex(framing::multiprocessing, 5ull << 30) == "ffffffff0000000140000000");

  auto h = parse(framing::multiprocessing, "ffffffff0000000140000000");
  REQUIRE(h);
  CHECK(h->header_size == 12);
  CHECK(h->payload_size == 5ull << 30);
}

TEST_CASE("a partial header asks for more bytes", "[frame]") {
  CHECK_FALSE(parse(framing::ductworks, ""));
  CHECK_FALSE(parse(framing::ductworks, "54"));
  CHECK_FALSE(parse(framing::ductworks, "54000000"));
  CHECK(parse(framing::ductworks, "5400000001")->payload_size == 1);
  CHECK_FALSE(parse(framing::multiprocessing, "000000"));
  CHECK_FALSE(parse(framing::multiprocessing, "ffffffff00000001"));
}

TEST_CASE("a bad magic byte is a protocol error naming the byte", "[frame]") {
  try {
    parse(framing::ductworks, "5500000004");
    FAIL("no exception");
  } catch (const duct::protocol_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("0x55") && Catch::Contains("test"));
  }
}

TEST_CASE("a length above the limit is rejected from the header alone", "[frame]") {
  CHECK(parse(framing::ductworks, "5400000400", 1024)->payload_size == 1024);
  CHECK_THROWS_WITH(parse(framing::ductworks, "5400000401", 1024), Catch::Contains("exceeds the limit of 1024"));
  CHECK_THROWS_AS(parse(framing::ductworks, "54ffffffff", 64 << 20), duct::protocol_error);
  CHECK_THROWS_AS(parse(framing::multiprocessing, "ffffffffffffffffffffffff", 64 << 20), duct::protocol_error);
}

TEST_CASE("a negative multiprocessing length is a protocol error", "[frame]") {
  CHECK_THROWS_WITH(parse(framing::multiprocessing, "80000000"), Catch::Contains("negative"));
  CHECK_THROWS_AS(parse(framing::multiprocessing, "fffffffe"), duct::protocol_error);
}
