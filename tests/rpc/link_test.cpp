// RPC over a duct (rpc::link): a parent calls a forked worker and the worker calls back over the same duct; lost
// peers, deferral, time limits, closing, garbage and heartbeats, as over ZeroMQ.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <future>
#include <thread>

#include <rpc/client.hpp>
#include <rpc/event.hpp>
#include <rpc/link.hpp>
#include <rpc/stream.hpp>
#include <rpc/server.hpp>

#include "fixtures.hpp"

using namespace std::chrono_literals;
using test::eventually;

namespace {

// The worker's side: serves add, pid, work (which reports each step back to the parent's "step" method over the
// same duct), hang (until the duct closes) and bye; returns once bye was called.
int worker_main(duct::connection up) {
  rpc::link parent_link(std::move(up));
  rpc::server s({.threads = 4});  // two "hang" calls at once must leave room for others
  rpc::client parent(parent_link);  // its first call comes after the server starts, as link.hpp asks
  std::promise<void> done;
  s.bind("add", [](int a, int b) { return a + b; });
  s.bind("pid", [] { return static_cast<int>(::getpid()); });
  s.bind("work", [&](int steps) {
    int sum = 0;
    for (int i = 1; i <= steps; ++i) sum += parent.call("step", i).as<int>();
    return sum;
  });
  s.bind("hang", [](std::stop_token stop) {
    test::sleep_until_stopped(stop);
    return 0;
  });
  s.bind("bye", [&] {
    done.set_value();
    return true;
  });
  s.listen(parent_link);
  s.start();
  done.get_future().wait();
  s.shutdown(rpc::shutdown_mode::drain, 5s);  // bye's reply still leaves
  return 0;
}

// A worker process forked with one end of a socketpair; the parent keeps the other end as a link.
struct forked_worker {
  pid_t pid = -1;
  rpc::link link;

  static forked_worker start() {
    auto [parent_end, child_end] = duct::pair();
    pid_t pid = ::fork();
    if (pid < 0) FAIL("fork failed");
    if (pid == 0) {
      parent_end.close();
      int code = 1;
      try {
        code = worker_main(std::move(child_end));
      } catch (...) {
      }
      ::_exit(code);
    }
    child_end.close();
    return forked_worker{pid, rpc::link(std::move(parent_end))};
  }
  // The worker's exit status, waited for (bounded: 10 s) by looking.
  int wait() {
    int status = 0;
    eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; });
    pid = -1;
    return status;
  }
  ~forked_worker() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

// The shared test service (fixtures.hpp) and a client end, in this process, on the two ends of one socketpair.
struct local_pair {
  std::pair<duct::connection, duct::connection> ends = duct::pair();
  rpc::link server_end{std::move(ends.first)};
  rpc::link client_end{std::move(ends.second)};
  test::held_service service;  // declared last: it stops its server before the links go
  rpc::server& server = service.server;
  std::promise<void>& release = service.release;

  explicit local_pair(rpc::server_options o = {}) : service(std::move(o), &server_end) {}
};

}  // namespace

TEST_CASE("link: a parent calls a forked worker over its duct", "[rpc][link]") {
  auto w = forked_worker::start();
  rpc::client c(w.link);
  CHECK(c.call("add", 2, 3).as<int>() == 5);
  CHECK(c.call("pid").as<int>() == w.pid);
  CHECK_THAT(c.endpoint(), Catch::StartsWith("duct:"));
  CHECK(c.call("bye").as<bool>());
  CHECK(w.wait() == 0);
}

TEST_CASE("link: the worker calls back over the same duct while the parent's call is open", "[rpc][link]") {
  auto w = forked_worker::start();
  rpc::server parent_side({.threads = 1});
  std::atomic<int> steps{0};
  parent_side.bind("step", [&](int i) {
    ++steps;
    return i * 100;
  });
  parent_side.listen(w.link);
  parent_side.start();
  rpc::client c(w.link);
  CHECK(c.call("work", 4).as<int>() == 1000);  // 100 + 200 + 300 + 400, each from a call back to us
  CHECK(steps == 4);
  // Both directions at once, many calls in flight each way.
  std::vector<rpc::future> works, adds;
  for (int i = 0; i < 16; ++i) {
    works.push_back(c.async_call("work", 3));
    adds.push_back(c.async_call("add", i, 1));
  }
  for (int i = 0; i < 16; ++i) {
    CHECK(works[i].get().as<int>() == 600);
    CHECK(adds[i].get().as<int>() == i + 1);
  }
  CHECK(c.call("bye").as<bool>());
  CHECK(w.wait() == 0);
}

