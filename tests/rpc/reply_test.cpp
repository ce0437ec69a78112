// What a reply means for the call it answers, without a transport: the replies zerorpc-python and zerorpc-node
// really sent (tests/vectors) settle as their own clients saw them, a streamed reply fills a stream's state, ERR
// names become their error types, and malformed replies are protocol errors that name the call.
#include <catch2/catch.hpp>

#include <map>
#include <optional>
#include <string>

#include <duct/msgpack.hpp>
#include <rpc/error.hpp>
#include <rpc/event.hpp>

#include "reply.hpp"
#include "stream_state.hpp"
#include "support.hpp"

using rpc::detail::reply;
using rpc::detail::settle;

namespace {

rpc::event reply_event(std::string_view name, const msgpack::object& args) {
  duct::pack_buffer packed;
  msgpack::pack(packed, args);
  rpc::event_header h{rpc::message_id("id", true), rpc::message_id("call", true)};
  duct::buffer body =
      rpc::encode_event_packed(h, name, std::as_bytes(std::span(packed.data(), packed.size())));
  return rpc::decode_event(body.span());
}

template <class T>
rpc::event reply_of(std::string_view name, const T& args) {
  msgpack::zone z;
  return reply_event(name, msgpack::object(args, z));
}

std::string json_of(const msgpack::object& o) {
  std::string out;
  duct::write_json(o, out, true);  // bytes too (echo_bin)
  return out;
}

}  // namespace

TEST_CASE("replies: captured zerorpc-python and zerorpc-node replies settle as their clients saw them",
          "[rpc][reply][vectors]") {
  std::map<std::string, int> settled;  // by case, across all captures
  for (const std::string file : {"zerorpc-python.jsonl", "zerorpc-node.jsonl"}) {
    // A streamed reply's events, in order, go to one state for each capture (the node file holds two: node's client
    // against Python's server, and Python's client against node's server).
    std::map<std::string, std::shared_ptr<rpc::detail::stream_state>> streams;
    std::map<std::string, bool> stream_ended;
    for (const auto& line : test::load_vectors(file)) {
      if (line["dir"] != "s2c") continue;
      const std::string name = line["case"];
      CAPTURE(file, name, line["event"].get<std::string>());
      duct::buffer body = test::unhex(line["frames_hex"].back().get<std::string>());
      std::optional<rpc::event> ev(rpc::decode_event(body.span()));
      duct::value result;
      std::string token;
      if (name == "count3_stream") {
        CHECK_THROWS_AS(settle(*ev, {"peer: count3"}, result, token), rpc::protocol_error);  // call() cannot take it
        auto& st = streams[line.value("peers", "")];
        if (!st) st = std::make_shared<rpc::detail::stream_state>("peer: count3", 16);
        stream_ended[line.value("peers", "")] = rpc::detail::settle_stream(*ev, *st, false);
      } else if (ev->name == "_zpc_hb") {
        CHECK(settle(*ev, {"peer: m"}, result, token) == reply::alive);
      } else if (ev->name == "ERR") {
        const std::string want = ev->args().via.array.ptr[0].as<std::string>();
        try {
          (void)settle(*ev, {"peer: m"}, result, token);
          FAIL("an ERR settled without an error");
        } catch (const rpc::unknown_method_error& e) {
          CHECK(want == "NameError");
          CHECK(e.message() == "no_such_method");
        } catch (const rpc::remote_error& e) {
          CHECK(e.name() == want);
          CHECK(e.message() == "bad thing");
          CHECK_FALSE(e.traceback().empty());
        }
      } else {
        REQUIRE(ev->name == "OK");
        const std::string want = json_of(ev->args().via.array.ptr[0]);
        REQUIRE(settle(*ev, {"peer: m"}, result, token) == reply::result);
        ev.reset();  // the result must own its value, not point into the event
        CHECK(json_of(result.get()) == want);
      }
      ++settled[name];
    }
    REQUIRE_FALSE(streams.empty());
    for (auto& [peers, st] : streams) {
      CAPTURE(file, peers);
      CHECK(stream_ended[peers]);
      for (int i = 0; i < 3; ++i) {
        auto item = st->next(std::nullopt);
        REQUIRE(item);
        CHECK(item->as<int>() == i);
      }
      CHECK_FALSE(st->next(std::nullopt));  // then the clean end
    }
  }
  // One capture from zerorpc-python's file, two from zerorpc-node's.
  CHECK(settled["add"] == 3);
  CHECK(settled["boom_err"] == 3);
  CHECK(settled["count3_stream"] == 12);
  CHECK(settled["slow6_heartbeat"] >= 4);  // heartbeats, then the result
  CHECK(settled["echo_nested"] == 1);
  CHECK(settled.size() >= 15);
}

