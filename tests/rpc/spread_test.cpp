// rpc::client over several servers, no broker (client.hpp): calls spread over the connected servers, each call
// whole on one (long calls through heartbeats, streams with credit, chunked input), a server that is not there
// skipped, tokens found on the server that issued them, a server lost mid-call reported and then avoided.
#include <map>
#include <set>

#include <signal.h>

#include <duct/spawn.hpp>

#include "support.hpp"

#include "fixtures.hpp"

using namespace std::chrono_literals;

namespace {

// A server with test::pool_methods, listening on a port of its own.
struct tagged : test::pool_methods {
  rpc::server server;
  std::string endpoint;

  explicit tagged(const std::string& tag, rpc::server_options o = {}) : server(std::move(o)) {
    bind_pool_methods(server, tag);
    endpoint = server.listen("tcp://127.0.0.1:0");
    server.start();
  }
  ~tagged() {
    let_go();
    server.stop();
  }
};

// An endpoint where nobody listens: a port bound and let go.
std::string dead_endpoint() {
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::router);
  s.bind("tcp://127.0.0.1:*");
  return s.get(zmq::sockopt::last_endpoint);
}

// Calls `who` until each of `tags` has answered (within 10 s): every server is connected.
void until_all_answer(rpc::client& c, std::initializer_list<const char*> tags) {
  std::set<std::string> seen;
  test::eventually([&] {
    seen.insert(c.call("who").as<std::string>());
    return seen.size() == tags.size();
  });
}

}  // namespace

TEST_CASE("spread: calls rotate over connected servers, and held calls go to the least loaded", "[rpc][spread]") {
  tagged a("a"), b("b"), c("c");
  rpc::client client(a.endpoint + "," + b.endpoint + "," + c.endpoint);
  CHECK(client.endpoint() == a.endpoint + "," + b.endpoint + "," + c.endpoint);
  until_all_answer(client, {"a", "b", "c"});
  std::map<std::string, int> got;
  for (int i = 0; i < 9; ++i) ++got[client.call("who").as<std::string>()];
  CHECK(got == std::map<std::string, int>{{"a", 3}, {"b", 3}, {"c", 3}});

  // Six calls held at once: two on each, whatever order they were sent in.
  std::vector<rpc::future> held;
  for (int i = 0; i < 6; ++i) held.push_back(client.async_call("hold", i));
  test::eventually([&] { return a.holding + b.holding + c.holding == 6; });
  CHECK(a.holding == 2);
  CHECK(b.holding == 2);
  CHECK(c.holding == 2);
  a.release.set_value();
  b.release.set_value();
  c.release.set_value();
  for (int i = 0; i < 6; ++i) CHECK(held[i].get().as<int>() == i);
}

TEST_CASE("spread: a server nobody runs is skipped, and an ipc path may hold a comma", "[rpc][spread]") {
  tagged a("a", {}), b("b");
  // `b` on an ipc path with a comma in it, listed between two dead endpoints.
  rpc::server comma;
  comma.bind("who", [] { return std::string("comma"); });
  test::temp_dir dir;
  const std::string ipc = comma.listen("ipc://" + dir.file("x,y"));
  comma.start();
  rpc::client_options o;
  o.heartbeat = 200ms;  // a call sent to a dead endpoint would fail after 400 ms: it must not be sent there
  rpc::client client(dead_endpoint() + "," + ipc + "," + dead_endpoint() + "," + a.endpoint, o);
  std::set<std::string> seen;
  for (int i = 0; i < 40; ++i) seen.insert(client.call("who").as<std::string>());
  CHECK(seen.count("a") == 1);
  CHECK(seen.count("comma") == 1);
  CHECK(seen.size() == 2);
  comma.stop();
}

