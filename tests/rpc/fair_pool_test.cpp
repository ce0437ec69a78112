// The server's handler pool without a server: calls counted on the caller's own thread (try_begin(), end(), and
// end_and_begin() and go_on() for a thread running calls one after another) keep the same bounds and turns as
// queued ones.
#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <string>

#include "fair_pool.hpp"

using namespace std::chrono_literals;
using rpc::detail::fair_pool;

TEST_CASE("a call run on the caller's thread counts against the bounds of the pool and of its client", "[pool]") {
  fair_pool pool({.threads = 2, .per_client_running = 1});
  auto a = pool.try_begin("a");
  REQUIRE(a);
  CHECK_FALSE(pool.try_begin("a"));  // a's bound of one running call
  auto b = pool.try_begin("b");
  REQUIRE(b);
  CHECK_FALSE(pool.try_begin("c"));  // every thread's worth is running
  CHECK_FALSE(pool.idle());
  pool.end(a);
  auto c = pool.try_begin("c");
  CHECK(c);
  pool.end(b);
  pool.end(c);
  CHECK(pool.idle());
}

TEST_CASE("end_and_begin hands a finished call's place to the next, as end() then try_begin() would", "[pool]") {
  fair_pool pool({.threads = 1, .per_client_running = 1});
  auto first = pool.try_begin("a");
  REQUIRE(first);
  CHECK_FALSE(pool.try_begin("a"));
  // The same client again (looked up once), then another client: each takes the one place.
  auto second = pool.end_and_begin(first, "a");
  REQUIRE(second);
  auto third = pool.end_and_begin(second, "b");
  REQUIRE(third);
  CHECK_FALSE(pool.try_begin("c"));

  // A queued call waits its turn: the next call on the caller's thread does not jump it, and the ended one's place
  // goes to it.
  std::promise<void> ran;
  REQUIRE(pool.submit("c", [&] { ran.set_value(); }) == fair_pool::refusal::none);
  auto fourth = pool.end_and_begin(third, "b");
  CHECK_FALSE(fourth);
  CHECK(ran.get_future().wait_for(10s) == std::future_status::ready);
}

TEST_CASE("end_and_begin keeps a client's bound when it hands a place to the same client", "[pool]") {
  fair_pool pool({.threads = 4, .per_client_running = 2});
  auto a1 = pool.try_begin("a");
  auto a2 = pool.try_begin("a");
  REQUIRE(a1);
  REQUIRE(a2);
  CHECK_FALSE(pool.try_begin("a"));
  auto a3 = pool.end_and_begin(a1, "a");  // one of a's two ended: a third may start
  REQUIRE(a3);
  CHECK_FALSE(pool.try_begin("a"));
  pool.end(a2);
  pool.end(a3);
  CHECK(pool.idle());
}

TEST_CASE("go_on passes a client's place to its next call, and lets a queued call go first as end_and_begin does",
          "[pool]") {
  fair_pool pool({.threads = 1, .per_client_running = 1});
  auto first = pool.go_on({}, "a");  // nothing ran before: as try_begin()
  REQUIRE(first);
  auto second = pool.go_on(first, "a");  // the same client, nothing queued: the place passes on
  REQUIRE(second);
  CHECK_FALSE(pool.try_begin("b"));  // still one running, not two, and not none
  auto third = pool.go_on(second, "b");  // another client: the place passes through the lock
  REQUIRE(third);
  CHECK_FALSE(pool.try_begin("a"));

  // A queued call (b's own here) is not jumped by b's next call on the caller's thread: it takes the ended one's
  // place.
  std::promise<void> ran;
  REQUIRE(pool.submit("b", [&] { ran.set_value(); }) == fair_pool::refusal::none);
  CHECK_FALSE(pool.go_on(third, "b"));
  CHECK(ran.get_future().wait_for(10s) == std::future_status::ready);
  pool.stop();
  CHECK_FALSE(pool.go_on({}, "a"));  // stopping: nothing begins
}
