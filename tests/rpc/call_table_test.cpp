// The client's call table without sockets or clocks: replies captured from zerorpc-python (tests/vectors) settle
// the calls they answer, and event sequences — heartbeats and their loss, time limits, deferral followed up and
// cancelled, stream credit and stops, chunked input, bad events — give the events to send and the settlements
// asserted here.
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include <duct/msgpack.hpp>
#include <rpc/error.hpp>
#include <rpc/event.hpp>

#include "call_table.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using rpc::detail::call_spec;
using rpc::detail::call_table;
using steady = rpc::detail::clock;
using rpc::detail::effects;

namespace {

const steady::time_point t0 = steady::time_point() + 1000h;  // any instant: the table reads no clock

// A call to "ENDPOINT: METHOD" (a string literal: the spec keeps a view of its endpoint, as of a client's).
call_spec named(std::string_view where, std::chrono::milliseconds heartbeat = 100ms) {
  call_spec s;
  const std::size_t at = where.rfind(": ");
  s.endpoint = where.substr(0, at);
  s.method = where.substr(at + 2);
  s.heartbeat = heartbeat;
  return s;
}

call_spec limited(std::string_view where, std::chrono::milliseconds limit) {
  call_spec s = named(where);
  s.deadline = t0 + limit;
  s.limit = limit;
  return s;
}

// An event from the server on channel `to`.
template <class Args>
rpc::event from_server(const rpc::message_id& to, std::string_view name, const Args& args, bool accepts_stop = false) {
  static rpc::id_generator ids;
  rpc::event_header h{ids.next(), to};
  h.accepts_stop = accepts_stop;
  return rpc::decode_event(rpc::encode_event(h, name, args).span());
}

// A call's packed args array.
template <class... Args>
duct::buffer packed(const Args&... args) {
  duct::pack_buffer out;
  msgpack::pack(out, std::make_tuple(args...));
  return out.take();
}

rpc::event decoded(const duct::buffer& body) { return rpc::decode_event(body.span()); }

// The error a settlement carries, as text (empty if it has none).
std::string error_of(const rpc::detail::settlement& s) {
  if (!s.error) return {};
  try {
    std::rethrow_exception(s.error);
  } catch (const std::exception& e) {
    return e.what();
  }
}

template <class E>
bool is(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace

TEST_CASE("call table: zerorpc-python's captured replies settle the calls they answer", "[rpc][call_table][vectors]") {
  // Each capture's server events, its channel re-addressed to a call opened here (the table picks its own ids).
  std::map<std::string, std::vector<rpc::event>> replies;
  for (const auto& line : test::load_vectors("zerorpc-python.jsonl"))
    if (line["dir"] == "s2c")
      replies[line["case"]].push_back(
          rpc::decode_event(test::unhex(line["frames_hex"].back().get<std::string>()).span()));
  REQUIRE(replies.size() >= 15);
  int results = 0, errors = 0;
  for (auto& [name, events] : replies) {
    CAPTURE(name);
    call_table calls;
    effects fx;
    if (name == "count3_stream") {
      auto r = calls.open_stream("count", packed(3).span(), named("peer: count"), {}, t0);
      for (auto& ev : events) {
        ev.header.response_to = r.id;
        CHECK(calls.on_event(ev, t0, fx));
      }
      CHECK(calls.empty());  // STREAM_DONE ended it
      for (int i = 0; i < 3; ++i) CHECK(r.halves.out->next(std::nullopt)->as<int>() == i);
      CHECK_FALSE(r.halves.out->next(std::nullopt));
      continue;
    }
    auto state = std::make_shared<rpc::detail::call_state>();
    auto r = calls.open("m", packed().span(), named("peer: m"), state, t0);
    auto at = t0;
    for (auto& ev : events) {
      ev.header.response_to = r.id;
      at += 150ms;  // slow6's heartbeats come a period apart: each one keeps the call alive
      calls.tick(at, fx);
      CHECK(calls.on_event(ev, at, fx));
    }
    CHECK(calls.empty());
    REQUIRE(fx.settles.size() == 1);
    CHECK(fx.settles[0].state == state);
    if (events.back().name == "ERR") {
      ++errors;
      if (name == "unknown_method") {
        CHECK(is<rpc::unknown_method_error>(fx.settles[0].error));
      } else {
        CHECK(is<rpc::remote_error>(fx.settles[0].error));
        CHECK(error_of(fx.settles[0]) == "ValueError: bad thing");  // the server's, as zerorpc's client shows it
      }
    } else {
      ++results;
      CHECK_FALSE(fx.settles[0].error);
      CHECK_FALSE(fx.settles[0].value.get().is_nil());
    }
  }
  CHECK(results >= 12);
  CHECK(errors == 2);  // boom and unknown_method
}

TEST_CASE("call table: heartbeats go every period - two silent periods lose the server", "[rpc][call_table][heartbeat]") {
  call_table calls;
  auto state = std::make_shared<rpc::detail::call_state>();
  auto r = calls.open("slow", packed().span(), named("tcp://h:1: slow"), state, t0);
  rpc::event request = decoded(r.body);
  CHECK(request.name == "slow");
  CHECK(request.header.accepts_deferred);  // we follow a DEFERRED reply up ourselves

  effects fx;
  CHECK(calls.tick(t0 + 50ms, fx) == t0 + 100ms);  // nothing due yet; the first heartbeat is
  CHECK(fx.empty());
  calls.tick(t0 + 100ms, fx);
  REQUIRE(fx.sends.size() == 1);
  rpc::event hb = decoded(fx.sends[0]);
  CHECK(hb.name == "_zpc_hb");
  CHECK(hb.header.response_to == r.id);
  fx.sends.clear();

  rpc::event beat = from_server(r.id, "_zpc_hb", std::make_tuple(0));
  CHECK(calls.on_event(beat, t0 + 150ms, fx));
  calls.tick(t0 + 349ms, fx);  // heard at 150 ms: not lost before 350 ms
  CHECK(fx.settles.empty());
  CHECK(calls.size() == 1);
  calls.tick(t0 + 351ms, fx);
  REQUIRE(fx.settles.size() == 1);
  CHECK(is<rpc::lost_remote_error>(fx.settles[0].error));
  CHECK(error_of(fx.settles[0]) == "tcp://h:1: slow: lost remote after 200 ms without a heartbeat");
  CHECK(calls.empty());
}

TEST_CASE("call table: a deferred call is followed up on a fresh channel, and cancelled at its time limit",
          "[rpc][call_table][deferred]") {
  call_table calls;
  auto state = std::make_shared<rpc::detail::call_state>();
  auto r = calls.open("long", packed().span(), limited("ep: long", 1000ms), state, t0);
  effects fx;

  rpc::event deferred = from_server(r.id, "DEFERRED", std::make_tuple(std::string("tok-1")));
  CHECK(calls.on_event(deferred, t0 + 10ms, fx));
  REQUIRE(fx.sends.size() == 1);
  rpc::event wait = decoded(fx.sends[0]);
  CHECK(wait.name == "_ductrpc_wait");
  CHECK_FALSE(wait.header.response_to);  // a request of its own: a new channel
  CHECK(wait.args().via.array.ptr[0].as<std::string>() == "tok-1");
  CHECK(wait.args().via.array.ptr[1].as<double>() == Approx(0.99));  // what is left of the caller's limit
  CHECK(fx.settles.empty());
  fx.sends.clear();

  // The old channel is closed: its late events are not ours. The wait's own runs on.
  rpc::event late = from_server(r.id, "_zpc_hb", std::make_tuple(0));
  CHECK_FALSE(calls.on_event(late, t0 + 20ms, fx));
  rpc::event still = from_server(wait.header.id, "ERR",
                                 std::make_tuple(std::string("StillRunning"), std::string("tok-1"), msgpack::type::nil_t()));
  CHECK(calls.on_event(still, t0 + 500ms, fx));  // the wait's limit passed before the job ended: ask again
  REQUIRE(fx.sends.size() == 1);
  rpc::event again = decoded(fx.sends[0]);
  CHECK(again.name == "_ductrpc_wait");
  CHECK(again.header.id != wait.header.id);
  CHECK(fx.settles.empty());
  fx.sends.clear();

  calls.tick(t0 + 1000ms, fx);  // the caller's limit: the call fails, and the job is cancelled, not left running
  REQUIRE(fx.settles.size() == 1);
  CHECK(is<rpc::timeout_error>(fx.settles[0].error));
  CHECK(error_of(fx.settles[0]) == "ep: long: no result within 1000 ms");
  REQUIRE(fx.sends.size() == 1);
  rpc::event cancel = decoded(fx.sends[0]);
  CHECK(cancel.name == "_ductrpc_cancel");
  CHECK(cancel.args().via.array.ptr[0].as<std::string>() == "tok-1");
  CHECK(calls.empty());
}

TEST_CASE("call table: a StillRunning the caller asked for is its outcome - a token past the limit is cancelled at once",
          "[rpc][call_table][deferred]") {
  call_table calls;
  effects fx;
  auto asked = std::make_shared<rpc::detail::call_state>();
  auto r = calls.open("_ductrpc_wait", packed(std::string("t"), 1.0).span(), named("ep: _ductrpc_wait"), asked, t0);
  rpc::event still = from_server(r.id, "ERR", std::make_tuple(std::string("StillRunning"), std::string("t"), msgpack::type::nil_t()));
  CHECK(calls.on_event(still, t0, fx));
  REQUIRE(fx.settles.size() == 1);
  CHECK(is<rpc::still_running_error>(fx.settles[0].error));
  CHECK(fx.sends.empty());

  fx = {};
  auto late = std::make_shared<rpc::detail::call_state>();
  auto r2 = calls.open("long", packed().span(), limited("ep: long", 100ms), late, t0);
  rpc::event deferred = from_server(r2.id, "DEFERRED", std::make_tuple(std::string("tok-2")));
  CHECK(calls.on_event(deferred, t0 + 100ms, fx));  // the token came as the limit passed
  REQUIRE(fx.settles.size() == 1);
  CHECK(is<rpc::timeout_error>(fx.settles[0].error));
  REQUIRE(fx.sends.size() == 1);
  CHECK(decoded(fx.sends[0]).name == "_ductrpc_cancel");
  CHECK(calls.empty());
}

TEST_CASE("call table: stream credit, batches, and stops that wait for the server to say it understands them",
          "[rpc][call_table][stream]") {
  call_table calls;
  effects fx;
  rpc::detail::stream_spec kind;
  kind.window = 8;
  auto r = calls.open_stream("count", packed(10).span(), limited("ep: count", 50ms), kind, t0);
  rpc::event request = decoded(r.body);
  CHECK(request.header.accepts_batches);
  CHECK_FALSE(request.header.accepts_deferred);  // a stream cannot be answered with a token
  CHECK(calls.streams() == 1);
  calls.tick(t0 + 60ms, fx);  // no total time limit for a stream: its consumer limits each wait
  CHECK(fx.settles.empty());
  CHECK(calls.size() == 1);

  auto credit = calls.credit(r.id, 4);
  REQUIRE(credit);
  rpc::event more = decoded(*credit);
  CHECK(more.name == "_zpc_more");
  CHECK(more.header.response_to == r.id);
  CHECK(more.args().via.array.ptr[0].as<int>() == 4);

  // Dropped before its first event: nothing is sent until that event says whether the server understands a stop.
  calls.stop(r.id, fx);
  CHECK(fx.sends.empty());
  CHECK(calls.size() == 1);
  rpc::event first = from_server(r.id, "STREAM", std::make_tuple(1), /*accepts_stop=*/true);
  CHECK(calls.on_event(first, t0 + 70ms, fx));
  REQUIRE(fx.sends.size() == 1);
  rpc::event stop = decoded(fx.sends[0]);
  CHECK(stop.name == "_ductrpc_stop");
  CHECK(stop.header.response_to == r.id);
  CHECK(calls.empty());
  CHECK(calls.streams() == 0);
  CHECK_FALSE(calls.credit(r.id, 1));  // ended: nothing more goes on its channel

  // That server has said so: the next stream dropped before its first event is stopped at once.
  fx = {};
  auto r2 = calls.open_stream("count", packed(10).span(), named("ep: count"), kind, t0);
  calls.stop(r2.id, fx);
  REQUIRE(fx.sends.size() == 1);
  CHECK(decoded(fx.sends[0]).name == "_ductrpc_stop");
  CHECK(calls.empty());
}

TEST_CASE("call table: a chunked call's input follows the server's credit - a one-way one is forgotten once it ends",
          "[rpc][call_table][chunked]") {
  call_table calls;
  effects fx;
  rpc::detail::stream_spec kind;
  kind.chunked = true;
  kind.oneway = true;
  auto r = calls.open_stream("store", packed(1).span(), named("ep: store"), kind, t0);
  rpc::event request = decoded(r.body);
  CHECK(request.name == "_ductrpc_chunked");
  CHECK(request.args().via.array.ptr[0].as<std::string>() == "store");
  CHECK(request.header.accepts_stop);
  CHECK(request.header.oneway);
  REQUIRE(r.halves.in);

  // The server's announcement grants credit to the writer: a write then goes through the table's chunk().
  std::vector<std::string> sent;
  r.halves.in->attach([&](std::string_view name, std::span<const std::byte> args) {
    auto body = calls.chunk(r.id, name, args);
    if (!body) return false;
    rpc::event ev = decoded(*body);
    CHECK(ev.header.response_to == r.id);
    sent.push_back(ev.name);
    return true;
  });
  rpc::event announce = from_server(r.id, "_zpc_more", std::make_tuple(2), /*accepts_stop=*/true);
  CHECK(calls.on_event(announce, t0, fx));
  duct::pack_buffer item;
  msgpack::pack(item, 7);
  r.halves.in->write(std::as_bytes(std::span(item.data(), item.size())));
  CHECK(r.halves.in->end());
  CHECK(sent == std::vector<std::string>{"CHUNK", "CHUNK_DONE"});
  CHECK(calls.empty());  // one-way: forgotten once its input ended
  CHECK_FALSE(calls.chunk(r.id, "CHUNK", std::as_bytes(std::span(item.data(), item.size()))));
  CHECK(fx.empty());
}

TEST_CASE("call table: bad and foreign events are not taken - a malformed reply fails its call, naming it",
          "[rpc][call_table][errors]") {
  call_table calls;
  effects fx;
  auto state = std::make_shared<rpc::detail::call_state>();
  auto r = calls.open("add", packed(1, 2).span(), named("tcp://h:1: add"), state, t0);

  rpc::event request = from_server(r.id, "add", std::make_tuple(1, 2));
  request.header.response_to.reset();  // a request, for a server on the same link
  CHECK_FALSE(calls.on_event(request, t0, fx));
  rpc::id_generator other;
  rpc::event stranger = from_server(other.next(), "OK", std::make_tuple(3));  // a channel we never opened
  CHECK_FALSE(calls.on_event(stranger, t0, fx));
  CHECK(fx.empty());
  CHECK(calls.size() == 1);

  // A stream in answer to a plain call: the call fails, and the producer is stopped.
  rpc::event stream = from_server(r.id, "STREAM", std::make_tuple(1), /*accepts_stop=*/true);
  CHECK(calls.on_event(stream, t0, fx));
  REQUIRE(fx.settles.size() == 1);
  CHECK(is<rpc::protocol_error>(fx.settles[0].error));
  CHECK_THAT(error_of(fx.settles[0]), Catch::StartsWith("tcp://h:1: add"));
  REQUIRE(fx.sends.size() == 1);
  CHECK(decoded(fx.sends[0]).name == "_ductrpc_stop");
  CHECK(calls.empty());

  fx = {};
  auto state2 = std::make_shared<rpc::detail::call_state>();
  auto r2 = calls.open("add", packed(1, 2).span(), named("tcp://h:1: add"), state2, t0);
  rpc::event empty_ok = from_server(r2.id, "OK", std::make_tuple());
  CHECK(calls.on_event(empty_ok, t0, fx));
  REQUIRE(fx.settles.size() == 1);
  CHECK(error_of(fx.settles[0]) == "tcp://h:1: add: OK without a value");
}

TEST_CASE("call table: failing an owner's calls leaves the others - failing all ends streams and inputs too",
          "[rpc][call_table][close]") {
  call_table calls;
  effects fx;
  int a = 0, b = 0;
  call_spec mine = named("duct:x: m");
  mine.owner = &a;
  call_spec theirs = named("duct:x: m");
  theirs.owner = &b;
  auto s1 = std::make_shared<rpc::detail::call_state>();
  auto s2 = std::make_shared<rpc::detail::call_state>();
  calls.open("m", packed().span(), mine, s1, t0);
  calls.open("m", packed().span(), theirs, s2, t0);
  rpc::detail::stream_spec kind;
  kind.chunked = true;
  auto up = calls.open_stream("m", packed().span(), theirs, kind, t0);

  auto closed = [](const std::string& where) {
    return std::make_exception_ptr(rpc::closed_error(where + ": the client was closed"));
  };
  calls.fail_owner(&a, closed, fx);
  REQUIRE(fx.settles.size() == 1);
  CHECK(fx.settles[0].state == s1);
  CHECK(calls.size() == 2);

  fx = {};
  calls.fail_all(closed, fx);
  REQUIRE(fx.settles.size() == 1);
  CHECK(fx.settles[0].state == s2);
  CHECK(calls.empty());
  CHECK(calls.streams() == 0);
  CHECK_THROWS_AS(up.halves.out->next(std::nullopt), rpc::closed_error);
  duct::pack_buffer item;
  msgpack::pack(item, 1);
  CHECK_THROWS_AS(up.halves.in->write(std::as_bytes(std::span(item.data(), item.size()))), rpc::closed_error);
}

// Found by the client fuzz target: a stop meant for a stream, given a plain call's id, forgot the call unsettled.
TEST_CASE("call table: stream and input actions on a plain call do nothing, and its future still settles",
          "[rpc][call_table][errors]") {
  call_table calls;
  effects fx;
  auto state = std::make_shared<rpc::detail::call_state>();
  auto r = calls.open("add", packed(1, 2).span(), named("ep: add"), state, t0);
  rpc::event hello = from_server(r.id, "_zpc_hb", std::make_tuple(0), /*accepts_stop=*/true);
  CHECK(calls.on_event(hello, t0, fx));  // the server understands stops: a stream's would go at once
  CHECK(fx.empty());                     // but nothing stops a plain call that goes on
  calls.stop(r.id, fx);
  CHECK_FALSE(calls.credit(r.id, 5));
  CHECK_FALSE(calls.chunk(r.id, "CHUNK", packed(1).span()));
  CHECK(fx.empty());
  REQUIRE(calls.size() == 1);
  rpc::event ok = from_server(r.id, "OK", std::make_tuple(3));
  CHECK(calls.on_event(ok, t0, fx));
  REQUIRE(fx.settles.size() == 1);
  CHECK(fx.settles[0].state == state);
}
