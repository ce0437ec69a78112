// Deferred calls through the _ductrpc_* built-ins: tokens, poll, wait held by the server, cancel, expiry, limits.
#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <stop_token>
#include <thread>

#include <rpc/client.hpp>
#include <rpc/event.hpp>
#include <rpc/server.hpp>

#include "fixtures.hpp"
#include "support.hpp"

using namespace std::chrono_literals;

namespace {

using test::as_json;
using test::eventually;

}  // namespace

TEST_CASE("deferred: a token, polled, waited for, fetched again and again", "[rpc][deferred]") {
  test::held_service s({.list_jobs = true});
  rpc::client c(s.endpoint);
  std::string token = c.submit("hold", 4);
  CHECK(token.size() == 32);
  CHECK(as_json(c.poll(token)) == nlohmann::json{{"state", "running"}});
  auto waiting = std::async(std::launch::async, [&] { return c.wait(token, 10s).as<int>(); });
  CHECK(waiting.wait_for(50ms) == std::future_status::timeout);  // the server holds the wait
  s.release.set_value();
  CHECK(waiting.get() == 40);
  CHECK(c.wait(token, 0s).as<int>() == 40);  // again: results are kept, not handed out once
  CHECK(as_json(c.poll(token)) == nlohmann::json({{"state", "done"}, {"result", 40}}));
  auto listed = as_json(c.call("_ductrpc_list"));
  REQUIRE(listed.size() == 1);
  CHECK(listed[0] == nlohmann::json({{"token", token}, {"method", "hold"}, {"state", "done"}}));
}

TEST_CASE("deferred: a wait that runs out is StillRunning and the call goes on", "[rpc][deferred]") {
  test::held_service s;
  rpc::client c(s.endpoint);
  std::string token = c.submit("hold", 1);
  auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(c.wait(token, 100ms), rpc::still_running_error);
  CHECK(std::chrono::steady_clock::now() - start >= 100ms);
  s.release.set_value();
  CHECK(c.wait(token, 10s).as<int>() == 10);
}

TEST_CASE("deferred: cancel reaches the handler and waiters get Cancelled", "[rpc][deferred]") {
  test::held_service s;
  rpc::client c(s.endpoint), other(s.endpoint);
  std::string token = c.submit("until_stopped");
  auto waiting = other.async_call("_ductrpc_wait", token, 30.0);
  eventually([&] { return s.server.open_channels() == 2 && s.started == 1; });  // the job runs; the wait is held
  CHECK(c.cancel(token));
  CHECK_THROWS_AS(waiting.get(), rpc::cancelled_error);
  CHECK_THROWS_AS(c.wait(token, 0s), rpc::cancelled_error);
  CHECK(as_json(c.poll(token))["state"] == "cancelled");
  CHECK_FALSE(c.cancel(token));  // already over
  eventually([&] { return s.stopped == 1; });
}

TEST_CASE("deferred: a failing call keeps its error under the token", "[rpc][deferred]") {
  test::held_service s;
  rpc::client c(s.endpoint);
  std::string token = c.submit("fail");
  try {
    c.wait(token, 10s);
    FAIL("no exception");
  } catch (const rpc::remote_error& e) {
    CHECK(e.name() == "ValueError");
    CHECK(e.message() == "no good");
  }
  auto state = as_json(c.poll(token));
  CHECK(state["state"] == "failed");
  CHECK(state["error"][0] == "ValueError");
  CHECK(state["error"][1] == "no good");
}

TEST_CASE("deferred: unknown and expired tokens are clear errors", "[rpc][deferred]") {
  test::held_service s({.keep_results = 1s});
  rpc::client c(s.endpoint);
  CHECK_THROWS_WITH(c.poll("nonsense"), Catch::Contains("UnknownToken") && Catch::Contains("nonsense"));
  CHECK_THROWS_AS(c.wait("nonsense", 1s), rpc::unknown_token_error);
  CHECK_THROWS_AS(c.cancel("nonsense"), rpc::unknown_token_error);
  CHECK_THROWS_AS(c.submit("no_such_method"), rpc::unknown_method_error);
  std::string token = c.submit("add", 2, 3);
  CHECK(c.wait(token, 10s).as<int>() == 5);
  eventually([&] {  // kept for keep_results after it finished, then dropped
    try {
      c.poll(token);
      return false;
    } catch (const rpc::unknown_token_error&) {
      return true;
    }
  });
}

