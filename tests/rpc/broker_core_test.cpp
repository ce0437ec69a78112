// rpc-broker's routing without sockets or clocks (librpc/src/broker_core.hpp): the conversations zerorpc-python and
// zerorpc-node really had (tests/vectors) pass through it byte for byte and leave nothing behind; and event
// sequences: least-loaded placement and slots, the queue and its bounds, a dead worker's calls, tokens to their
// worker, heartbeats of queued calls, draining, forgetting silent channels.
#include <catch2/catch.hpp>

#include <map>
#include <set>

#include <duct/msgpack.hpp>
#include <rpc/event.hpp>

#include "broker_core.hpp"
#include "broker_wire.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using rpc::detail::broker_core;
using steady_time = rpc::detail::clock::time_point;

namespace {

const std::string client_a = rpc::detail::make_client(0, "", "a");
const std::string client_b = rpc::detail::make_client(0, "", "b");

duct::buffer methods_of(std::initializer_list<const char*> names) {
  duct::pack_buffer out;
  msgpack::packer<duct::pack_buffer> p(out);
  p.pack_map(static_cast<std::uint32_t>(names.size()));
  for (const char* n : names) {
    p.pack(std::string(n));
    p.pack(std::map<std::string, std::string>{{"doc", ""}});
  }
  return out.take();
}

void ready(broker_core& core, const std::string& worker, std::uint32_t jobs, steady_time now,
           std::initializer_list<const char*> methods = {"add", "hold"}, std::string prefix = "w000000000001-",
           std::chrono::milliseconds heartbeat = 100ms) {
  duct::buffer m = methods_of(methods);
  duct::buffer payload = rpc::detail::make_ready(jobs, heartbeat, prefix, worker, m.span());
  core.command(worker, rpc::detail::cmd_ready, payload.span(), now);
}

duct::buffer request(const rpc::message_id& id, std::string_view method, const duct::buffer& args) {
  rpc::event_header h;
  h.id = id;
  return rpc::encode_event_packed(h, method, args.span());
}

duct::buffer args(auto... a) {
  duct::pack_buffer out;
  msgpack::pack(out, std::make_tuple(a...));
  return out.take();
}

duct::buffer answer(const rpc::message_id& channel, std::string_view name, const duct::buffer& a) {
  rpc::event_header h{rpc::message_id("r", true), channel};
  return rpc::encode_event_packed(h, name, a.span());
}

rpc::message_id id(const char* s) { return rpc::message_id(s, true); }

// What the core sent, taken out of it.
std::vector<rpc::detail::broker_out> sent(broker_core& core) {
  std::vector<rpc::detail::broker_out> out = std::move(core.out());
  core.out().clear();
  return out;
}

// The name and first argument (as text, if a string) of an event sent to a client.
std::pair<std::string, std::string> what(const rpc::detail::broker_out& m) {
  rpc::event ev = rpc::decode_event(m.body.span());
  std::string first;
  const auto& a = ev.args();
  if (a.type == msgpack::type::ARRAY && a.via.array.size > 0 && a.via.array.ptr[0].type == msgpack::type::STR)
    first = a.via.array.ptr[0].as<std::string>();
  return {ev.name, first};
}

}  // namespace

