// Shutdown strategies and cancellation: drain, drain past its grace, abort, and a lost client's handler stopped.
#include <catch2/catch.hpp>

#include <future>

#include <rpc/client.hpp>
#include <rpc/server.hpp>

#include "fixtures.hpp"

using namespace std::chrono_literals;
using test::eventually;

TEST_CASE("drain refuses new calls and lets running ones finish", "[rpc][shutdown]") {
  test::held_service s;
  rpc::client a(s.endpoint), b(s.endpoint);
  auto held = a.async_call("hold", 1);
  eventually([&] { return s.server.open_channels() == 1; });
  auto draining = std::async(std::launch::async, [&] { s.server.shutdown(rpc::shutdown_mode::drain, 10s); });
  eventually([&] { return !s.server.accepting(); });
  CHECK_THROWS_AS(b.call("add", 1, 2), rpc::shutting_down_error);
  CHECK(draining.wait_for(0s) == std::future_status::timeout);  // still waiting for the held call
  s.release.set_value();
  CHECK(held.get().as<int>() == 10);
  REQUIRE(draining.wait_for(10s) == std::future_status::ready);
  draining.get();
  CHECK(s.server.open_channels() == 0);
}

TEST_CASE("a drain whose grace runs out cancels what is still running", "[rpc][shutdown]") {
  test::held_service s;
  rpc::client c(s.endpoint);
  auto stubborn = c.async_call("until_stopped");
  eventually([&] { return s.started == 1; });
  auto start = std::chrono::steady_clock::now();
  s.server.shutdown(rpc::shutdown_mode::drain, 100ms);
  CHECK(std::chrono::steady_clock::now() - start >= 100ms);
  CHECK_THROWS_AS(stubborn.get(), rpc::cancelled_error);
  CHECK(s.stopped == 1);  // the handler saw its stop token
}

TEST_CASE("abort cancels running calls at once and their handlers see it", "[rpc][shutdown]") {
  test::held_service s;
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
  CHECK(s.stopped == 2);
  CHECK_FALSE(s.server.accepting());
}

TEST_CASE("a client that is lost has its running handler stopped", "[rpc][shutdown][heartbeat]") {
  test::held_service s({.heartbeat = 100ms});
  {
    rpc::client c(s.endpoint, {.heartbeat = 100ms});
    auto pending = c.async_call("until_stopped");
    eventually([&] { return s.server.open_channels() == 1 && s.started == 1; });  // running, not queued
  }  // the client closes with the call open and stops heartbeating
  eventually([&] { return s.stopped == 1; });
  CHECK(s.server.open_channels() == 0);
}
