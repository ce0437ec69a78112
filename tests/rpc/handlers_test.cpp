// Where handlers run and what they may hold up: a handler that blocks, every handler thread blocked at once, and a
// handler that spins must not stop the server from answering other clients, pings and heartbeats. These hold for any
// way of running handlers the server adopts (a pool behind the receiving thread, or handlers run where their call
// arrives with the socket handed over when one runs long): they are the guarantees. The last cases test the
// mechanism itself: where a call runs, and what a handoff does.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <rpc/client.hpp>
#include <rpc/link.hpp>
#include <rpc/server.hpp>

#include "fixtures.hpp"

using namespace std::chrono_literals;

namespace {

constexpr auto period = 100ms;  // heartbeats every 100 ms: a call is lost after two silent periods

// Each thread of this process (by id, "id name") and how often it has slept and woken: the voluntary context
// switches in /proc/self/task/*/status.
std::map<std::string, long> wake_ups() {
  std::map<std::string, long> out;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    std::ifstream status(task.path() / "status");
    for (std::string line; std::getline(status, line);) {
      std::istringstream fields(line);
      std::string key;
      long n = 0;
      if (fields >> key >> n && key == "voluntary_ctxt_switches:")
        out[task.path().filename().string() + " " + name] = n;
    }
  }
  return out;
}

// add(a, b); nap(ms), asleep; spin(ms), busy the whole time; and held_service's until_stopped(). The long ones stay
// open calls, heartbeating, however long they run (defer_policy::immediate): a deferred call would turn into a job,
// which outlives its client.
struct hogged {
  rpc::server server;
  std::string endpoint;
  std::atomic<int> started{0};

  explicit hogged(rpc::server_options o) : server(std::move(o)) {
    server.bind("add", [](int a, int b) { return a + b; });
    server.bind("nap", [](int ms) {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      return ms;
    }, {.defer = rpc::defer_policy::immediate});
    server.bind("spin", [](int ms) {
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
      while (std::chrono::steady_clock::now() < until) {
      }
      return ms;
    }, {.defer = rpc::defer_policy::immediate});
    server.bind("until_stopped", [this](std::stop_token stop) {
      ++started;
      test::sleep_until_stopped(stop);
      return 0;
    }, {.defer = rpc::defer_policy::immediate});
    endpoint = server.listen("tcp://127.0.0.1:0");
    server.start();
  }
  // An abort stops the handlers still running (until_stopped() among them), so that a failed case ends.
  ~hogged() {
    server.shutdown(rpc::shutdown_mode::abort, 0ms);
    server.stop();
  }
};

}  // namespace

TEST_CASE("handlers: one that blocks delays neither another client's calls nor heartbeats", "[rpc][handlers]") {
  hogged s({.heartbeat = period});  // otherwise the default configuration
  std::optional<rpc::client> blocker(std::in_place, s.endpoint, rpc::client_options{.heartbeat = period});
  rpc::future blocked = blocker->async_call("until_stopped");
  test::eventually([&] { return s.started.load() == 1; });
  rpc::client other(s.endpoint, {.heartbeat = period});
  for (int i = 0; i < 100; ++i) REQUIRE(other.call_for(5s, "add", i, 1).as<int>() == i + 1);
  // Five periods on, the blocked call is still open: its heartbeats kept coming while its handler held a thread.
  CHECK(blocked.wait_for(5 * period) == std::future_status::timeout);
  blocker.reset();  // its client goes: the handler is stopped
  test::eventually([&] { return s.server.open_channels() == 0; });
}

TEST_CASE("handlers: with every handler thread blocked the server still answers pings and keeps calls alive",
          "[rpc][handlers]") {
  hogged s({.threads = 2, .heartbeat = period, .per_client = {.running = 2}});
  std::optional<rpc::client> blocker(std::in_place, s.endpoint, rpc::client_options{.heartbeat = period});
  rpc::future first = blocker->async_call("until_stopped"), second = blocker->async_call("until_stopped");
  test::eventually([&] { return s.started.load() == 2; });
  rpc::client other(s.endpoint, {.heartbeat = period});
  CHECK(other.call_for(5s, "_zerorpc_ping").get().type == msgpack::type::ARRAY);
  // A call that needs a handler thread waits for one, alive (heartbeats both ways), and is not lost meanwhile.
  rpc::future queued = other.async_call("add", 2, 3);
  CHECK(queued.wait_for(5 * period) == std::future_status::timeout);
  CHECK(first.wait_for(0ms) == std::future_status::timeout);
  CHECK(second.wait_for(0ms) == std::future_status::timeout);
  blocker.reset();  // the blocked calls' client goes: their handlers are stopped and a thread frees
  REQUIRE(queued.wait_for(10s) == std::future_status::ready);
  CHECK(queued.get().as<int>() == 5);
}