TEST_CASE("broker core: captured zerorpc conversations pass through byte for byte and leave nothing behind",
          "[rpc][broker][vectors]") {
  int relayed = 0;
  for (const std::string file : {"zerorpc-python.jsonl", "zerorpc-node.jsonl"}) {
    broker_core core({});
    auto now = steady_time{} + 1h;
    ready(core, "w", 1000, now, {"add", "echo", "count3_stream", "count3", "fail", "slow", "no_such_method", "boom"});
    (void)sent(core);
    std::set<std::string> skipped;  // conversations that begin with a built-in the broker answers itself
    for (const auto& line : test::load_vectors(file)) {
      const std::string conversation = line["case"].get<std::string>() + line.value("peers", "");
      const std::string client = rpc::detail::make_client(0, "", conversation);
      CAPTURE(file, conversation, line["seq"].get<int>());
      duct::buffer body = test::unhex(line["frames_hex"].back().get<std::string>());
      rpc::event ev = rpc::decode_event(body.span());
      if (line["dir"] == "c2s") {
        if (!ev.header.response_to && ev.name.starts_with("_zerorpc_")) skipped.insert(conversation);
        if (skipped.count(conversation)) continue;
        const duct::buffer copy(body.span());
        core.from_client(client, std::move(body), now);
        auto out = sent(core);
        if (!ev.header.response_to && out.size() == 1 && !out[0].to_worker) {
          // a method the worker does not serve: the broker says NameError itself, as a server would
          CHECK(what(out[0]).first == "ERR");
          skipped.insert(conversation);
          continue;
        }
        REQUIRE(out.size() == 1);
        CHECK(out[0].to_worker);
        CHECK(out[0].peer == "w");
        CHECK(out[0].client == client);
        CHECK(std::equal(out[0].body.span().begin(), out[0].body.span().end(), copy.span().begin(), copy.span().end()));
      } else {
        if (skipped.count(conversation)) continue;
        const duct::buffer copy(body.span());
        core.from_worker("w", client, std::move(body), now);
        auto out = sent(core);
        REQUIRE(out.size() == 1);
        CHECK_FALSE(out[0].to_worker);
        CHECK(out[0].peer == client);
        CHECK(std::equal(out[0].body.span().begin(), out[0].body.span().end(), copy.span().begin(), copy.span().end()));
      }
      ++relayed;
    }
    // Every conversation ended (OK, ERR, STREAM_DONE) or, a heartbeat's, is forgotten once silent.
    now += 1h;
    core.tick(now);
    CHECK(core.open_channels() == 0);
    CHECK(core.queued() == 0);
    CHECK(core.dropped() == 0);
  }
  CHECK(relayed > 40);
}

TEST_CASE("broker core: the least loaded worker takes a call, and calls beyond the slots wait, then go in order",
          "[rpc][broker]") {
  broker_core core({});
  auto now = steady_time{} + 1h;
  ready(core, "w1", 1, now);
  ready(core, "w2", 1, now, {"add", "hold"}, "w000000000002-");
  (void)sent(core);
  for (const char* c : {"1", "2", "3"}) core.from_client(client_a, request(id(c), "hold", args(1)), now);
  auto out = sent(core);
  REQUIRE(out.size() == 2);
  CHECK(std::set<std::string>{out[0].peer, out[1].peer} == std::set<std::string>{"w1", "w2"});
  CHECK(core.queued() == 1);
  CHECK(core.busy("w1") == 1);
  // w2 answers its call: its slot takes the waiting one.
  const rpc::message_id on_w2 = rpc::decode_event(out[out[0].peer == "w2" ? 0 : 1].body.span()).header.id;
  core.from_worker("w2", client_a, answer(on_w2, "OK", args(10)), now);
  out = sent(core);
  REQUIRE(out.size() == 2);
  CHECK_FALSE(out[0].to_worker);  // the answer, to its client
  CHECK(out[1].to_worker);
  CHECK(out[1].peer == "w2");
  CHECK(rpc::decode_event(out[1].body.span()).header.id == id("3"));
  CHECK(core.queued() == 0);
}

TEST_CASE("broker core: the queue's bounds answer Overloaded, per client and in all", "[rpc][broker]") {
  rpc::detail::broker_config cfg;
  cfg.client_queued = 2;
  cfg.max_queued = 3;
  broker_core core(cfg);
  const auto now = steady_time{} + 1h;
  // No worker yet: calls wait.
  for (const char* c : {"1", "2", "3"}) core.from_client(client_a, request(id(c), "add", args(1, 2)), now);
  auto out = sent(core);
  REQUIRE(out.size() == 1);  // the third of a's
  CHECK(what(out[0]) == std::pair<std::string, std::string>{"ERR", "Overloaded"});
  core.from_client(client_b, request(id("4"), "add", args(1, 2)), now);
  CHECK(sent(core).empty());  // b's own bound is untouched
  core.from_client(client_b, request(id("5"), "add", args(1, 2)), now);
  out = sent(core);
  REQUIRE(out.size() == 1);  // over the total
  CHECK(what(out[0]) == std::pair<std::string, std::string>{"ERR", "Overloaded"});
  CHECK(core.queued() == 3);
}

