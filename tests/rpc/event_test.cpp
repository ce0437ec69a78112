// The zerorpc event codec against every body captured from zerorpc-python and zerorpc-node.
#include <catch2/catch.hpp>

#include <cstdio>
#include <string>

#include <rpc/event.hpp>

#include "access.hpp"
#include "event_compare.hpp"
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

namespace {

// Whether the quick decoder and the reference agree on `body`: what the quick one accepts, the reference decodes to
// the same event. Returns: whether the quick one accepted it.
bool decoders_agree(std::span<const std::byte> body, const duct::decode_limits& limits = {}) {
  rpc::event quick;
  if (!rpc::detail::decode_event_quickly(body, quick, limits)) return false;
  rpc::event checked;
  REQUIRE_NOTHROW(rpc::detail::decode_event_checked(body, checked, limits));
  CHECK(test::same_event(quick, checked));
  return true;
}

}  // namespace

TEST_CASE("the quick decoder takes every captured body and decodes it as the reference does", "[rpc][event][vectors]") {
  for (const auto& line : all_captured_events()) {
    CAPTURE(line["case"].get<std::string>(), line["seq"].get<int>(), line.value("peers", ""));
    CHECK(decoders_agree(test::unhex(line["frames_hex"][1].get<std::string>()).span()));
  }
  // Our own requests and replies, with every header flag we send.
  rpc::event_header h{rpc::message_id("abc", true), rpc::message_id("channel", false)};
  h.accepts_deferred = h.accepts_stop = h.wants_progress = h.oneway = h.accepts_batches = true;
  h.version = 1000;
  CHECK(decoders_agree(rpc::encode_event(h, "name", std::make_tuple(1, "two", std::vector<int>{3})).span()));
  // A NaN among the args (found by the fuzz target): the same bytes both ways, though NaN == NaN is false.
  const duct::buffer nan_body = test::unhex(
      "9382aa6d6573736167655f6964c4206262386461663161383765313436613939623037346537626134363031333837a17603a4656368"
      "6f9181a66e65737465649401cbffffff9000000000c0c3");
  CHECK(decoders_agree(nan_body.span()));
}

TEST_CASE("the quick decoder accepts nothing the reference refuses, whatever the bytes", "[rpc][event][limits]") {
  // Every captured body, and bodies with each byte replaced, and cut short at every length, under several depth
  // limits: wherever the quick decoder accepts, the reference decodes the same event.
  std::vector<duct::buffer> bodies;
  for (const auto& line : all_captured_events()) bodies.push_back(test::unhex(line["frames_hex"][1].get<std::string>()));
  bodies.push_back(test::unhex("9383aa6d6573736167655f6964a178a17603a27a7a9101a3616464c0"));  // a list in the header
  int accepted = 0, tried = 0;
  for (const duct::buffer& body : bodies) {
    std::vector<std::byte> b(body.span().begin(), body.span().end());
    for (std::size_t max_depth : {1, 2, 3, 256}) {
      const duct::decode_limits limits{max_depth};
      for (std::size_t n = 0; n <= b.size(); ++n) accepted += decoders_agree(std::span(b.data(), n), limits) ? 1 : 0;
    }
    for (std::size_t i = 0; i < b.size(); ++i) {
      const std::byte was = b[i];
      for (unsigned with : {0x00u, 0x01u, 0x7fu, 0x80u, 0x90u, 0x91u, 0xa0u, 0xa1u, 0xc0u, 0xc1u, 0xc3u, 0xc4u, 0xccu,
                            0xcdu, 0xd0u, 0xd9u, 0xdcu, 0xdeu, 0xffu, std::to_integer<unsigned>(was) + 1}) {
        b[i] = static_cast<std::byte>(with);
        accepted += decoders_agree(b) ? 1 : 0;
        ++tried;
      }
      b[i] = was;
    }
  }
  CHECK(accepted > 0);
  CHECK(accepted < tried);  // most changes break the body; those the quick decoder takes, the reference took
}

TEST_CASE("bodies of unusual shape still decode, through the reference", "[rpc][event]") {
  // A list under an unknown header key, an integer key, a negative version: the quick decoder leaves each to the
  // reference, which decodes it as before (or refuses it, as before). A bin32 id it reads itself.
  const duct::buffer list = test::unhex("9383aa6d6573736167655f6964a178a17603a27a7a9101a3616464c0");
  rpc::event e;
  CHECK_FALSE(rpc::detail::decode_event_quickly(list.span(), e));
  e = rpc::decode_event(list.span());
  CHECK(e.name == "add");
  CHECK(e.header.version == 3);
  rpc::event integer_key = decode_hex("9382aa6d6573736167655f6964a1780102a3616464c0");
  CHECK(integer_key.name == "add");
  rpc::event bin32 = decode_hex("9381aa6d6573736167655f6964c60000000178a3616464c0");
  CHECK(bin32.header.id == rpc::message_id("x", true));
  CHECK_FALSE(rpc::detail::decode_event_quickly(test::unhex("9382aa6d6573736167655f6964a1780102a3616464c0").span(), e));
  CHECK_THROWS_WITH(decode_hex("9382aa6d6573736167655f6964a178a176ffa3616464c0"), Catch::Contains("'v'"));
}

