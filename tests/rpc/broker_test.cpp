// rpc::broker with real workers (rpc::server::connect) and real clients over loopback: calls spread over workers,
// every event of a channel stays with its worker (long calls, streams, chunked input), tokens reach their worker
// from another client, slots and queue bounds hold, a worker that leaves or goes silent fails its calls with
// LostRemote, and a broker that restarts is found again. Worker processes killed with SIGKILL: tests/tools/rpc_broker.sh.
#include <set>

#include <rpc/broker.hpp>
#include <rpc/curve.hpp>

#include "broker_wire.hpp"

#include "fixtures.hpp"

using namespace std::chrono_literals;

namespace {

// A worker with test::pool_methods, connected to `backend`.
struct worker : test::pool_methods {
  rpc::server server;

  worker(const std::string& backend, const std::string& tag, rpc::server_options o = {}) : server(with_name(std::move(o), tag)) {
    bind_pool_methods(server, tag);
    server.connect(backend);
    server.start();
  }
  ~worker() {
    let_go();
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

// Four calls of hold(0..3) from `client`: the first is running on `w` before the other three are sent.
std::vector<rpc::future> hold_four(rpc::client& client, const worker& w) {
  std::vector<rpc::future> calls;
  calls.push_back(client.async_call("hold", 0));
  test::eventually([&] { return w.holding == 1; });
  for (int i = 1; i <= 3; ++i) calls.push_back(client.async_call("hold", i));
  return calls;
}

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

TEST_CASE("broker: streams with credit, chunked input and long calls stay with their worker", "[rpc][broker]") {
  pool p;
  rpc::server_options so;
  so.heartbeat = 100ms;
  worker a(p.backend, "a", so), b(p.backend, "b", so);
  test::eventually([&] { return p.broker.workers() == 2; });
  rpc::client_options co;
  co.heartbeat = 100ms;
  co.stream_window = 16;  // credit flows back through the broker to the worker that streams
  rpc::client client(p.frontend, co);
  rpc::source s1 = client.stream("count", 2000);
  rpc::source s2 = client.stream("count", 2000);
  CHECK(test::read_both(s1, s2) == std::pair{2000, 2000});
  rpc::duplex d1 = client.chunked_call("total");
  rpc::duplex d2 = client.chunked_call("total");
  for (int i = 1; i <= 200; ++i) {
    d1.write(i);
    d2.write(-i);
  }
  CHECK(d1.finish().as<std::int64_t>() == 20100);
  CHECK(d2.finish().as<std::int64_t>() == -20100);
  // Six heartbeat periods each, on both workers at once.
  rpc::future one = client.async_call("sleepy", 600);
  rpc::future two = client.async_call("sleepy", 600);
  CHECK(one.get().as<int>() == 600);
  CHECK(two.get().as<int>() == 600);
  test::eventually([&] { return p.broker.open_channels() == 0; });  // its counts follow its sends
}

TEST_CASE("broker: a token from one client is collected and cancelled by another", "[rpc][broker]") {
  pool p;
  worker a(p.backend, "a"), b(p.backend, "b");
  test::eventually([&] { return p.broker.workers() == 2; });
  rpc::client first(p.frontend), second(p.frontend);
  const std::string done = first.submit("sleepy", 20);
  const std::string held = first.submit("hold", 7);
  CHECK(second.wait(done, 10s).as<int>() == 20);
  CHECK(test::as_json(second.poll(held))["state"] == "running");
  CHECK(second.cancel(held));
  CHECK_THROWS_AS(first.wait(held, 10s), rpc::cancelled_error);
  CHECK_THROWS_AS(second.poll("w000000000000-1"), rpc::unknown_token_error);
}

TEST_CASE("broker: a worker that goes silent fails its calls with LostRemote and gets no more", "[rpc][broker]") {
  rpc::broker_options bo;
  bo.heartbeat = 100ms;
  pool p(bo);
  rpc::server_options so;
  so.heartbeat = 100ms;
  worker live(p.backend, "live", so);
  // A worker that announces itself (heartbeat 100 ms), takes a call, and says nothing more.
  zmq::context_t ctx;
  zmq::socket_t silent(ctx, zmq::socket_type::dealer);
  silent.set(zmq::sockopt::routing_id, "silent");
  silent.connect(p.backend);
  duct::pack_buffer methods;
  {
    msgpack::packer<duct::pack_buffer> pk(methods);
    pk.pack_map(1);
    pk.pack(std::string("stall"));  // served by it alone
    pk.pack(std::map<std::string, std::string>{{"doc", ""}});
  }
  duct::buffer m = methods.take();
  duct::buffer ready = rpc::detail::make_ready(1, 100ms, "w0000000000aa-", "silent", m.span());
  silent.send(zmq::message_t(), zmq::send_flags::sndmore);
  silent.send(zmq::buffer(std::string_view("READY")), zmq::send_flags::sndmore);
  silent.send(zmq::buffer(ready.data(), ready.size()));
  test::eventually([&] { return p.broker.workers() == 2; });
  rpc::client_options co;
  co.heartbeat = 100ms;
  rpc::client client(p.frontend, co);
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(client.call("stall"), rpc::lost_remote_error);  // the broker's ERR LostRemote
  CHECK(std::chrono::steady_clock::now() - start < 2s);             // two of its 100 ms heartbeats, with room
  test::eventually([&] { return p.broker.workers() == 1 && p.broker.open_channels() == 0; });
  for (int i = 0; i < 5; ++i) CHECK(client.call("who").as<std::string>() == "live");
}

TEST_CASE("broker: calls beyond the queue's bound are answered Overloaded, and the rest go through", "[rpc][broker]") {
  rpc::broker_options bo;
  bo.client_queued = 2;
  pool p(bo);
  rpc::server_options so;
  so.threads = 1;         // one call at a time
  so.broker_prefetch = 1;  // and none waiting at the worker: the rest wait in the broker
  so.defer_after = 60s;   // and the held one is not deferred (which would free its slot) on a slow machine
  worker w(p.backend, "w", so);
  test::eventually([&] { return p.broker.workers() == 1; });
  rpc::client client(p.frontend);
  std::vector<rpc::future> calls = hold_four(client, w);
  CHECK_THROWS_WITH(calls[3].get(), Catch::Contains("Overloaded"));  // the third to wait: over the bound of 2
  // The broker publishes its counts after each round's sends: the ERR may arrive first.
  test::eventually([&] { return p.broker.queued() == 2; });
  w.release.set_value();
  for (int i = 0; i < 3; ++i) CHECK(calls[static_cast<std::size_t>(i)].get().as<int>() == i);
}

TEST_CASE("broker: a worker takes threads times broker_prefetch calls at once, the rest wait in the broker", "[rpc][broker]") {
  pool p;
  rpc::server_options so;
  so.threads = 1;
  // Either way three slots: one call running, two waiting at the worker for its thread. A prefetch beyond what
  // the worker can hold (its thread and max_queued) is capped there.
  using prefetch_and_queue = std::pair<std::size_t, std::size_t>;
  std::tie(so.broker_prefetch, so.max_queued) = GENERATE(prefetch_and_queue{3, 4096}, prefetch_and_queue{8, 2});
  so.defer_after = 60s;
  worker w(p.backend, "w", so);
  test::eventually([&] { return p.broker.workers() == 1; });
  rpc::client client(p.frontend);
  std::vector<rpc::future> calls = hold_four(client, w);
  // Three calls went to the worker (one runs, two wait for its thread there); only the fourth waits in the broker.
  test::eventually([&] { return p.broker.open_channels() == 3 && p.broker.queued() == 1; });
  CHECK(w.holding == 1);
  w.release.set_value();
  for (int i = 0; i < 4; ++i) CHECK(calls[static_cast<std::size_t>(i)].get().as<int>() == i);
  test::eventually([&] { return p.broker.open_channels() == 0 && p.broker.queued() == 0; });
}

TEST_CASE("broker: CURVE on both hops, each side with its own allow-list", "[rpc][broker][curve]") {
  const rpc::curve_keypair broker_keys = rpc::make_curve_keypair(), client_keys = rpc::make_curve_keypair(),
                           worker_keys = rpc::make_curve_keypair(), stranger = rpc::make_curve_keypair();
  rpc::broker_options bo;
  bo.curve_secret_key = broker_keys.secret_key;
  bo.curve_allow = {client_keys.public_key};
  bo.curve_workers = {worker_keys.public_key};
  rpc::broker broker(bo);
  const std::string frontend = broker.frontend("tcp://127.0.0.1:0");
  const std::string backend = broker.backend("tcp://127.0.0.1:0");
  broker.start();
  // The worker speaks CURVE to the broker with its own key pair, and knows the broker by its key.
  rpc::server_options so;
  so.curve_secret_key = worker_keys.secret_key;
  rpc::server worker(so);
  worker.bind("add", [](int a, int b) { return a + b; });
  worker.connect(backend, broker_keys.public_key);
  worker.start();
  test::eventually([&] { return broker.workers() == 1; });
  rpc::client_options co;
  co.curve_server_key = broker_keys.public_key;
  co.curve_public_key = client_keys.public_key;
  co.curve_secret_key = client_keys.secret_key;
  rpc::client client(frontend, co);
  CHECK(client.call("add", 2, 3).as<int>() == 5);
  // A client key the frontend does not list is refused at the handshake; so is a client without CURVE.
  rpc::client_options other = co;
  other.curve_public_key = stranger.public_key;
  other.curve_secret_key = stranger.secret_key;
  CHECK_THROWS_AS(rpc::client(frontend, other).call("add", 1, 1), rpc::connection_error);
  CHECK_THROWS_AS(rpc::client(frontend, {.heartbeat = 500ms}).call("add", 1, 1), rpc::error);
  // The worker's key on the frontend is a client's key there: not admitted either (the lists are apart).
  rpc::client_options as_worker = co;
  as_worker.curve_public_key = worker_keys.public_key;
  as_worker.curve_secret_key = worker_keys.secret_key;
  CHECK_THROWS_AS(rpc::client(frontend, as_worker).call("add", 1, 1), rpc::connection_error);
  worker.stop();
}
