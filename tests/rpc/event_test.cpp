// The zerorpc event codec against every body captured from zerorpc-python and zerorpc-node.
#include <catch2/catch.hpp>

#include <rpc/event.hpp>

#include "support.hpp"

namespace {

std::vector<nlohmann::json> all_captured_events() {
  auto lines = test::load_vectors("zerorpc-python.jsonl");
  auto node = test::load_vectors("zerorpc-node.jsonl");
  lines.insert(lines.end(), node.begin(), node.end());
  return lines;
}

nlohmann::json id_json(const rpc::message_id& id) {
  if (!id.binary()) return id.bytes();
  return {{"$bin", test::hex(std::as_bytes(std::span(id.bytes().data(), id.bytes().size())))}};
}

nlohmann::json args_json(const rpc::event& e) {
  std::string out;
  duct::write_json(e.args(), out, true);
  return nlohmann::json::parse(out);
}

// Whether the peer that wrote this line is zerorpc-python (whose bytes we reproduce exactly).
bool written_by_python(const nlohmann::json& line) {
  std::string peers = line.value("peers", "python-client/python-server");
  bool from_client = line["dir"] == "c2s";
  return from_client ? peers.starts_with("python-client") : peers.ends_with("python-server");
}

rpc::event decode_hex(std::string_view hex) { return rpc::decode_event(test::unhex(hex).span()); }

}  // namespace

TEST_CASE("every captured body decodes to what the capture says", "[rpc][event][vectors]") {
  int bodies = 0;
  for (const auto& line : all_captured_events()) {
    CAPTURE(line["case"].get<std::string>(), line["seq"].get<int>(), line.value("peers", ""));
    REQUIRE(line["frames_hex"].size() == 2);
    CHECK(line["frames_hex"][0] == "");  // the empty delimiter frame
    rpc::event e = decode_hex(line["frames_hex"][1].get<std::string>());
    const auto& decoded = line["decoded"];
    CHECK(e.name == decoded[1].get<std::string>());
    CHECK(id_json(e.header.id) == decoded[0]["message_id"]);
    if (decoded[0].contains("response_to")) {
      REQUIRE(e.header.response_to);
      CHECK(id_json(*e.header.response_to) == decoded[0]["response_to"]);
    } else {
      CHECK_FALSE(e.header.response_to);
    }
    CHECK(e.header.version == 3);
    CHECK(args_json(e) == decoded[2]);
    ++bodies;
  }
  CHECK(bodies == 92);
}

TEST_CASE("re-encoding reproduces zerorpc-python's bytes exactly", "[rpc][event][vectors]") {
  int python = 0;
  for (const auto& line : all_captured_events()) {
    if (!written_by_python(line)) continue;
    CAPTURE(line["case"].get<std::string>(), line["seq"].get<int>());
    const std::string body = line["frames_hex"][1];
    rpc::event e = decode_hex(body);
    CHECK(test::hex(rpc::encode_event(e.header, e.name, e.args())) == body);
    ++python;
  }
  CHECK(python == 69);
}

TEST_CASE("node's str ids stay str, and its float-encoded integers stay floats", "[rpc][event][vectors]") {
  int node = 0;
  for (const auto& line : all_captured_events()) {
    if (written_by_python(line)) continue;
    CAPTURE(line["case"].get<std::string>(), line["seq"].get<int>());
    rpc::event e = decode_hex(line["frames_hex"][1].get<std::string>());
    CHECK_FALSE(e.header.id.binary());
    CHECK(e.header.id.bytes().size() == 36);
    // Our encoding differs from node's only in header key order; decoding it gives the same event back.
    rpc::event again = rpc::decode_event(rpc::encode_event(e.header, e.name, e.args()).span());
    CHECK(again.header.id == e.header.id);
    CHECK(again.header.response_to == e.header.response_to);
    CHECK(args_json(again) == args_json(e));
    if (line["case"] == "echo_2pow40" && line["dir"] == "c2s") {
      REQUIRE(e.args().type == msgpack::type::ARRAY);
      CHECK(e.args().via.array.ptr[0].type == msgpack::type::FLOAT64);
    }
    ++node;
  }
  CHECK(node == 23);
}