TEST_CASE("deferred: the number of jobs is bounded", "[rpc][deferred][limits]") {
  test::held_service s({.max_jobs = 2});
  rpc::client c(s.endpoint);
  c.submit("hold", 1);
  c.submit("hold", 2);
  CHECK_THROWS_AS(c.submit("hold", 3), rpc::overloaded_error);
}

TEST_CASE("deferred: a drain waits for running jobs, an abort cancels them", "[rpc][deferred][shutdown]") {
  SECTION("drain") {
    test::held_service s;
    rpc::client c(s.endpoint);
    std::string token = c.submit("hold", 7);
    auto waiting = c.async_call("_ductrpc_wait", token, 30.0);
    eventually([&] { return s.server.open_channels() == 2; });  // the job and the held wait, before the drain
    auto draining = std::async(std::launch::async, [&] { s.server.shutdown(rpc::shutdown_mode::drain, 10s); });
    eventually([&] { return !s.server.accepting(); });
    CHECK(draining.wait_for(0s) == std::future_status::timeout);
    s.release.set_value();
    CHECK(waiting.get().as<int>() == 70);
    draining.get();
  }
  SECTION("abort") {
    test::held_service s;
    rpc::client c(s.endpoint);
    std::string token = c.submit("until_stopped");
    auto waiting = c.async_call("_ductrpc_wait", token, 30.0);
    eventually([&] { return s.server.open_channels() == 2 && s.started == 1; });
    s.server.shutdown(rpc::shutdown_mode::abort);
    CHECK_THROWS_AS(waiting.get(), rpc::cancelled_error);
    CHECK(s.stopped == 1);
  }
}

namespace {

struct budget_service {
  rpc::server server;
  std::string endpoint;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();

  budget_service() : server({.defer_after = 30ms, .list_jobs = true}) {
    auto hold = [this](int x) {
      released.wait();
      return x * 10;
    };
    server.bind("hold", hold);
    server.bind("hold_open", hold, {.defer = rpc::defer_policy::immediate});
    server.bind("add_token", [](int a, int b) { return a + b; }, {.defer = rpc::defer_policy::always});
    endpoint = server.listen("tcp://127.0.0.1:0");
    server.start();
  }
  ~budget_service() {
    if (released.wait_for(0s) != std::future_status::ready) release.set_value();
    server.stop();
  }
  std::size_t jobs(rpc::client& c) { return as_json(c.call("_ductrpc_list")).size(); }
};

}  // namespace

TEST_CASE("budget: a call past its budget is deferred, and the caller still just gets the result", "[rpc][deferred]") {
  budget_service s;
  rpc::client c(s.endpoint), observer(s.endpoint);
  auto blocking = std::async(std::launch::async, [&] { return c.call("hold", 3).as<int>(); });
  auto async = c.async_call("hold", 4);
  eventually([&] { return s.jobs(observer) == 2; });  // both ran past the budget and became jobs
  s.release.set_value();
  CHECK(blocking.get() == 30);
  CHECK(async.get().as<int>() == 40);
}

TEST_CASE("budget: a plain zerorpc client is never sent a token", "[rpc][deferred]") {
  budget_service s;
  zmq::context_t ctx;
  zmq::socket_t plain = test::plain_dealer(ctx, s.endpoint);
  rpc::id_generator ids;
  test::send_body(plain, rpc::encode_event({ids.next()}, "hold", std::make_tuple(1)).span());  // no ductrpc_deferred key
  rpc::client c(s.endpoint), observer(s.endpoint);
  auto ours = c.async_call("hold", 2);  // sent after the plain one, with the same budget
  eventually([&] { return s.jobs(observer) == 1; });  // ours became a job, so the plain call's budget passed too
  s.release.set_value();
  rpc::event reply = test::recv_event(plain);
  CHECK(reply.name == "OK");
  CHECK(ours.get().as<int>() == 20);
}