TEST_CASE("link: a worker that dies fails the open call with lost remote at once, not after heartbeats", "[rpc][link]") {
  auto w = forked_worker::start();
  rpc::client c(w.link, {.heartbeat = 60s});
  // One blocking call reading its reply itself, one through the reader thread.
  auto blocking = std::async(std::launch::async, [&] { return c.call("hang"); });
  auto pending = c.async_call("hang");
  CHECK(c.call("add", 1, 1).as<int>() == 2);  // the worker is up and "hang" is running
  ::kill(w.pid, SIGKILL);
  w.wait();
  REQUIRE(pending.wait_for(10s) == std::future_status::ready);
  try {
    pending.get();
    FAIL("no exception");
  } catch (const rpc::lost_remote_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("hang") && Catch::Contains("the duct closed"));
  }
  REQUIRE(blocking.wait_for(10s) == std::future_status::ready);
  CHECK_THROWS_WITH(blocking.get(), Catch::Contains("hang"));
  CHECK(w.link.closed());
  CHECK(w.link.wait_closed(0ms));
  CHECK_THROWS_AS(c.call("add", 1, 1), rpc::lost_remote_error);
  // Calls started after that return their handle, which reports it, as over ZeroMQ: only a closed client throws.
  rpc::future later = c.async_call("add", 1, 1);
  CHECK_THROWS_WITH(later.get(), Catch::Contains("add") && Catch::Contains("the duct closed"));
  rpc::source items = c.stream("count", 3);
  CHECK_THROWS_AS(items.next(), rpc::lost_remote_error);
  rpc::duplex upload = c.chunked_call("sum");
  CHECK_THROWS_AS(upload.write(1), rpc::lost_remote_error);
  CHECK_THROWS_AS(upload.finish(), rpc::lost_remote_error);
}

TEST_CASE("link: a client whose duct closes has its calls dropped and handlers stopped on the server", "[rpc][link]") {
  rpc::server s;
  std::atomic<int> started{0}, stopped{0};
  s.bind("until_stopped", [&](std::stop_token stop) {
    ++started;
    test::sleep_until_stopped(stop);
    ++stopped;
    return 0;
  });
  auto [a, b] = duct::pair();
  rpc::link server_end(std::move(a));
  s.listen(server_end);
  s.start();
  CHECK_FALSE(server_end.wait_closed(10ms));
  {
    rpc::link client_end(std::move(b));
    rpc::client c(client_end, {.heartbeat = 60s});
    auto pending = c.async_call("until_stopped");
    // Running, not waiting for a thread (a call whose client is gone before it starts never runs).
    eventually([&] { return s.open_channels() == 1 && started == 1; });
    client_end.close();
    CHECK_THROWS_AS(pending.get(), rpc::closed_error);
  }
  eventually([&] { return stopped == 1; });
  CHECK(s.open_channels() == 0);
  CHECK(server_end.wait_closed(10s));
}

TEST_CASE("link: errors, unknown methods and time limits behave as over ZeroMQ", "[rpc][link]") {
  local_pair p;
  rpc::client c(p.client_end);
  try {
    c.call("fail");
    FAIL("no exception");
  } catch (const rpc::remote_error& e) {
    CHECK(e.name() == "ValueError");
    CHECK(e.message() == "no good");
  }
  CHECK_THROWS_AS(c.call("nope"), rpc::unknown_method_error);
  CHECK_THROWS_WITH(c.call("add", "x", 1), Catch::Contains("TypeError") || Catch::Contains("add"));
  auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(c.call_for(100ms, "hold", 1), rpc::timeout_error);
  CHECK(std::chrono::steady_clock::now() - start >= 100ms);
  CHECK(std::chrono::steady_clock::now() - start < 5s);
  CHECK(c.call("add", 20, 22).as<int>() == 42);  // the timed-out call disturbed nothing
  CHECK(c.call("_zerorpc_name").as<std::string>() == "ductrpc");
}