TEST_CASE("each header key with each kind of value decodes as the reference decodes it", "[rpc][event][limits]") {
  // [{"message_id": "x", KEY: VALUE}, "add", [1]] for every key we read (and others) with every kind of value: the
  // decoder the library uses gives the reference's event, or refuses where the reference does.
  const std::vector<std::string> keys = {"aa6d6573736167655f6964", "ab726573706f6e73655f746f", "a176", "a3616464",
                                         "01", "c40176"};  // message_id, response_to, v, add, 1, bin "v"
  const std::vector<std::string> values = {"c0", "c2", "c3", "00", "7f", "cc80", "cd03e8", "cd03e9", "cdffff", "ce00000005",
                                     "ff", "d005", "d0ff", "a178", "d90178", "da000178", "c40178", "c5000178",
                                     "c60000000178", "9101", "80", "ca3f800000", "d40100"};
  std::vector<std::string> all_keys = keys;
  for (std::string_view flag : {rpc::deferred_header_key, rpc::stop_header_key, rpc::progress_header_key,
                                rpc::oneway_header_key, rpc::batch_header_key}) {
    char len[3];
    std::snprintf(len, sizeof len, "%02x", 0xa0 + static_cast<unsigned>(flag.size()));
    all_keys.push_back(len + test::hex(std::as_bytes(std::span(flag.data(), flag.size()))));
  }
  int refused = 0, decoded = 0;
  for (const std::string& key : all_keys) {
    for (const std::string& value : values) {
      const std::string hex = "9382aa6d6573736167655f6964a178" + key + value + "a36164649101";
      CAPTURE(hex);
      const duct::buffer body = test::unhex(hex);
      rpc::event ours, reference;
      bool reference_refused = false;
      try {
        rpc::detail::decode_event_checked(body.span(), reference);
      } catch (const rpc::protocol_error&) {
        reference_refused = true;
      }
      if (reference_refused) {
        CHECK_THROWS_AS(rpc::detail::decode_event_into(body.span(), ours), rpc::protocol_error);
        ++refused;
      } else {
        REQUIRE_NOTHROW(rpc::detail::decode_event_into(body.span(), ours));
        CHECK(test::same_event(ours, reference));
        ++decoded;
      }
    }
  }
  CHECK(refused > 0);
  CHECK(decoded > refused);
}

TEST_CASE("an event's head is written byte for byte as msgpack-c's packer writes it", "[rpc][event]") {
  // The reference: the head packed part by part with msgpack-c, keys in zerorpc-python's order.
  auto packed = [](const rpc::event_header& h, std::string_view name) {
    duct::pack_buffer out;
    msgpack::packer<duct::pack_buffer> p(out);
    const std::pair<std::string_view, bool> flags[] = {{rpc::deferred_header_key, h.accepts_deferred},
                                                        {rpc::stop_header_key, h.accepts_stop},
                                                        {rpc::progress_header_key, h.wants_progress},
                                                        {rpc::oneway_header_key, h.oneway},
                                                        {rpc::batch_header_key, h.accepts_batches}};
    std::uint32_t n = 2 + (h.response_to ? 1 : 0);
    for (const auto& f : flags) n += f.second ? 1 : 0;
    p.pack_array(3);
    p.pack_map(n);
    p.pack(std::string_view("message_id"));
    p.pack(h.id);
    p.pack(std::string_view("v"));
    p.pack(h.version);
    if (h.response_to) {
      p.pack(std::string_view("response_to"));
      p.pack(*h.response_to);
    }
    for (const auto& [key, on] : flags) {
      if (!on) continue;
      p.pack(key);
      p.pack(true);
    }
    p.pack(name);
    return test::hex(out.take());
  };
  auto written = [](const rpc::event_header& h, std::string_view name) {
    duct::pack_buffer out;
    rpc::detail::pack_event_head(out, h, name);
    return test::hex(out.take());
  };
  int heads = 0;
  // Ids and names of every length a one-byte length covers and past it (str and bin, fixstr and str8, 255, 256),
  // each flag alone and all together, versions the fixint holds and those it does not.
  for (std::size_t len : {0, 1, 31, 32, 36, 40, 41, 255, 256, 300}) {
    const std::string bytes(len, 'x');
    for (bool binary : {true, false}) {
      for (int flag = -1; flag <= 5; ++flag) {
        for (int version : {3, 0, 127, 128, 1000, -1}) {
          rpc::event_header h{rpc::message_id(bytes, binary), rpc::message_id(bytes, !binary)};
          if (flag == 0) h.response_to.reset();
          h.accepts_deferred = flag == 1 || flag == 5;
          h.accepts_stop = flag == 2 || flag == 5;
          h.wants_progress = flag == 3 || flag == 5;
          h.oneway = flag == 4 || flag == 5;
          h.accepts_batches = flag == 5;
          h.version = version;
          CAPTURE(len, binary, flag, version);
          CHECK(written(h, bytes) == packed(h, bytes));
          ++heads;
        }
      }
    }
  }
  CHECK(heads == 10 * 2 * 7 * 6);
}
