// Shutdown strategies and cancellation: drain, drain past its grace, abort, and a lost client's handler stopped.
#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <stop_token>
#include <thread>

#include <rpc/client.hpp>
#include <rpc/server.hpp>

using namespace std::chrono_literals;

namespace {

// Waits (bounded, by looking) until `ready` holds.
template <class Pred>
void eventually(Pred ready) {
  auto until = std::chrono::steady_clock::now() + 10s;
  while (!ready()) {
    REQUIRE(std::chrono::steady_clock::now() < until);
    std::this_thread::yield();
  }
}

struct service {
  rpc::server server;
  std::string endpoint;
  std::promise<void> release;                 // lets "hold" return
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> stopped_handlers{0};
  std::atomic<int> started{0};  // until_stopped handlers that have begun (a queued call may be cancelled unstarted)

  explicit service(std::chrono::milliseconds hb = 5s) : server({.heartbeat = hb}) {
    server.bind("add", [](int a, int b) { return a + b; });
    server.bind("hold", [this] {
      released.wait();
      return std::string("finished");
    });
    server.bind("until_stopped", [this](std::stop_token stop) {
      ++started;
      while (!stop.stop_requested()) std::this_thread::yield();
      ++stopped_handlers;
      return std::string("stopped");
    });
    endpoint = server.listen("tcp://127.0.0.1:0");
    server.start();
  }
  // Releases a handler still holding, then stops the server before the members its handlers use go away, so that
  // a test failing half-way neither hangs nor leaves a handler reading freed memory.
  ~service() {
    if (released.wait_for(0s) != std::future_status::ready) release.set_value();
    server.stop();
  }
};

}  // namespace

TEST_CASE("drain refuses new calls and lets running ones finish", "[rpc][shutdown]") {
  service s;
  rpc::client a(s.endpoint), b(s.endpoint);
  auto held = a.async_call("hold");
  eventually([&] { return s.server.open_channels() == 1; });
  auto draining = std::async(std::launch::async, [&] { s.server.shutdown(rpc::shutdown_mode::drain, 10s); });
  eventually([&] { return !s.server.accepting(); });
  CHECK_THROWS_AS(b.call("add", 1, 2), rpc::shutting_down_error);
  CHECK(draining.wait_for(0s) == std::future_status::timeout);  // still waiting for the held call
  s.release.set_value();
  CHECK(held.get().as<std::string>() == "finished");
  REQUIRE(draining.wait_for(10s) == std::future_status::ready);
  draining.get();
  CHECK(s.server.open_channels() == 0);
}

TEST_CASE("a drain whose grace runs out cancels what is still running", "[rpc][shutdown]") {
  service s;
  rpc::client c(s.endpoint);
  auto stubborn = c.async_call("until_stopped");
  eventually([&] { return s.started == 1; });
  auto start = std::chrono::steady_clock::now();
  s.server.shutdown(rpc::shutdown_mode::drain, 100ms);
  CHECK(std::chrono::steady_clock::now() - start >= 100ms);
  CHECK_THROWS_AS(stubborn.get(), rpc::cancelled_error);
  CHECK(s.stopped_handlers == 1);  // the handler saw its stop token
}

TEST_CASE("abort cancels running calls at once and their handlers see it", "[rpc][shutdown]") {
  service s;
  rpc::client c(s.endpoint);
  auto one = c.async_call("until_stopped");
  auto two = c.async_call("until_stopped");
  eventually([&] { return s.started == 2; });
  s.server.shutdown(rpc::shutdown_mode::abort);
  try {
    one.get();
    FAIL("no exception");
  } catch (const rpc::cancelled_error& e) {
    CHECK(e.name() == "Cancelled");
    CHECK_THAT(e.message(), Catch::Contains("shutting down"));
  }
  CHECK_THROWS_AS(two.get(), rpc::cancelled_error);
  CHECK(s.stopped_handlers == 2);
  CHECK_FALSE(s.server.accepting());
}

TEST_CASE("a client that is lost has its running handler stopped", "[rpc][shutdown][heartbeat]") {
  service s(100ms);
  {
    rpc::client c(s.endpoint, {.heartbeat = 100ms});
    auto pending = c.async_call("until_stopped");
    eventually([&] { return s.server.open_channels() == 1; });
  }  // the client closes with the call open and stops heartbeating
  eventually([&] { return s.stopped_handlers == 1; });
  CHECK(s.server.open_channels() == 0);
}
