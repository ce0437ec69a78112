// What one client may take of a server (client_limits): its turn on the handler threads, bounded queues and open
// calls, bounded kept outcomes, and one-way calls that neither hold every thread nor hang a shutdown. Each case
// is one a single client could use, before these bounds, to deny service to the others.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <rpc/client.hpp>
#include <rpc/server.hpp>

#include "fixtures.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using test::eventually;

namespace {

// Calls of "block" wait until released; "blob" returns a string of n bytes; "add" answers at once.
struct blocking_service {
  rpc::server server;
  std::string endpoint;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> started{0};

  explicit blocking_service(rpc::server_options o) : server(std::move(o)) {
    server.bind("add", [](int a, int b) { return a + b; });
    server.bind("block", [this](std::stop_token stop) {
      ++started;
      while (released.wait_for(1ms) != std::future_status::ready && !stop.stop_requested()) {
      }
      return 0;
    });
    server.bind("blob", [](int n) { return std::string(static_cast<std::size_t>(n), 'x'); });
    endpoint = server.listen("tcp://127.0.0.1:0");
    server.start();
  }
  ~blocking_service() {
    if (released.wait_for(0s) != std::future_status::ready) release.set_value();
    server.stop();
  }
};

}  // namespace

TEST_CASE("limits: one client's backlog does not hold up another client's next call", "[rpc][limits]") {
  // Two threads; by default a client may run one fewer than that. Before, the first two blocking calls of one
  // client took both threads, and every other client waited for them.
  blocking_service s({.threads = 2});
  rpc::client hog(s.endpoint), other(s.endpoint);
  std::vector<rpc::future> backlog;
  for (int i = 0; i < 20; ++i) backlog.push_back(hog.async_call("block"));
  eventually([&] { return s.started.load() == 1; });
  CHECK(other.call_for(10s, "add", 2, 3).as<int>() == 5);
  CHECK(s.started.load() == 1);  // the hog still has one running, the rest queued
  s.release.set_value();
  for (auto& f : backlog) CHECK(f.get().as<int>() == 0);
}

TEST_CASE("limits: a client's queue is bounded - beyond it calls get Overloaded at once, others are served",
          "[rpc][limits]") {
  blocking_service s({.threads = 2, .per_client = {.queued = 3}});
  rpc::client hog(s.endpoint), other(s.endpoint);
  std::vector<rpc::future> held;
  held.push_back(hog.async_call("block"));
  eventually([&] { return s.started.load() == 1; });                      // one running,
  for (int i = 0; i < 3; ++i) held.push_back(hog.async_call("block"));  // three queued
  try {
    hog.async_call_for(10s, "block").get();  // on the same connection as the others (a blocking call has its own)
    FAIL("a call beyond the client's queue was taken");
  } catch (const rpc::overloaded_error& e) {
    CHECK_THAT(e.message(), Catch::Contains("block") && Catch::Contains("3 calls waiting"));
  }
  CHECK(other.call_for(10s, "add", 1, 1).as<int>() == 2);
  s.release.set_value();
  for (auto& f : held) CHECK(f.get().as<int>() == 0);
  CHECK(hog.call("add", 2, 2).as<int>() == 4);  // and it is served again once its queue has room
}

TEST_CASE("limits: the server's queue is bounded across clients", "[rpc][limits]") {
  blocking_service s({.threads = 1, .max_queued = 2});
  rpc::client a(s.endpoint), b(s.endpoint), c(s.endpoint);
  auto running = a.async_call("block");
  eventually([&] { return s.started.load() == 1; });
  auto q1 = b.async_call("block");
  auto q2 = c.async_call("block");
  eventually([&] { return s.server.open_channels() == 3; });
  CHECK_THROWS_AS(a.call_for(10s, "add", 1, 2), rpc::overloaded_error);
  s.release.set_value();
  CHECK(running.get().as<int>() == 0);
  CHECK(q1.get().as<int>() == 0);
  CHECK(q2.get().as<int>() == 0);
}