TEST_CASE("replies: ERR names become their error types - others stay remote errors", "[rpc][reply][errors]") {
  duct::value result;
  std::string token;
  auto err = [&](const char* name) {
    rpc::event ev = reply_of("ERR", std::make_tuple(std::string(name), std::string("why"), msgpack::type::nil_t()));
    (void)settle(ev, {"ep", "m"}, result, token);
  };
  CHECK_THROWS_AS(err("NameError"), rpc::unknown_method_error);
  CHECK_THROWS_AS(err("Cancelled"), rpc::cancelled_error);
  CHECK_THROWS_AS(err("ShuttingDown"), rpc::shutting_down_error);
  CHECK_THROWS_AS(err("StillRunning"), rpc::still_running_error);
  CHECK_THROWS_AS(err("Overloaded"), rpc::overloaded_error);
  CHECK_THROWS_AS(err("UnknownToken"), rpc::unknown_token_error);
  CHECK_THROWS_WITH(err("TypeError"), "TypeError: why");
  // An ERR whose args are not even an array is still an error of the call, not a crash.
  rpc::event odd = reply_of("ERR", 42);
  CHECK_THROWS_WITH(settle(odd, {"ep", "m"}, result, token), "RemoteError: ");
}

TEST_CASE("replies: malformed and unexpected replies are protocol errors naming the call", "[rpc][reply][errors]") {
  duct::value result;
  std::string token;
  const rpc::detail::call_name where("tcp://h:1", "add");
  rpc::event empty_ok = reply_of("OK", std::make_tuple());
  CHECK_THROWS_WITH(settle(empty_ok, where, result, token), "tcp://h:1: add: OK without a value");
  rpc::event not_array = reply_of("OK", 5);
  CHECK_THROWS_AS(settle(not_array, where, result, token), rpc::protocol_error);
  rpc::event bad_token = reply_of("DEFERRED", std::make_tuple(7));
  CHECK_THROWS_WITH(settle(bad_token, where, result, token), "tcp://h:1: add: DEFERRED without a token");
  rpc::event stranger = reply_of("WHAT", std::make_tuple());
  CHECK_THROWS_WITH(settle(stranger, where, result, token), "tcp://h:1: add: unexpected event WHAT");
  rpc::event deferred = reply_of("DEFERRED", std::make_tuple(std::string("abc")));
  CHECK(settle(deferred, where, result, token) == reply::deferred);
  CHECK(token == "abc");
}

TEST_CASE("replies: credit events carry their count - anything else is not credit", "[rpc][reply][credit]") {
  duct::buffer body = rpc::detail::credit_event(rpc::message_id("id", true), rpc::message_id("call", true), 64);
  rpc::event ev = rpc::decode_event(body.span());
  CHECK(ev.name == "_zpc_more");
  REQUIRE(ev.header.response_to);
  CHECK(*ev.header.response_to == rpc::message_id("call", true));
  CHECK(rpc::detail::credit_of(ev) == 64);
  CHECK_FALSE(rpc::detail::credit_of(reply_of("_zpc_more", std::make_tuple(-1))));
  CHECK_FALSE(rpc::detail::credit_of(reply_of("_zpc_more", std::make_tuple(std::string("many")))));
  CHECK_FALSE(rpc::detail::credit_of(reply_of("_zpc_more", std::make_tuple(1, 2))));
  CHECK_FALSE(rpc::detail::credit_of(reply_of("_zpc_hb", std::make_tuple(5))));
  CHECK(rpc::detail::credit_of(reply_of("_zpc_more", std::make_tuple(UINT64_MAX))) == INT64_MAX);
}