TEST_CASE("link: a method run on the receiving thread answers while every pool thread is busy", "[rpc][link][inline]") {
  local_pair p({.threads = 1});
  rpc::client c(p.client_end);
  auto busy = c.async_call("until_stopped");
  test::eventually([&] { return p.service.started.load() == 1; });
  CHECK(c.call_for(5s, "quick", 1).as<int>() == 2);
  CHECK_THROWS_AS(c.call_for(5s, "quick", -1), rpc::remote_error);
  CHECK_THROWS_AS(c.call_for(100ms, "add", 1, 2), rpc::timeout_error);  // the pool really is busy
  p.server.shutdown(rpc::shutdown_mode::abort, 0s);
  CHECK_THROWS_AS(busy.get(), rpc::cancelled_error);
}

TEST_CASE("link: a call that runs long on the reader hands reading on: the duct's calls and heartbeats go on",
          "[rpc][link][handoff]") {
  // The duct's reader runs a call that may start at once itself (handlers_test.cpp checks where). This one blocks:
  // one budget later a free thread of the server reads the duct instead, or nothing more would be read from it.
  local_pair p({.heartbeat = 100ms, .defer_after = 60s});
  rpc::client c(p.client_end, {.heartbeat = 100ms});
  auto blocked = c.async_call("until_stopped");
  eventually([&] { return p.service.started.load() == 1; });
  for (int i = 0; i < 20; ++i) REQUIRE(c.call_for(5s, "add", i, 1).as<int>() == i + 1);
  eventually([&] { return p.server.handoffs() >= 1; });
  // The server hears the client's heartbeats on that call's channel through the thread reading for the reader;
  // without it, three periods of silence would count as a lost client, which stops the handler.
  const auto start = std::chrono::steady_clock::now();
  eventually([&] { return std::chrono::steady_clock::now() - start > 350ms; });
  CHECK(p.service.stopped.load() == 0);
  CHECK(blocked.wait_for(0s) == std::future_status::timeout);
  // The reader's call returns: it reads again, and the thread that read for it goes back to the pool.
  p.service.release.set_value();  // (nothing holds; until_stopped ends with the abort below)
  p.server.shutdown(rpc::shutdown_mode::abort, 0s);
  CHECK_THROWS_AS(blocked.get(), rpc::cancelled_error);
  CHECK(p.service.stopped.load() == 1);
}

TEST_CASE("link: with every thread busy, the server still answers pings on the duct and bounds what waits",
          "[rpc][link][handoff]") {
  // Two handlers blocked at once: the first on the duct's reader, the second on a pool thread (read by the thread
  // reading for the reader, which keeps nothing for itself); one more call waits, the next is refused.
  local_pair p({.threads = 2, .defer_after = 60s, .max_queued = 1, .per_client = {.running = 2}});
  rpc::client c(p.client_end);
  auto first = c.async_call("until_stopped");
  auto second = c.async_call("until_stopped");
  eventually([&] { return p.service.started.load() == 2; });
  CHECK(c.call_for(5s, "_zerorpc_ping").as<std::vector<std::string>>().size() == 2);
  auto waiting = c.async_call("add", 1, 2);
  eventually([&] { return p.server.open_channels() == 3; });
  CHECK_THROWS_AS(c.call_for(5s, "add", 3, 4), rpc::overloaded_error);
  CHECK(waiting.wait_for(0s) == std::future_status::timeout);
  p.server.shutdown(rpc::shutdown_mode::abort, 0s);
  CHECK_THROWS_AS(first.get(), rpc::cancelled_error);
  CHECK_THROWS_AS(second.get(), rpc::cancelled_error);
  CHECK_THROWS_AS(waiting.get(), rpc::error);  // dropped with the pool's queue: cancelled or lost
}