TEST_CASE("limits: the calls open on one connection are bounded", "[rpc][limits]") {
  // Before, one client kept 300k calls open (550 MB of server memory).
  blocking_service s({.per_client = {.queued = 100, .open_calls = 5}});
  rpc::client hog(s.endpoint), other(s.endpoint);
  std::vector<rpc::future> held;
  for (int i = 0; i < 5; ++i) held.push_back(hog.async_call("block"));
  eventually([&] { return s.server.open_channels() == 5; });
  try {
    hog.async_call_for(10s, "add", 1, 2).get();  // on the same connection as the others
    FAIL("a call beyond the connection's open calls was taken");
  } catch (const rpc::overloaded_error& e) {
    CHECK_THAT(e.message(), Catch::Contains("5 calls open"));
  }
  CHECK(other.call_for(10s, "add", 1, 2).as<int>() == 3);
  s.release.set_value();
  for (auto& f : held) CHECK(f.get().as<int>() == 0);
}

TEST_CASE("limits: a burst of blocking calls arriving together is held to the connection's bound as well",
          "[rpc][limits]") {
  // The server's receiving thread runs the first call of a batch itself, untracked, and starts the others the long
  // way only when that one blocks: the bound must hold for the whole batch all the same.
  blocking_service s({.per_client = {.queued = 100, .open_calls = 5}});
  rpc::client hog(s.endpoint), other(s.endpoint);
  std::vector<rpc::future> burst;
  for (int i = 0; i < 50; ++i) burst.push_back(hog.async_call_for(10s, "block"));
  int overloaded = 0;
  for (int i = 5; i < 50; ++i) {  // the first five sent are the ones that fit, in the order they arrive
    try {
      burst[static_cast<std::size_t>(i)].get();
    } catch (const rpc::overloaded_error&) {
      ++overloaded;
    }
  }
  CHECK(overloaded == 45);
  CHECK(s.server.open_channels() == 5);
  CHECK(other.call_for(10s, "add", 1, 2).as<int>() == 3);
  s.release.set_value();
  for (int i = 0; i < 5; ++i) CHECK(burst[static_cast<std::size_t>(i)].get().as<int>() == 0);
  eventually([&] { return s.server.open_channels() == 0; });
}

