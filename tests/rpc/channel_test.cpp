// Channel state, sans-I/O: credit, receive window, heartbeat, table, replayed against the captures.
#include <catch2/catch.hpp>

#include "channel.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using steady = rpc::detail::clock;

namespace {
const steady::time_point t0{};
}

TEST_CASE("send credit starts at one event and grows by _zpc_more", "[rpc][channel]") {
  rpc::detail::send_credit c;
  CHECK(c.available());
  CHECK(c.spend());
  CHECK_FALSE(c.available());
  CHECK_FALSE(c.spend());
  c.grant(-5);
  CHECK_FALSE(c.available());
  c.grant(100);
  CHECK(c.remaining() == 100);
  c.grant(INT64_MAX);
  CHECK(c.remaining() == (std::int64_t{1} << 40));  // capped, never overflows
}

TEST_CASE("the captured stream follows the credit rules on both sides", "[rpc][channel][vectors]") {
  for (const std::string file : {"zerorpc-python.jsonl", "zerorpc-node.jsonl"}) {
    std::vector<nlohmann::json> events;
    for (const auto& line : test::load_vectors(file))
      if (line["case"] == "count3_stream" && line.value("peers", "node-client/python-server") == "node-client/python-server")
        events.push_back(line);
    CAPTURE(file);
    REQUIRE(events.size() == 6);
    rpc::detail::send_credit server;   // the server's permission to send STREAM events
    rpc::detail::receive_window client;
    for (std::size_t i = 1; i < events.size(); ++i) {
      const auto& e = events[i];
      CAPTURE(i, e["event"].get<std::string>());
      if (e["dir"] == "s2c") {
        CHECK(server.spend());  // every server event in the capture had credit when it was sent
        CHECK(client.on_arrival());
        if (e["event"] == "STREAM" && i == 1) {
          // the consumer takes the first item and grants exactly what the captured client granted
          std::size_t grant = client.on_consumed();
          const auto& more = events[i + 1];
          REQUIRE(more["event"] == "_zpc_more");
          CHECK(grant == more["decoded"][2][0].get<std::size_t>());
        } else {
          client.on_consumed();
        }
      } else {
        REQUIRE(e["event"] == "_zpc_more");
        server.grant(e["decoded"][2][0].get<std::int64_t>());
      }
    }
  }
}

TEST_CASE("the receive window keeps what the peer may send plus what we hold within capacity", "[rpc][channel]") {
  rpc::detail::receive_window w(10);
  CHECK(w.on_arrival());
  CHECK(w.on_consumed() == 10);
  // The peer sends everything it may while we consume slowly: never more than 10 in flight and in hand.
  std::size_t arrived = 0;
  for (int round = 0; round < 100; ++round) {
    while (w.outstanding() > 0) {
      REQUIRE(w.on_arrival());
      ++arrived;
      REQUIRE(w.outstanding() + w.buffered() <= 10);
    }
    w.on_consumed();
    w.on_consumed();
  }
  CHECK(arrived > 100);
  // A peer that sends without credit is noticed.
  rpc::detail::receive_window strict(4);
  CHECK(strict.on_arrival());
  CHECK_FALSE(strict.on_arrival());
}