TEST_CASE("link: the thread that read for a long call goes back to the pool once the call returns",
          "[rpc][link][handoff]") {
  // One handler thread: the pool has two, one holding the I/O role, the other free. The free one reads the duct
  // while "block" runs long on the reader; once it returns, that thread must be free again, or a stream (which
  // always runs on the pool) would never start.
  constexpr int gates = 16;
  std::promise<void> open[gates];
  std::shared_future<void> opened[gates];
  for (int i = 0; i < gates; ++i) opened[i] = open[i].get_future().share();
  bool set[gates] = {};
  std::atomic<std::uint64_t> blocked_on{0};
  auto [a, b] = duct::pair();
  rpc::link server_end(std::move(a)), client_end(std::move(b));
  rpc::server s({.threads = 1, .defer_after = 60s});
  struct release_all {  // a case that fails half-way still lets the server stop
    std::promise<void>* p;
    bool* done;
    ~release_all() {
      for (int i = 0; i < gates; ++i)
        if (!done[i]) p[i].set_value();
    }
  } guard{open, set};
  auto here = [] { return static_cast<std::uint64_t>(std::hash<std::thread::id>()(std::this_thread::get_id())); };
  s.bind("reader", here, {.where = rpc::run_on::receiver});  // the thread that reads the duct, by definition
  s.bind("block", [&](int gate) {
    blocked_on = here();
    opened[gate].wait();
    return gate;
  });
  s.bind("count", [](rpc::sink& out, int n) {
    for (int i = 0; i < n; ++i) out.write(i);
  });
  s.listen(server_end);
  s.start();
  rpc::client c(client_end);
  int gate = 0, rounds = 0;
  for (; rounds < 3 && gate < gates; ++gate) {  // each time the reader takes reading back
    CAPTURE(rounds, gate);
    const auto reader = c.call_for(5s, "reader").as<std::uint64_t>();
    const std::uint64_t handoffs = s.handoffs();
    blocked_on = 0;
    auto blocked = c.async_call("block", gate);
    eventually([&] { return blocked_on.load() != 0; });
    // Kept by the reader only if it could start at once: the last round's stream may not have counted itself out
    // of the handler bound yet, and then "block" waited for, and ran on, the pool thread. That round does not count.
    const bool on_reader = blocked_on.load() == reader;
    if (on_reader) eventually([&] { return s.handoffs() > handoffs; });
    open[gate].set_value();
    set[gate] = true;
    REQUIRE(blocked.wait_for(5s) == std::future_status::ready);
    CHECK(blocked.get().as<int>() == gate);
    rpc::source items = c.stream("count", 3);
    for (int i = 0; i < 3; ++i) CHECK(items.next_for(5s)->as<int>() == i);
    CHECK_FALSE(items.next_for(5s));
    rounds += on_reader;
  }
  CHECK(rounds == 3);
}

TEST_CASE("link: blocking calls from several threads do not wait for each other", "[rpc][link]") {
  local_pair p;
  rpc::client c(p.client_end);
  // The first blocking call on a link without a reader thread reads its reply itself; the others must still get
  // theirs while it waits.
  auto held = std::async(std::launch::async, [&] { return c.call("hold", 4).as<int>(); });
  eventually([&] { return p.server.open_channels() == 1; });
  for (int i = 0; i < 50; ++i) REQUIRE(c.call("add", i, 1).as<int>() == i + 1);
  std::vector<std::future<int>> many;
  for (int t = 0; t < 4; ++t)
    many.push_back(std::async(std::launch::async, [&, t] {
      int sum = 0;
      for (int i = 0; i < 50; ++i) sum += c.call("add", t, i).as<int>();
      return sum;
    }));
  for (int t = 0; t < 4; ++t) CHECK(many[t].get() == 50 * t + 1225);
  CHECK(held.wait_for(0s) == std::future_status::timeout);
  p.release.set_value();
  CHECK(held.get() == 40);
}

TEST_CASE("link: a long call is deferred past its budget and collected without the caller noticing", "[rpc][link]") {
  local_pair p({.defer_after = 50ms, .list_jobs = true});
  rpc::client c(p.client_end);
  auto held = c.async_call("hold", 7);
  // The server answered with a token and the link now waits on it: a job shows in the list.
  eventually([&] { return c.call("_ductrpc_list").as<std::vector<std::map<std::string, std::string>>>().size() == 1; });
  p.release.set_value();
  CHECK(held.get().as<int>() == 70);
  std::string token = c.submit("hold", 3);  // tokens by hand work too
  CHECK(c.wait(token, 5s).as<int>() == 30);
}