TEST_CASE("limits: kept outcomes are bounded per client without evicting what others have not fetched",
          "[rpc][limits][deferred]") {
  blocking_service s({.max_jobs = 6, .per_client = {.jobs = 4, .kept_bytes = 1 << 20}});
  rpc::client mine(s.endpoint), theirs(s.endpoint);
  const std::string kept = theirs.submit("blob", 1000);  // never fetched before the end
  // A result that does not fit the client's budget is replaced by Overloaded; one fetched already makes room.
  const std::string first = mine.submit("blob", 600'000);
  CHECK(mine.wait(first, 10s).as<std::string>().size() == 600'000);
  const std::string second = mine.submit("blob", 600'000);  // fits: the first, fetched, is dropped for it
  CHECK(mine.wait(second, 10s).as<std::string>().size() == 600'000);
  CHECK_THROWS_AS(mine.poll(first), rpc::unknown_token_error);
  const std::string third = mine.submit("blob", 100);  // the second, though fetched, goes for it only if needed
  CHECK(mine.wait(third, 10s).as<std::string>() == std::string(100, 'x'));
  // The client's job count: four kept at most, fetched ones dropped first; then Overloaded.
  std::vector<std::string> tokens;
  for (int i = 0; i < 4; ++i) tokens.push_back(mine.submit("block"));
  eventually([&] { return s.started.load() == 3; });  // its running bound: three of the four threads
  CHECK_THROWS_AS(mine.submit("add", 1, 2), rpc::overloaded_error);
  // The other client's unfetched outcome survived all of it.
  CHECK(test::as_json(theirs.poll(kept))["state"] == "done");
  s.release.set_value();
  for (const auto& t : tokens) CHECK(mine.wait(t, 10s).as<int>() == 0);
}

TEST_CASE("limits: a result over the client's byte budget becomes an Overloaded error", "[rpc][limits][deferred]") {
  blocking_service s({.per_client = {.kept_bytes = 1 << 20}});
  rpc::client c(s.endpoint);
  const std::string a = c.submit("blob", 700'000);
  eventually([&] { return s.server.open_channels() == 0; });  // done, and not fetched (a poll would fetch it)
  const std::string b = c.submit("blob", 700'000);  // a is not fetched: b's outcome cannot be kept beside it
  try {
    c.wait(b, 10s);
    FAIL("an outcome over the budget was kept");
  } catch (const rpc::overloaded_error& e) {
    CHECK_THAT(e.message(), Catch::Contains("700") && Catch::Contains("bytes"));
  }
  CHECK(c.wait(a, 10s).as<std::string>().size() == 700'000);  // the first is intact
}

TEST_CASE("limits: no more than `threads` handlers run at once, the receiving thread's own among them",
          "[rpc][limits][handlers]") {
  // The server has a thread more than `threads` (whichever receives), and that thread runs calls itself: the bound
  // must count both. Two calls that block fill the two; then the receiving thread, free, gets two more, from a
  // client allowed two: they must wait, not run where they arrived.
  blocking_service s({.threads = 2, .per_client = {.running = 2}});
  rpc::client a(s.endpoint), b(s.endpoint);
  std::vector<rpc::future> calls;
  for (int i = 0; i < 2; ++i) calls.push_back(a.async_call("block"));
  eventually([&] { return s.started.load() == 2; });
  for (int i = 0; i < 2; ++i) calls.push_back(b.async_call("block"));
  // A negative can only be watched for a while: 300 ms is hundreds of the server's rounds.
  const auto until = std::chrono::steady_clock::now() + 300ms;
  while (std::chrono::steady_clock::now() < until && s.started.load() == 2) std::this_thread::sleep_for(5ms);
  for (auto& c : calls) UNSCOPED_INFO("ready " << (c.wait_for(0ms) == std::future_status::ready));
  UNSCOPED_INFO("handoffs " << s.server.handoffs());
  CHECK(s.started.load() == 2);
  s.release.set_value();
  for (auto& c : calls) CHECK(c.get().as<int>() == 0);
  CHECK(s.started.load() == 4);
}

TEST_CASE("limits: one-way calls from a client that leaves hold at most its share of threads", "[rpc][limits]") {
  blocking_service s({.threads = 4});
  {
    rpc::client gone(s.endpoint);
    for (int i = 0; i < 8; ++i) gone.publish("block");
    eventually([&] { return s.started.load() == 3; });  // its bound: one thread stays for the others
  }
  rpc::client other(s.endpoint);
  CHECK(other.call_for(10s, "add", 4, 5).as<int>() == 9);
  CHECK(s.started.load() == 3);
}

TEST_CASE("limits: a shutdown cancels one-way calls and returns", "[rpc][limits][shutdown]") {
  // Before, a published call cancelled at shutdown was never counted closed, and shutdown() waited for ever.
  blocking_service s({.threads = 2});
  rpc::client c(s.endpoint);
  c.publish("block");
  c.publish("block");  // queued behind the first
  eventually([&] { return s.started.load() == 1 && s.server.open_channels() == 2; });
  auto done = std::async(std::launch::async, [&] { s.server.shutdown(rpc::shutdown_mode::abort); });
  REQUIRE(done.wait_for(10s) == std::future_status::ready);
  done.get();
  CHECK(s.started.load() == 1);  // the queued one never ran
}

TEST_CASE("limits: over a duct, the one-way calls of a peer that closes are cancelled", "[rpc][limits]") {
  auto [a, b] = duct::pair();
  rpc::link server_end(std::move(a));
  test::held_service s({.threads = 2}, &server_end);
  {
    rpc::link client_end(std::move(b));
    rpc::client c(client_end);
    c.publish("until_stopped");
    eventually([&] { return s.started.load() == 1; });
  }  // the peer closes its end
  eventually([&] { return s.stopped.load() == 1 && s.server.open_channels() == 0; });
}
