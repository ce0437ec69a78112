// Live interop with the real zerorpc for node (0.9.8 on zeromq 6), installed by the "node: install" fixture.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

#include <duct/spawn.hpp>
#include <rpc/broker.hpp>
#include <rpc/client.hpp>
#include <rpc/server.hpp>

#include "fixtures.hpp"
#include "support.hpp"

using namespace std::chrono_literals;

namespace {

const std::string node_dir = DUCT_NODE_PEERS_DIR;

// Whether the zerorpc node peers are installed (tests skip loudly without them, except in CI).
bool have_node() {
  struct stat st{};
  return ::stat((node_dir + "/node_modules/zerorpc").c_str(), &st) == 0;
}
#define REQUIRE_NODE() \
  TEST_SKIP_UNLESS(have_node(), "zerorpc for node is not installed (needs node and npm; see tests/rpc/node/install.sh)")

struct node_server {
  duct::child process;
  std::string endpoint;
  explicit node_server(const test::temp_dir& dir)
      : process(duct::spawn({"node", node_dir + "/peer.js", "server", "ipc://" + dir.file("node.ipc")})),
        endpoint("ipc://" + dir.file("node.ipc")) {
    // Node makes the socket file when it binds: wait for it (bounded), so that a short heartbeat in a test does not
    // count node's start-up as a lost remote.
    auto until = std::chrono::steady_clock::now() + 30s;
    struct stat st{};
    while (::stat(dir.file("node.ipc").c_str(), &st) != 0) {
      REQUIRE(std::chrono::steady_clock::now() < until);
      REQUIRE_FALSE(process.wait(std::chrono::milliseconds(0)));  // node died before binding
      std::this_thread::yield();
    }
  }
  ~node_server() {
    process.kill(SIGTERM);
    process.wait(10s);
  }
};

struct run_result {
  int status;
  std::string out;
};

// Runs the node client; `args_json` is a JSON array without single quotes. `mode` "stream" iterates a stream,
// `extra` its item count to stop after.
run_result node_call(const std::string& endpoint, const std::string& method, const std::string& args_json,
                     const std::string& mode = "client", const std::string& extra = "") {
  std::string cmd = "node " + node_dir + "/peer.js " + mode + " " + endpoint + " " + method + " '" + args_json + "' " +
                    extra + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  int st = ::pclose(p);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

}  // namespace

TEST_CASE("node: our client calls a zerorpc-node server", "[rpc][node]") {
  REQUIRE_NODE();
  test::temp_dir dir;
  node_server server(dir);
  rpc::client c(server.endpoint, {.heartbeat = 500ms});
  CHECK(c.call("add", 2, 3).as<int>() == 5);
  CHECK(c.call("echo", std::string("text")).as<std::string>() == "text");
  // msgpack-lite sends integers beyond int32 as float64: they come back as floats, and convert
  duct::value big = c.call("echo", 1099511627776LL);
  CHECK(big.get().type == msgpack::type::FLOAT64);
  CHECK(big.as<double>() == 1099511627776.0);
  try {
    c.call("boom", std::string("bad thing"));
    FAIL("no exception");
  } catch (const rpc::remote_error& e) {
    CHECK(e.name() == "Error");
    CHECK(e.message() == "bad thing");
    CHECK_THAT(e.traceback(), Catch::Contains("peer.js"));
  }
  auto inspect = nlohmann::json::parse(c.call("_zerorpc_inspect").to_json());
  CHECK(inspect["methods"]["add"]["args"] == nlohmann::json::parse(R"([{"name": "a"}, {"name": "b"}])"));
  CHECK(c.call("_zerorpc_ping").to_json() == R"(["pong", ""])");
}

TEST_CASE("node: a node server ignoring an unknown method ends in lost remote, not a hang", "[rpc][node][heartbeat]") {
  REQUIRE_NODE();
  test::temp_dir dir;
  node_server server(dir);
  rpc::client c(server.endpoint, {.heartbeat = 200ms});
  REQUIRE(c.call("add", 1, 1).as<int>() == 2);
  auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(c.call("no_such_method"), rpc::lost_remote_error);
  CHECK(std::chrono::steady_clock::now() - start < 3s);
}

TEST_CASE("node: a chunked call to a zerorpc-node server sends no chunk and ends, not hangs", "[rpc][node][chunked]") {
  REQUIRE_NODE();
  test::temp_dir dir;
  node_server server(dir);
  rpc::client c(server.endpoint, {.heartbeat = 200ms});
  REQUIRE(c.call("add", 1, 1).as<int>() == 2);
  // node has no _ductrpc_chunked and never announces credit for chunks: the first write waits for an
  // announcement that does not come, and ends when node's silence on the call shows it is not answering.
  rpc::duplex call = c.chunked_call("add", 1, 2);
  auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(call.write(1), rpc::lost_remote_error);
  CHECK(std::chrono::steady_clock::now() - start < 3s);
  CHECK(c.call("add", 2, 2).as<int>() == 4);  // the server was sent nothing it could choke on
}

TEST_CASE("node: a zerorpc-node client's 12 s call survives its heartbeats through rpc-broker", "[rpc][node][broker]") {
  REQUIRE_NODE();
  // Node's client heartbeats every 5 s and gives up after two periods of silence: the broker must carry the worker's
  // heartbeats on the call's channel to it, and the client's to the worker. A proxy that did not would fail at 10 s.
  rpc::broker broker;
  const std::string frontend = broker.frontend("tcp://127.0.0.1:0");
  const std::string backend = broker.backend("ipc://");
  broker.start();
  rpc::server worker({.name = "worker"});
  worker.bind("nap", [](int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
  });
  worker.connect(backend);
  worker.start();
  test::eventually([&] { return broker.workers() == 1; });
  const auto start = std::chrono::steady_clock::now();
  run_result r = node_call(frontend, "nap", "[12000]");
  CHECK(r.out == "12000");
  CHECK(r.status == 0);
  CHECK(std::chrono::steady_clock::now() - start >= 12s);
}

TEST_CASE("node: a zerorpc-node client calls our server", "[rpc][node]") {
  REQUIRE_NODE();
  rpc::server s({.name = "calc"});
  s.bind("add", [](int a, int b) { return a + b; }, "Adds two integers.", {"a", "b"});
  s.bind("boom", [](std::string why) -> int { throw rpc::remote_error("ValueError", why); });
  s.bind("steps", [](rpc::progress& p, int n) {
    for (int i = 0; i < n; ++i) p.report(i);  // a plain zerorpc client never asked: it gets only the result
    return std::string("done");
  });
  std::string endpoint = s.listen("tcp://127.0.0.1:0");
  s.start();
  CHECK(node_call(endpoint, "add", "[2, 3]").out == "5");
  CHECK(node_call(endpoint, "steps", "[3]").out == "\"done\"");
  run_result boom = node_call(endpoint, "boom", R"(["bad thing"])");
  CHECK(boom.status == 1);
  CHECK(boom.out == "ERR ValueError: bad thing");
  CHECK(node_call(endpoint, "nope", "[]").out == "ERR NameError: nope");
  CHECK(node_call(endpoint, "add", R"(["x", 2])").out == "ERR TypeError: add() argument 1 must be int, not str");
  auto inspect = nlohmann::json::parse(node_call(endpoint, "_zerorpc_inspect", "[]").out);
  CHECK(inspect["name"] == "calc");
  CHECK(inspect["methods"]["add"]["doc"] == "Adds two integers.");
}

TEST_CASE("node: a plain zerorpc client in another process collects a deferred result", "[rpc][node][deferred]") {
  REQUIRE_NODE();
  rpc::server s;
  std::promise<void> go;
  std::shared_future<void> started = go.get_future().share();
  s.bind("slow_square", [started](int x) {
    started.wait();
    return x * x;
  });
  std::string endpoint = s.listen("tcp://127.0.0.1:0");
  s.start();
  // a node client starts the job and exits; another node process collects the result later
  run_result submitted = node_call(endpoint, "_ductrpc_submit", R"(["slow_square", [12]])");
  REQUIRE(submitted.status == 0);
  std::string token = nlohmann::json::parse(submitted.out).get<std::string>();
  CHECK(nlohmann::json::parse(node_call(endpoint, "_ductrpc_poll", "[\"" + token + "\"]").out)["state"] == "running");
  go.set_value();
  CHECK(node_call(endpoint, "_ductrpc_wait", "[\"" + token + "\", 10]").out == "144");
  CHECK(node_call(endpoint, "_ductrpc_wait", "[\"" + token + "\", 10]").out == "144");
}

TEST_CASE("node: our client iterates a zerorpc-node stream", "[rpc][node][stream]") {
  REQUIRE_NODE();
  test::temp_dir dir;
  node_server server(dir);
  rpc::client c(server.endpoint, {.heartbeat = 500ms, .stream_window = 4});
  rpc::source items = c.stream("count", 10);
  for (int i = 0; i < 10; ++i) {
    auto item = items.next_for(20s);
    REQUIRE(item);
    CHECK(item->as<int>() == i);
  }
  CHECK_FALSE(items.next_for(20s));
  rpc::source failing = c.stream("boom", std::string("no stream today"));
  CHECK_THROWS_WITH(failing.next_for(20s), Catch::Contains("no stream today"));
  // Dropping a node stream midway: node cannot be told, so the client just forgets it; the next calls still work.
  {
    rpc::source dropped = c.stream("count", 1000);
    CHECK(dropped.next_for(20s)->as<int>() == 0);
  }
  CHECK(c.call("add", 1, 2).as<int>() == 3);
}

TEST_CASE("node: a zerorpc-node client iterates our stream, and one that stops midway stops the producer",
          "[rpc][node][stream]") {
  REQUIRE_NODE();
  rpc::server s({.heartbeat = 200ms});
  std::atomic<int> lost{0};
  s.bind("count", [](rpc::sink& out, int n) {
    for (int i = 0; i < n; ++i) out.write(i);
  });
  s.bind("count_then_fail", [](rpc::sink& out, int n) {
    for (int i = 0; i < n; ++i) out.write(i);
    throw rpc::remote_error("ValueError", "broke");
  });
  s.bind("endless", [&](rpc::sink& out) {
    try {
      for (int i = 0;; ++i) out.write(i);
    } catch (const rpc::lost_remote_error&) {
      ++lost;
      throw;
    }
  });
  std::string endpoint = s.listen("tcp://127.0.0.1:0");
  s.start();
  // 250 items: past zerorpc-node's own buffer, so its _zpc_more credit is what keeps the stream going.
  std::string expected;
  for (int i = 0; i < 250; ++i) expected += std::to_string(i) + "\n";
  CHECK(node_call(endpoint, "count", "[250]", "stream").out == expected + "END");
  run_result failed = node_call(endpoint, "count_then_fail", "[2]", "stream");
  CHECK(failed.status == 1);
  CHECK(failed.out == "0\n1\nERR ValueError: broke");
  CHECK(node_call(endpoint, "endless", "[]", "stream", "5").out == "0\n1\n2\n3\n4\nSTOPPED");
  test::eventually([&] { return lost.load() == 1; });  // two heartbeat periods after node went quiet
  test::eventually([&] { return s.open_channels() == 0; });
}