TEST_CASE("handlers: a handler spinning in long calls back to back makes no call miss a heartbeat",
          "[rpc][handlers][hog]") {
  hogged s({.heartbeat = period});
  // The hog: five calls of three periods each, back to back, each busy on its CPU the whole time. Each would fail
  // with lost remote if its own heartbeats stopped for two periods.
  auto hog = std::async(std::launch::async, [&] {
    rpc::client c(s.endpoint, {.heartbeat = period});
    int done = 0;
    for (int i = 0; i < 5; ++i) done += c.call_for(10s, "spin", 300).as<int>() == 300;
    return done;
  });
  // Meanwhile another client's ten-period call, asleep on the server, must see its heartbeats too.
  rpc::client other(s.endpoint, {.heartbeat = period});
  CHECK(other.call_for(10s, "nap", 1000).as<int>() == 1000);
  CHECK(other.call_for(5s, "add", 1, 2).as<int>() == 3);
  CHECK(hog.get() == 5);
}

namespace {

// The thread a handler ran on, as a number: `pool` methods (the default) and a run_on::receiver one.
struct where_served {
  rpc::server server;
  std::string endpoint;

  // Over ZeroMQ, or over the duct `over`.
  explicit where_served(rpc::server_options o, const rpc::link* over = nullptr) : server(std::move(o)) {
    auto here = [] { return static_cast<std::uint64_t>(std::hash<std::thread::id>()(std::this_thread::get_id())); };
    server.bind("here", here);
    server.bind("receiver_here", here, {.where = rpc::run_on::receiver});
    endpoint = over ? server.listen(*over) : server.listen("tcp://127.0.0.1:0");
    server.start();
  }
};

}  // namespace

TEST_CASE("handlers: a call runs on the thread that received it, with no hand-off", "[rpc][handlers]") {
  const bool over_duct = GENERATE(false, true);
  CAPTURE(over_duct);
  auto [server_end, client_end] = duct::pair();
  rpc::link server_link(std::move(server_end)), client_link(std::move(client_end));
  where_served s({}, over_duct ? &server_link : nullptr);  // the default configuration
  auto c = over_duct ? rpc::client(client_link) : rpc::client(s.endpoint);
  // A run_on::receiver handler runs where its call was received (the I/O role's holder, or the duct's reader) by
  // definition. A default one must run there too unless the receiving thread changed in between: that is, unless a
  // handoff happened (a preempted handler on a loaded machine may pass its budget), which the loop retries.
  bool compared = false;
  for (int attempt = 0; attempt < 50 && !compared; ++attempt) {
    const std::uint64_t before = s.server.handoffs();
    const auto pooled = c.call_for(5s, "here").as<std::uint64_t>();
    const auto received = c.call_for(5s, "receiver_here").as<std::uint64_t>();
    if (s.server.handoffs() != before) continue;
    CHECK(pooled == received);
    compared = true;
  }
  REQUIRE(compared);
}

TEST_CASE("handlers: handoff_after 0 runs every handler on another thread than the receiving one",
          "[rpc][handlers]") {
  const bool over_duct = GENERATE(false, true);
  CAPTURE(over_duct);
  auto [server_end, client_end] = duct::pair();
  rpc::link server_link(std::move(server_end)), client_link(std::move(client_end));
  where_served s({.handoff_after = 0ms}, over_duct ? &server_link : nullptr);
  auto c = over_duct ? rpc::client(client_link) : rpc::client(s.endpoint);
  for (int i = 0; i < 20; ++i)
    CHECK(c.call_for(5s, "here").as<std::uint64_t>() != c.call_for(5s, "receiver_here").as<std::uint64_t>());
  CHECK(s.server.handoffs() == 0);
}

TEST_CASE("handlers: one that runs past its budget hands receiving on, and the calls behind it still run",
          "[rpc][handlers]") {
  hogged s({.heartbeat = period});
  rpc::client c(s.endpoint, {.heartbeat = period});
  // Sent back to back, the second likely arrives in the same pass as the first, kept to run after it on the same
  // thread: when the first blocks, it must go to another thread, not wait behind it.
  rpc::future blocked = c.async_call("until_stopped");
  std::vector<rpc::future> behind;
  for (int i = 0; i < 2; ++i) behind.push_back(c.async_call("add", i, 1));
  for (int i = 0; i < 2; ++i) {
    REQUIRE(behind[i].wait_for(5s) == std::future_status::ready);
    CHECK(behind[i].get().as<int>() == i + 1);
  }
  test::eventually([&] { return s.server.handoffs() >= 1; });
  CHECK(blocked.wait_for(0ms) == std::future_status::timeout);
}