TEST_CASE("spread: each call stays whole on its server: long calls, streams, chunked input", "[rpc][spread]") {
  rpc::server_options so;
  so.heartbeat = 100ms;  // both ends agree on the period, as zerorpc peers must
  tagged a("a", so), b("b", so);
  rpc::client_options o;
  o.heartbeat = 100ms;
  o.stream_window = 16;  // credit must flow back to the server that streams
  rpc::client client(std::vector<std::string>{a.endpoint, b.endpoint}, o);
  until_all_answer(client, {"a", "b"});
  // Two calls of six heartbeat periods, one on each server.
  rpc::future one = client.async_call("sleepy", 600);
  rpc::future two = client.async_call("sleepy", 600);
  CHECK(one.get().as<int>() == 600);
  CHECK(two.get().as<int>() == 600);
  // Two streams at once, 500 items each in windows of 16.
  rpc::source s1 = client.stream("count", 500);
  rpc::source s2 = client.stream("count", 500);
  CHECK(test::read_both(s1, s2) == std::pair{500, 500});
  // Chunked input on both.
  rpc::duplex d1 = client.chunked_call("total");
  rpc::duplex d2 = client.chunked_call("total");
  for (int i = 1; i <= 100; ++i) {
    d1.write(i);
    d2.write(2 * i);
  }
  CHECK(d1.finish().as<std::int64_t>() == 5050);
  CHECK(d2.finish().as<std::int64_t>() == 10100);
}

TEST_CASE("spread: a token is polled, awaited and cancelled on the server that issued it", "[rpc][spread]") {
  tagged a("a"), b("b");
  rpc::client client(std::vector<std::string>{a.endpoint, b.endpoint});
  until_all_answer(client, {"a", "b"});
  // Issued by `b` to another client: this one must find it.
  rpc::client only_b(b.endpoint);
  const std::string token = only_b.submit("sleepy", 50);
  CHECK(client.wait(token, 10s).as<int>() == 50);
  CHECK(test::as_json(client.poll(token))["state"] == "done");
  // Issued through this client, to whichever server: remembered.
  for (int i = 0; i < 4; ++i) {
    const std::string mine = client.submit("hold", i);
    CHECK(client.cancel(mine));
    CHECK_THROWS_AS(client.wait(mine, 10s), rpc::cancelled_error);
  }
  CHECK_THROWS_AS(client.poll("no-such-token"), rpc::unknown_token_error);
  rpc::future later = client.async_call("_ductrpc_wait", only_b.submit("sleepy", 10), 10.0);
  CHECK(later.get().as<int>() == 10);
}

TEST_CASE("spread: a server killed mid-call fails that call, and the next calls go to the others", "[rpc][spread][process]") {
  test::temp_dir dir;
  const std::string peer_endpoint = "ipc://" + dir.file("peer.ipc");
  duct::child peer = duct::spawn({RPC_STREAM_PEER, "hold", peer_endpoint, "200"});
  rpc::server_options so;
  so.heartbeat = 200ms;
  tagged b("b", so);
  rpc::client_options o;
  o.heartbeat = 200ms;
  rpc::client client(std::vector<std::string>{peer_endpoint, b.endpoint}, o);
  until_all_answer(client, {"peer", "b"});
  // One held call on each; `b`'s answers, the peer's stays open until the peer is killed.
  std::vector<rpc::future> held;
  for (int i = 0; i < 2; ++i) held.push_back(client.async_call("hold", i));
  test::eventually([&] { return b.holding == 1; });
  b.release.set_value();
  // b's settles; the peer's does not.
  test::eventually([&] {
    return held[0].wait_for(0s) == std::future_status::ready || held[1].wait_for(0s) == std::future_status::ready;
  });
  const std::size_t on_b = held[0].wait_for(0s) == std::future_status::ready ? 0 : 1;
  CHECK(held[on_b].get().as<int>() == static_cast<int>(on_b));
  CHECK(held[1 - on_b].wait_for(0s) == std::future_status::timeout);
  peer.kill(SIGKILL);
  (void)peer.wait();
  const auto killed = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(held[1 - on_b].get(), rpc::lost_remote_error);
  CHECK(std::chrono::steady_clock::now() - killed < 2s);  // two heartbeat periods, with room for a loaded machine
  for (int i = 0; i < 10; ++i) CHECK(client.call("who").as<std::string>() == "b");
}

TEST_CASE("spread: a malformed list is refused with the endpoint named", "[rpc][spread]") {
  CHECK_THROWS_WITH(rpc::client("tcp://127.0.0.1:1,tcp://127.0.0.1:port"), Catch::Contains("tcp://127.0.0.1:port"));
  CHECK_THROWS_WITH(rpc::client(std::vector<std::string>{}), Catch::Contains("no endpoint"));
  CHECK_THROWS_WITH(rpc::client(std::vector<std::string>{"tcp://127.0.0.1:1", ""}), Catch::Contains("empty endpoint"));
  std::vector<std::string> many(65, "tcp://127.0.0.1:1");
  CHECK_THROWS_WITH(rpc::client(many), Catch::Contains("at most 64"));
}
