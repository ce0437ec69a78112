// rpc::future over ZeroMQ: its std::future-like contract, and the reading its waiters do for the client (the first
// waiting thread leads and reads every reply; the others wait behind it; the I/O thread takes over when it leaves).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include <rpc/client.hpp>
#include <rpc/future.hpp>
#include <rpc/server.hpp>
#include <rpc/stream.hpp>

#include "fixtures.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

// A server whose gate(k) answers k once the test opens gate k (or the server stops).
struct gated {
  std::mutex mu;
  std::condition_variable cv;
  std::set<int> open_gates;
  bool closing = false;
  rpc::server server{{.threads = 8, .defer_after = std::chrono::seconds(60)}};  // no token to wake a waiter
  std::string endpoint;

  gated() {
    server.bind("add", [](int a, int b) { return a + b; });
    server.bind("gate", [this](int k) {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return closing || open_gates.count(k) > 0; });
      return k;
    });
    server.bind("count", [](rpc::sink& out, int n) {
      for (int i = 0; i < n; ++i) out.write(i);
    });
    endpoint = server.listen("tcp://127.0.0.1:0");
    server.start();
  }
  ~gated() {
    {
      std::lock_guard lock(mu);
      closing = true;
    }
    cv.notify_all();
    server.stop();
  }
  void open(int k) {
    {
      std::lock_guard lock(mu);
      open_gates.insert(k);
    }
    cv.notify_all();
  }
};

// Runs `f` on a thread of its own, which notes its thread id first (for test::wait_until_sleeping).
template <class F>
auto on_thread(std::atomic<int>& tid, F f) {
  return std::async(std::launch::async, [&tid, f = std::move(f)]() mutable {
    tid = static_cast<int>(::gettid());
    return f();
  });
}

}  // namespace

TEST_CASE("a future gives its result once, and its error as call() would", "[rpc][future]") {
  gated g;
  rpc::client c(g.endpoint);
  rpc::future f = c.async_call("add", 2, 3);
  REQUIRE(f.valid());
  CHECK(f.get().as<int>() == 5);
  CHECK_FALSE(f.valid());
  CHECK_THROWS_AS(f.get(), std::future_error);
  CHECK_THROWS_AS(f.wait(), std::future_error);
  CHECK_THROWS_AS(c.async_call("missing").get(), rpc::unknown_method_error);
  CHECK_THROWS_AS(c.async_call("add", "two", 3).get(), rpc::remote_error);
  rpc::future none;
  CHECK_FALSE(none.valid());
  rpc::future failed = rpc::future::failed(std::make_exception_ptr(rpc::closed_error("gone")));
  CHECK(failed.wait_for(0s) == std::future_status::ready);
  CHECK_THROWS_WITH(failed.get(), "gone");
}

TEST_CASE("wait_for reports a running call as not ready, then its outcome as ready", "[rpc][future]") {
  gated g;
  rpc::client c(g.endpoint);
  rpc::future f = c.async_call("gate", 1);
  CHECK(f.wait_for(20ms) == std::future_status::timeout);
  CHECK(f.wait_for(0s) == std::future_status::timeout);
  g.open(1);
  CHECK(f.wait_for(10s) == std::future_status::ready);
  f.wait();
  CHECK(f.get().as<int>() == 1);
}

// A caller that polls with wait_for(0) never waits, so its own look must read what has arrived: before, the reply
// sat on the socket until the client's I/O thread next woke for its timers (up to a second later).
TEST_CASE("polling a future with wait_for(0) sees its reply as soon as it has arrived", "[rpc][future]") {
  gated g;
  rpc::client c(g.endpoint);
  for (int round = 0; round < 5; ++round) {
    rpc::future f = c.async_call("add", round, 1);
    const auto start = steady::now();
    while (f.wait_for(0s) != std::future_status::ready) std::this_thread::yield();
    CHECK(steady::now() - start < 300ms);  // a local reply: microseconds, against the old wait for the I/O thread
    CHECK(f.get().as<int>() == round + 1);
  }
}

TEST_CASE("a thread waiting behind the reading one gets its reply from it", "[rpc][future][threads]") {
  gated g;
  rpc::client c(g.endpoint);
  rpc::future slow = c.async_call("gate", 1);
  std::atomic<int> tid{0};
  auto leader = on_thread(tid, [&] { return slow.get().as<int>(); });
  test::wait_until_sleeping(tid);  // it leads: it sleeps on the client's socket
  // This thread now waits behind it; its reply comes on the same socket, which only the leader reads.
  for (int i = 0; i < 20; ++i) CHECK(c.async_call("add", i, 1).get().as<int>() == i + 1);
  CHECK(leader.wait_for(0s) == std::future_status::timeout);
  g.open(1);
  CHECK(leader.get() == 1);
}