TEST_CASE("handlers: calls that end about when their budget does are each answered once, handed on or not",
          "[rpc][handlers]") {
  // A call run where it arrived is tracked only if it outlasts the budget: then the holder finishing it and the
  // monitor handing the role on race to decide how its reply leaves. Naps of 0 to 2.5 ms around the 1 ms budget
  // make both outcomes, and the race between them, frequent.
  rpc::server server({.heartbeat = period});  // otherwise the default configuration
  server.bind("nap_us", [](int us) {
    std::this_thread::sleep_for(std::chrono::microseconds(us));
    return us;
  });
  const std::string endpoint = server.listen("tcp://127.0.0.1:0");
  server.start();
  rpc::client c(endpoint, {.heartbeat = period});
  std::vector<rpc::future> window;
  std::vector<int> sent;
  auto check_oldest = [&] {
    REQUIRE(window.front().wait_for(10s) == std::future_status::ready);
    CHECK(window.front().get().as<int>() == sent.front());
    window.erase(window.begin());
    sent.erase(sent.begin());
  };
  for (int i = 0; i < 600; ++i) {
    if (window.size() == 16) check_oldest();
    sent.push_back(i * 37 % 2500);
    window.push_back(c.async_call("nap_us", sent.back()));
  }
  while (!window.empty()) check_oldest();
  CHECK(server.handoffs() > 0);
  test::eventually([&] { return server.open_channels() == 0; });
  // And nothing of a finished call is left behind: a channel still open would be heartbeated, then closed as lost
  // two periods on, counting a call closed twice.
  std::this_thread::sleep_for(3 * period);
  CHECK(server.open_channels() == 0);
  CHECK(server.dropped_events() == 0);
  server.stop();
}

TEST_CASE("handlers: a raw handler sees its caller's address where its call arrived, unless its shape says it "
          "does not read it", "[rpc][handlers]") {
  rpc::server server;  // the default configuration: these calls run on the thread that received them
  auto peer_of = [](const msgpack::object&, rpc::detail::call_context& ctx) {
    duct::pack_buffer out;
    msgpack::pack(out, ctx.peer);
    return out.take();
  };
  server.bind_raw("who", peer_of, {}, {});
  server.bind_raw("who_not_read", peer_of, {}, {.peer = false});
  const std::string endpoint = server.listen("tcp://127.0.0.1:0");
  server.start();
  rpc::client c(endpoint);
  for (int i = 0; i < 20; ++i) {
    CHECK(c.call_for(5s, "who").as<std::string>() == "127.0.0.1");
    CHECK(c.call_for(5s, "who_not_read").as<std::string>().empty());
  }
  server.stop();
}

TEST_CASE("handlers: a server left idle after a burst of calls sleeps until the next one comes", "[rpc][handlers]") {
  // While calls come one at a time, the receiving thread waits inside ZeroMQ's own receive for at most 10 ms at a
  // time; once such a wait finds nothing, it sleeps on the socket until something comes. No thread of the server
  // (nor of the client) may wake a few times per second for nothing.
  rpc::server server;  // the default configuration
  server.bind("add", [](int a, int b) { return a + b; });
  const std::string endpoint = server.listen("ipc://");  // a private path
  server.start();
  rpc::client c(endpoint);
  for (int i = 0; i < 300; ++i) REQUIRE(c.call_for(5s, "add", i, 1).as<int>() == i + 1);
  // The handler monitor ticks for 100 of its periods (1 ms each) after the last call before it sleeps, later on a
  // loaded machine: the server must come to rest within a few windows of 300 ms, and then stay there.
  std::string busiest;
  long most = 0;
  for (int window = 0; window < 10; ++window) {
    const auto before = wake_ups();
    std::this_thread::sleep_for(300ms);  // the window measured, not a wait for something to happen
    most = 0;
    for (const auto& [thread, n] : wake_ups()) {
      auto was = before.find(thread);
      if (was != before.end() && n - was->second > most) {  // a thread there for the whole window
        most = n - was->second;
        busiest = thread;
      }
    }
    if (most <= 6) break;
  }
  INFO("thread " << busiest << " woke " << most << " times in 300 ms with nothing to do");
  CHECK(most <= 6);
  CHECK(c.call_for(5s, "add", 1, 1).as<int>() == 2);  // and it still answers
  server.stop();
}