TEST_CASE("broker core: a worker silent for two of its heartbeats is dead: its calls fail with LostRemote",
          "[rpc][broker]") {
  broker_core core({});
  auto now = steady_time{} + 1h;
  ready(core, "w1", 4, now);  // heartbeat 100 ms
  (void)sent(core);
  core.from_client(client_a, request(id("1"), "hold", args(1)), now);
  REQUIRE(sent(core).size() == 1);
  now += 150ms;
  core.command("w1", rpc::detail::cmd_heartbeat, {}, now);  // still alive
  core.tick(now);
  CHECK(core.workers() == 1);
  now += 201ms;
  core.tick(now);
  auto out = sent(core);
  REQUIRE(out.size() == 1);
  CHECK(out[0].peer == client_a);
  CHECK(what(out[0]) == std::pair<std::string, std::string>{"ERR", "LostRemote"});
  CHECK(core.workers() == 0);
  CHECK(core.open_channels() == 0);
  // It comes back: told to announce itself again.
  core.command("w1", rpc::detail::cmd_heartbeat, {}, now);
  out = sent(core);
  REQUIRE(out.size() == 1);
  CHECK(out[0].to_worker);
  CHECK(out[0].body.view() == rpc::detail::cmd_reset);
}

TEST_CASE("broker core: a token goes to the worker whose prefix it has, from any client", "[rpc][broker]") {
  broker_core core({});
  const auto now = steady_time{} + 1h;
  ready(core, "w1", 1, now, {"add"}, "w000000000001-");
  ready(core, "w2", 1, now, {"add"}, "w000000000002-");
  (void)sent(core);
  core.from_client(client_b, request(id("1"), "_ductrpc_poll", args(std::string("w000000000002-17"))), now);
  auto out = sent(core);
  REQUIRE(out.size() == 1);
  CHECK(out[0].peer == "w2");
  core.from_client(client_b, request(id("2"), "_ductrpc_wait", args(std::string("w0000000000ff-1"), 1.0)), now);
  out = sent(core);
  REQUIRE(out.size() == 1);
  CHECK(what(out[0]) == std::pair<std::string, std::string>{"ERR", "UnknownToken"});
}

TEST_CASE("broker core: a queued call is heartbeated, a draining worker gets no new calls, silence is forgotten",
          "[rpc][broker]") {
  rpc::detail::broker_config cfg;
  cfg.heartbeat = 100ms;
  cfg.forget_after = 1s;
  broker_core core(cfg);
  auto now = steady_time{} + 1h;
  ready(core, "w1", 1, now);
  core.command("w1", rpc::detail::cmd_drain, {}, now);
  (void)sent(core);
  core.from_client(client_a, request(id("1"), "add", args(1, 2)), now);
  CHECK(sent(core).empty());  // waits: the only worker drains
  CHECK(core.queued() == 1);
  now += 100ms;
  core.command("w1", rpc::detail::cmd_heartbeat, {}, now);
  core.tick(now);
  auto out = sent(core);
  REQUIRE(out.size() == 1);
  CHECK(what(out[0]).first == "_zpc_hb");
  // A fresh worker takes it; the call then goes silent both ways and is forgotten, its slot freed.
  ready(core, "w2", 1, now, {"add"}, "w000000000002-");
  out = sent(core);
  REQUIRE(out.size() == 1);
  CHECK(out[0].peer == "w2");
  CHECK(core.busy("w2") == 1);
  for (int i = 0; i < 12; ++i) {  // the workers keep heartbeating; the call's channel says nothing
    now += 100ms;
    core.command("w2", rpc::detail::cmd_heartbeat, {}, now);
    core.tick(now);
  }
  CHECK(core.open_channels() == 0);
  CHECK(core.busy("w2") == 0);
}