TEST_CASE("a reply echoes the request id with the msgpack type it came in", "[rpc][event]") {
  rpc::message_id from_python("0123456789abcdef0123456789abcdef", true);
  rpc::message_id from_node("0123456789abcdef0123456789abcdef", false);
  CHECK_FALSE(from_python == from_node);
  for (const auto& id : {from_python, from_node}) {
    duct::buffer reply = rpc::encode_event({rpc::message_id("x", true), id}, "OK", std::make_tuple(5));
    rpc::event e = rpc::decode_event(reply.span());
    REQUIRE(e.header.response_to);
    CHECK(*e.header.response_to == id);
    CHECK(e.channel() == id);
  }
}

// Ids up to 40 bytes are kept inline and longer ones on the heap: both must travel, compare and hash by their bytes.
TEST_CASE("ids of any length round-trip, compare and hash by their bytes", "[rpc][event]") {
  for (std::size_t n : {0, 1, 32, 36, 40, 41, 300}) {
    std::string bytes(n, 'a');
    for (std::size_t i = 0; i < n; ++i) bytes[i] = static_cast<char>('a' + i % 26);
    rpc::message_id id(bytes, n % 2 == 0);
    CHECK(id.bytes() == bytes);
    CHECK(id.empty() == (n == 0));
    rpc::message_id copy = id;
    CHECK(copy == id);
    CHECK(rpc::message_id_hash()(copy) == rpc::message_id_hash()(id));
    if (n > 0) {
      std::string other = bytes;
      other.back() = '!';
      CHECK_FALSE(rpc::message_id(other, id.binary()) == id);
    }
    duct::buffer reply = rpc::encode_event({rpc::message_id("x", true), id}, "OK", std::make_tuple(5));
    rpc::event e = rpc::decode_event(reply.span());
    REQUIRE(e.header.response_to);
    CHECK(*e.header.response_to == id);
    CHECK(e.header.response_to->bytes() == bytes);
  }
}

TEST_CASE("ids are made as zerorpc-python makes them", "[rpc][event]") {
  rpc::id_generator ids;
  rpc::message_id a = ids.next(), b = ids.next();
  CHECK(a.binary());
  REQUIRE(a.bytes().size() == 32);
  CHECK(a.bytes().find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(a.bytes().substr(8) == b.bytes().substr(8));
  CHECK(std::stoul(std::string(b.bytes().substr(0, 8)), nullptr, 16) ==
        ((std::stoul(std::string(a.bytes().substr(0, 8)), nullptr, 16) + 1) & 0xffffffffu));
  CHECK_FALSE(rpc::id_generator().next().bytes().substr(8) == a.bytes().substr(8));
}

TEST_CASE("malformed events are protocol errors that say what is wrong", "[rpc][event][limits]") {
  CHECK_THROWS_WITH(decode_hex("c1"), Catch::Contains("not msgpack"));
  CHECK_THROWS_WITH(decode_hex("92c0c0"), Catch::Contains("array of 2"));
  CHECK_THROWS_WITH(decode_hex("a3616263"), Catch::Contains("msgpack str"));
  // header not a map: taken as empty, so no message_id
  CHECK_THROWS_WITH(decode_hex("93c0a361646490"), Catch::Contains("no message_id"));
  // message_id an integer
  CHECK_THROWS_WITH(decode_hex("9381aa6d6573736167655f696405a361646490"), Catch::Contains("string or bytes"));
  // name an integer
  CHECK_THROWS_WITH(decode_hex("9381aa6d6573736167655f6964a1780190"), Catch::Contains("not a string"));
  // name not UTF-8
  CHECK_THROWS_WITH(decode_hex("9381aa6d6573736167655f6964a178a1ff90"), Catch::Contains("UTF-8"));
  // an array claiming more elements than bytes: refused before allocation
  test::reset_largest_allocation();
  CHECK_THROWS_AS(decode_hex("dd7fffffff"), rpc::protocol_error);
  CHECK(test::largest_allocation() < 4096);
}

TEST_CASE("unknown header keys are ignored and args may be any value", "[rpc][event]") {
  // {"message_id": "x", "zz": 1} "STREAM" 7
  rpc::event e = decode_hex("9382aa6d6573736167655f6964a178a27a7a01a653545245414d07");
  CHECK(e.name == "STREAM");
  CHECK(e.args().type == msgpack::type::POSITIVE_INTEGER);
  CHECK(e.channel() == rpc::message_id("x", false));
}