TEST_CASE("when the reading thread leaves, the threads behind it still get their replies promptly",
          "[rpc][future][threads]") {
  // Without a hand-over, the reply of a thread left behind would wait for the client's I/O thread to wake on its
  // own (up to a second each time): twenty rounds would take many seconds.
  gated g;
  rpc::client c(g.endpoint);
  const auto start = steady::now();
  for (int round = 0; round < 20; ++round) {
    const int lead_gate = 2 * round + 1, behind_gate = 2 * round + 2;
    rpc::future first = c.async_call("gate", lead_gate);
    rpc::future second = c.async_call("gate", behind_gate);
    std::atomic<int> lead_tid{0}, behind_tid{0};
    auto leader = on_thread(lead_tid, [&] { return first.get().as<int>(); });
    test::wait_until_sleeping(lead_tid);
    auto behind = on_thread(behind_tid, [&] { return second.get().as<int>(); });
    test::wait_until_sleeping(behind_tid);
    g.open(lead_gate);
    CHECK(leader.get() == lead_gate);  // the leader has left
    g.open(behind_gate);
    CHECK(behind.get() == behind_gate);
  }
  CHECK(steady::now() - start < 5s);
}

TEST_CASE("a stream keeps flowing after a future's waiter has read for a while", "[rpc][future][stream]") {
  gated g;
  rpc::client c(g.endpoint, {.stream_window = 16});
  rpc::source items = c.stream("count", 2000);
  const auto start = steady::now();
  int expected = 0;
  for (int round = 0; round < 20; ++round) {
    // This thread leads while it waits (reading the stream's events too), then leaves: from then on the stream's
    // events need the I/O thread, which must be told. Without that, each round stalls until it wakes on its own.
    CHECK(c.async_call("add", round, 1).get().as<int>() == round + 1);
    for (int i = 0; i < 100; ++i) {
      auto item = items.next_for(10s);
      REQUIRE(item);
      REQUIRE(item->as<int>() == expected);
      ++expected;
    }
  }
  CHECK_FALSE(items.next_for(10s));
  CHECK(steady::now() - start < 5s);
}

TEST_CASE("a call's time limit reaches the thread reading for it", "[rpc][future][timeout]") {
  gated g;
  rpc::client c(g.endpoint);
  REQUIRE(c.async_call("add", 1, 2).get().as<int>() == 3);  // the socket is connected: it has nothing more to say
  // The I/O thread fails the call at its limit; the waiting thread sleeps on the socket, which stays silent.
  // Without being woken, it would sleep until the server's first heartbeat (5 s).
  rpc::future f = c.async_call_for(100ms, "gate", 7);
  const auto start = steady::now();
  CHECK_THROWS_AS(f.get(), rpc::timeout_error);
  CHECK(steady::now() - start < 2s);
  CHECK(c.call("add", 1, 2).as<int>() == 3);
}

TEST_CASE("closing a client fails the futures that threads are waiting on", "[rpc][future][close]") {
  gated g;
  auto c = std::make_unique<rpc::client>(g.endpoint);
  rpc::future first = c->async_call("gate", 1);
  rpc::future second = c->async_call("gate", 2);
  std::atomic<int> lead_tid{0}, behind_tid{0};
  auto leader = on_thread(lead_tid, [&] { return first.get().as<int>(); });
  test::wait_until_sleeping(lead_tid);
  auto behind = on_thread(behind_tid, [&] { return second.get().as<int>(); });
  test::wait_until_sleeping(behind_tid);
  rpc::future unwaited = c->async_call("gate", 3);
  c.reset();
  CHECK_THROWS_AS(leader.get(), rpc::closed_error);
  CHECK_THROWS_AS(behind.get(), rpc::closed_error);
  CHECK_THROWS_AS(unwaited.get(), rpc::closed_error);  // outliving its client: settled, never read
}

TEST_CASE("a reply read by another thread just as a future's waiter starts reading still reaches it",
          "[rpc][future][threads]") {
  // The I/O thread reads for an open stream; a reply it reads may be settled just after the waiting thread looked
  // and just before it sleeps on the socket. The settling thread must then wake it, or it sleeps for good. The
  // window is a few instructions wide: this exercises it (each round bounded, the rounds varying the moment the
  // waiter starts) but does not hit it every run. It was found by rpc-call's test under AddressSanitizer, about
  // one rpc-call in 400 under load, and that is where it would show again.
  gated g;
  for (int round = 0; round < 300; ++round) {
    rpc::client c(g.endpoint, {.stream_window = 16});
    rpc::source items = c.stream("count", 100);  // left unread: the I/O thread keeps watching the socket
    rpc::future f = c.async_call("add", round, 1);
    for (int spin = 0; spin < round * 10; ++spin) std::this_thread::yield();
    REQUIRE(f.wait_for(10s) == std::future_status::ready);
    CHECK(f.get().as<int>() == round + 1);
  }
}
