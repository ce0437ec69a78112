// One-way calls (client::publish): the server runs them and answers nothing, over ZeroMQ and over a duct; bad ones
// are dropped and counted; a drain waits for them.
#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <memory>
#include <optional>

#include <duct/connection.hpp>
#include <rpc/client.hpp>
#include <rpc/link.hpp>
#include <rpc/server.hpp>

#include "fixtures.hpp"

using namespace std::chrono_literals;

namespace {

struct published : test::served {
  std::atomic<int> sum{0}, count{0}, started{0};
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  rpc::server server;

  explicit published(bool over_duct) : server({.threads = 2}) {
    server.bind("record", [this](int x) {
      sum += x;
      ++count;
    });
    server.bind("fail", []() -> int { throw rpc::remote_error("ValueError", "nobody hears this"); });
    server.bind("held", [this] {
      ++started;
      released.wait();
    });
    server.bind("total", [this] { return sum.load(); });
    serve(server, over_duct);
  }
  ~published() {
    if (released.wait_for(0s) != std::future_status::ready) release.set_value();
    client.reset();
    server.stop();
  }
};

}  // namespace

TEST_CASE("publish: one-way calls run on the server and answer nothing", "[rpc][publish]") {
  bool over_duct = GENERATE(false, true);
  CAPTURE(over_duct);
  published p(over_duct);
  for (int i = 1; i <= 100; ++i) p.client->publish("record", i);
  test::eventually([&] { return p.count.load() == 100; });
  CHECK(p.sum.load() == 5050);
  test::eventually([&] { return p.server.open_channels() == 0; });
  CHECK(p.server.dropped_events() == 0);
  // A failing one-way call and one to an unknown method disturb nothing; the unknown one is dropped and counted.
  p.client->publish("fail");
  p.client->publish("no_such_method", 1);
  test::eventually([&] { return p.server.dropped_events() == 1; });
  test::eventually([&] { return p.server.open_channels() == 0; });
  CHECK(p.client->call("total").as<int>() == 5050);
}

TEST_CASE("publish: a drain waits for one-way calls still running", "[rpc][publish][shutdown]") {
  published p(false);
  p.client->publish("held");
  test::eventually([&] { return p.started.load() == 1; });
  CHECK(p.server.open_channels() == 1);
  auto drained = std::async(std::launch::async, [&] { p.server.shutdown(rpc::shutdown_mode::drain, 30s); });
  CHECK(drained.wait_for(50ms) == std::future_status::timeout);  // bounded look: it must still be waiting
  p.release.set_value();
  drained.get();
  CHECK(p.server.open_channels() == 0);
}

TEST_CASE("publish: on the wire a one-way request gets no answer", "[rpc][publish][wire]") {
  published p(false);
  zmq::context_t ctx;
  zmq::socket_t dealer = test::plain_dealer(ctx, p.endpoint);
  rpc::id_generator ids;
  rpc::event_header oneway{ids.next()};
  oneway.oneway = true;
  test::send_body(dealer, rpc::encode_event(oneway, "record", std::make_tuple(7)).span());
  test::eventually([&] { return p.count.load() == 1 && p.server.open_channels() == 0; });
  rpc::message_id asked = ids.next();
  test::send_body(dealer, rpc::encode_event({asked}, "total", std::make_tuple()).span());
  rpc::event first = test::recv_event(dealer);
  CHECK(first.header.response_to == asked);  // the first answer is to the call, none to the one-way request
  CHECK(first.args().via.array.ptr[0].as<int>() == 7);
}