TEST_CASE("budget: policies immediate and always", "[rpc][deferred]") {
  budget_service s;
  rpc::client c(s.endpoint), observer(s.endpoint);
  CHECK(c.call("add_token", 2, 3).as<int>() == 5);  // answered with a token at once, collected transparently
  REQUIRE(s.jobs(observer) == 1);
  auto open_call = c.async_call("hold_open", 5);
  auto deferred = c.async_call("hold", 6);  // sent after, same budget
  eventually([&] { return s.jobs(observer) == 2; });  // only "hold" became a job: "hold_open" stays an open call
  s.release.set_value();
  CHECK(open_call.get().as<int>() == 50);
  CHECK(deferred.get().as<int>() == 60);
  CHECK(s.jobs(observer) == 2);
}

TEST_CASE("budget: a call's own time limit still holds after it was deferred", "[rpc][deferred][timeout]") {
  budget_service s;
  rpc::client c(s.endpoint);
  CHECK_THROWS_AS(c.call_for(200ms, "hold", 1), rpc::timeout_error);
  rpc::client strict(s.endpoint, {.timeout = 200ms});
  CHECK_THROWS_AS(strict.async_call("hold", 1).get(), rpc::timeout_error);
}

TEST_CASE("budget: a deferred call past its caller's time limit is cancelled, not left running", "[rpc][deferred][timeout]") {
  budget_service s;
  rpc::client c(s.endpoint), observer(s.endpoint);
  auto states = [&] {
    std::vector<std::string> out;
    for (const auto& j : as_json(observer.call("_ductrpc_list"))) out.push_back(j["state"]);
    return out;
  };
  CHECK_THROWS_AS(c.call_for(300ms, "hold", 1), rpc::timeout_error);  // blocking: deferred at 50 ms, then waited on
  eventually([&] { return states() == std::vector<std::string>{"cancelled"}; });
  rpc::client strict(s.endpoint, {.timeout = 300ms});
  CHECK_THROWS_AS(strict.async_call("hold", 2).get(), rpc::timeout_error);  // the same through a future
  eventually([&] { return states() == std::vector<std::string>{"cancelled", "cancelled"}; });
}

TEST_CASE("deferred: a drain keeps finished results collectable until they are fetched", "[rpc][deferred][shutdown]") {
  test::held_service s({.list_jobs = true});
  rpc::client c(s.endpoint);
  std::string token = c.submit("add", 2, 3);
  eventually([&] { return as_json(c.call("_ductrpc_list"))[0]["state"] == "done"; });  // listing does not collect
  auto draining = std::async(std::launch::async, [&] { s.server.shutdown(rpc::shutdown_mode::drain, 10s); });
  eventually([&] { return !s.server.accepting(); });
  CHECK_THROWS_AS(c.call("add", 1, 1), rpc::shutting_down_error);  // nothing new starts
  CHECK(draining.wait_for(0s) == std::future_status::timeout);    // the result is still waiting to be fetched
  CHECK(c.wait(token, 1s).as<int>() == 5);
  REQUIRE(draining.wait_for(10s) == std::future_status::ready);
  draining.get();
}

TEST_CASE("deferred: a drain gives up on uncollected results when its grace ends", "[rpc][deferred][shutdown]") {
  test::held_service s({.list_jobs = true});
  rpc::client c(s.endpoint);
  std::string token = c.submit("add", 2, 3);
  eventually([&] { return as_json(c.call("_ductrpc_list"))[0]["state"] == "done"; });
  auto start = std::chrono::steady_clock::now();
  s.server.shutdown(rpc::shutdown_mode::drain, 150ms);
  CHECK(std::chrono::steady_clock::now() - start >= 150ms);
  CHECK_FALSE(s.server.accepting());
}