TEST_CASE("a receive window with a byte budget widens for small items and narrows for large ones",
          "[rpc][channel][credit]") {
  // Before anything arrived: 16 at most, whatever the items turn out to be.
  rpc::detail::receive_window fresh(1000, 1 << 20);
  CHECK(fresh.capacity() == 16);
  rpc::detail::receive_window small(1000, 1 << 20);  // 8-byte items: 1 MiB would be 131072 of them, capped at 1000
  REQUIRE(small.on_arrival(8));
  CHECK(small.capacity() == 1000);
  CHECK(small.on_consumed() == 1000);
  rpc::detail::receive_window large(1000, 1 << 20);  // 256 KiB items: 4 would fill the budget; the floor is 16
  REQUIRE(large.on_arrival(256 << 10));
  CHECK(large.capacity() == 16);
  CHECK(large.on_consumed() == 16);
  rpc::detail::receive_window mid(1000, 1 << 20);  // 16 KiB items: 64 of them
  REQUIRE(mid.on_arrival(16 << 10));
  CHECK(mid.capacity() == 64);
  // The bound holds as the capacity moves: what is granted and held never exceeds the capacity of the moment
  // it was granted at.
  std::size_t arrived = 0;
  for (int round = 0; round < 50; ++round) {
    while (mid.outstanding() > 0) {
      REQUIRE(mid.on_arrival(16 << 10));
      ++arrived;
      REQUIRE(mid.outstanding() + mid.buffered() <= 64);
    }
    mid.on_consumed();
  }
  CHECK(arrived > 64);
  rpc::detail::receive_window unbudgeted(10);  // no byte budget: the fixed count, as zerorpc's
  CHECK(unbudgeted.capacity() == 10);
}

TEST_CASE("heartbeats fall due every period from the channel's opening", "[rpc][channel][heartbeat]") {
  rpc::detail::heartbeat hb(5s, t0);
  CHECK_FALSE(hb.send_due(t0 + 4999ms));
  CHECK(hb.send_due(t0 + 5s));
  hb.sent(t0 + 5s);
  CHECK_FALSE(hb.send_due(t0 + 9s));
  CHECK(hb.send_due(t0 + 10s));
  hb.sent(t0 + 31s);  // we were late: the next is a period after now, not a burst of catch-up beats
  CHECK_FALSE(hb.send_due(t0 + 35s));
  CHECK(hb.send_due(t0 + 36s));
}

TEST_CASE("a peer silent for two periods is lost, and anything heard resets that", "[rpc][channel][heartbeat]") {
  rpc::detail::heartbeat hb(5s, t0);
  CHECK_FALSE(hb.lost(t0 + 10s));
  CHECK(hb.lost(t0 + 10s + 1ms));
  hb.heard(t0 + 8s);
  CHECK_FALSE(hb.lost(t0 + 18s));
  CHECK(hb.lost(t0 + 18s + 1ms));
  CHECK(hb.next_deadline() <= t0 + 18s + 1ms);
}

TEST_CASE("the captured heartbeats come when our clock says they are due", "[rpc][channel][heartbeat][vectors]") {
  for (const auto& line : test::load_vectors("zerorpc-python.jsonl")) {
    if (line["case"] != "slow6_heartbeat" || line["event"] != "_zpc_hb") continue;
    auto at = steady::time_point(std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(line["t"].get<double>())));
    rpc::detail::heartbeat hb(5s, t0);
    CHECK_FALSE(hb.send_due(at - 100ms));
    CHECK(hb.send_due(at + 100ms));
    CHECK(line["decoded"][2] == nlohmann::json::array({0}));
  }
}

TEST_CASE("the channel table opens, finds and closes channels by id", "[rpc][channel]") {
  rpc::detail::channel_table table(5s);
  rpc::message_id a("a", true), b("b", false), a_str("a", false);
  REQUIRE(table.open(a, t0));
  CHECK_FALSE(table.open(a, t0));  // already open
  REQUIRE(table.open(b, t0 + 2s));
  CHECK(table.find(a_str) == nullptr);  // same bytes, other type: another channel
  CHECK(table.size() == 2);
  CHECK(table.next_deadline() == t0 + 5s);
  CHECK(table.heartbeats_due(t0 + 5s).size() == 1);
  table.find(b)->beat.heard(t0 + 9s);
  auto lost = table.lost(t0 + 11s);
  REQUIRE(lost.size() == 1);
  CHECK(lost[0] == a);
  table.close(a);
  CHECK(table.find(a) == nullptr);
  CHECK(table.size() == 1);
  table.close(a);  // closing twice is harmless
  CHECK(rpc::detail::channel_table().next_deadline() == std::nullopt);
}
