// rpc::broker with real workers (rpc::server::connect) and real clients over loopback: calls spread over workers,
// every event of a channel stays with its worker (long calls, streams, chunked input), tokens reach their worker
// from another client, slots and queue bounds hold, a worker that leaves or goes silent fails its calls with
// LostRemote, and a broker that restarts is found again. Worker processes killed with SIGKILL: tests/tools/rpc_broker.sh.
#include <set>

#include <rpc/broker.hpp>

#include "fixtures.hpp"

using namespace std::chrono_literals;

namespace {

// A worker serving `who` (its tag), `add`, `hold` (until released), `sleepy(ms)`, `count(n)` (a stream) and `total`
// (sums a chunked request), connected to `backend`.
struct worker {
  rpc::server server;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> holding{0};

  worker(const std::string& backend, const std::string& tag, rpc::server_options o = {}) : server(with_name(std::move(o), tag)) {
    server.bind("who", [tag] { return tag; });
    server.bind("add", [](int a, int b) { return a + b; });
    server.bind("hold", [this](int x) {
      ++holding;
      released.wait();
      --holding;
      return x;
    });
    server.bind("sleepy", [](int ms) {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      return ms;
    });
    server.bind("count", [](rpc::sink& out, int n) {
      for (int i = 0; i < n; ++i) out.write(i);
    });
    server.bind("total", [](rpc::source& in) {
      std::int64_t sum = 0;
      while (auto v = in.next()) sum += v->as<std::int64_t>();
      return sum;
    });
    server.connect(backend);
    server.start();
  }
  ~worker() {
    if (released.wait_for(0s) != std::future_status::ready) release.set_value();
    server.stop();
  }
  static rpc::server_options with_name(rpc::server_options o, const std::string& tag) {
    o.name = tag;
    return o;
  }
};

struct pool {
  rpc::broker broker;
  std::string frontend, backend;
  explicit pool(rpc::broker_options o = {}) : broker(std::move(o)) {
    frontend = broker.frontend("tcp://127.0.0.1:0");
    backend = broker.backend("ipc://");
    broker.start();
  }
};

}  // namespace

TEST_CASE("broker: calls spread over three workers, the pool answers for them", "[rpc][broker]") {
  pool p;
  worker a(p.backend, "a"), b(p.backend, "b"), c(p.backend, "c");
  test::eventually([&] { return p.broker.workers() == 3; });
  rpc::client client(p.frontend);
  CHECK(client.call("add", 2, 3).as<int>() == 5);
  // Three calls held at once take a slot on each: the least loaded worker gets the next.
  std::vector<rpc::future> held;
  for (int i = 0; i < 3; ++i) held.push_back(client.async_call("hold", i));
  test::eventually([&] { return a.holding + b.holding + c.holding == 3; });
  CHECK(a.holding == 1);
  CHECK(b.holding == 1);
  CHECK(c.holding == 1);
  a.release.set_value();
  b.release.set_value();
  c.release.set_value();
  std::set<int> got;
  for (auto& f : held) got.insert(f.get().as<int>());
  CHECK(got == std::set<int>{0, 1, 2});

  const auto names = test::as_json(client.call("_zerorpc_list"));
  CHECK(names == nlohmann::json({"add", "count", "hold", "sleepy", "total", "who"}));
  const auto inspect = test::as_json(client.call("_zerorpc_inspect"));
  CHECK(inspect["name"] == "rpc-broker");
  CHECK(inspect["methods"].contains("count"));
  CHECK(test::as_json(client.call("_zerorpc_ping"))[0] == "pong");
  CHECK_THROWS_AS(client.call("nope"), rpc::unknown_method_error);
}