TEST_CASE("link: a request to a duct no server serves is answered with NoServer", "[rpc][link]") {
  auto [a, b] = duct::pair();
  rpc::link lonely(std::move(a));
  rpc::link mine(std::move(b));
  rpc::client to_lonely(mine);
  rpc::client from_lonely(lonely);
  auto other_way = from_lonely.async_call("sub", 1, 2);  // starts the lonely end's reader
  try {
    to_lonely.call("add", 1, 2);
    FAIL("no exception");
  } catch (const rpc::remote_error& e) {
    CHECK(e.name() == "NoServer");
    CHECK_THAT(e.message(), Catch::Contains("add") && Catch::Contains("no server"));
  }
  try {
    other_way.get();  // our reader runs now too, and no server serves our end either
    FAIL("no exception");
  } catch (const rpc::remote_error& e) {
    CHECK(e.name() == "NoServer");
    CHECK_THAT(e.message(), Catch::Contains("sub"));
  }
}

TEST_CASE("link: closing the link or the client fails open calls with closed", "[rpc][link]") {
  local_pair p;
  {
    rpc::client c(p.client_end);
    auto pending = c.async_call("hold", 1);
    eventually([&] { return p.server.open_channels() == 1; });
  }  // the client goes: its call fails (nobody holds the future any more) and the link stays usable
  rpc::client c(p.client_end);
  CHECK(c.call("add", 1, 2).as<int>() == 3);
  auto pending = c.async_call("hold", 1);
  p.client_end.close();
  CHECK_THROWS_AS(pending.get(), rpc::closed_error);
  CHECK_THROWS_AS(c.call("add", 1, 2), rpc::closed_error);
  CHECK_THROWS_AS(rpc::client(p.client_end), rpc::closed_error);
}

TEST_CASE("link: garbage on the duct is dropped and the server keeps serving", "[rpc][link]") {
  rpc::server s;
  s.bind("add", [](int a, int b) { return a + b; });
  auto [a, b] = duct::pair();
  rpc::link server_end(std::move(a));
  s.listen(server_end);
  s.start();
  // b stays a plain duct: write garbage, then a real request, as a foreign peer would.
  b.send_bytes(std::string_view("not msgpack at all"));
  b.send_bytes(std::string_view("\x93\x01\x02\x03"));  // msgpack, but not an event
  rpc::id_generator ids;
  rpc::message_id id = ids.next();
  duct::pack_buffer args;
  msgpack::pack(args, std::make_tuple(2, 3));
  b.send_bytes(rpc::encode_event_packed({id}, "add", std::as_bytes(std::span(args.data(), args.size()))).span());
  rpc::event reply = rpc::decode_event(b.recv_bytes(5s).span());
  CHECK(reply.name == "OK");
  CHECK(reply.header.response_to == id);
  CHECK(reply.args().via.array.ptr[0].as<int>() == 5);
}

TEST_CASE("link: a handler busy for three heartbeat periods causes no lost remote", "[rpc][link][heartbeat]") {
  local_pair p({.heartbeat = 100ms});
  rpc::client c(p.client_end, {.heartbeat = 100ms});
  auto pending = c.async_call("hold", 2);
  auto start = std::chrono::steady_clock::now();
  eventually([&] { return std::chrono::steady_clock::now() - start > 350ms; });  // three periods and more
  CHECK(pending.wait_for(0s) == std::future_status::timeout);
  p.release.set_value();
  CHECK(pending.get().as<int>() == 20);
}

TEST_CASE("link: a server takes new links while running, one per worker", "[rpc][link]") {
  rpc::server s;
  s.bind("add", [](int a, int b) { return a + b; });
  s.listen(std::string_view("tcp://127.0.0.1:0"));
  s.start();
  std::vector<rpc::link> clients;
  for (int i = 0; i < 4; ++i) {
    auto [a, b] = duct::pair();
    CHECK_THAT(s.listen(rpc::link(std::move(a))), Catch::StartsWith("duct:"));
    clients.emplace_back(std::move(b));
  }
  for (int i = 0; i < 4; ++i) CHECK(rpc::client(clients[i]).call("add", i, i).as<int>() == 2 * i);
  rpc::server other;
  auto [a, b] = duct::pair();
  rpc::link shared(std::move(a));
  s.listen(shared);
  CHECK_THROWS_WITH(other.listen(shared), Catch::Contains("another server"));
}
