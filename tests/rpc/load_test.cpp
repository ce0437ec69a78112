// Load: 64 clients at once, each on its own thread and connection, mixing fast calls, deferred calls (submit and
// wait) and streams against one server with its default bounds. Every reply is checked against the request that
// asked for it, so a lost, duplicated or misrouted reply fails the test; it prints the throughput and the p99 of
// the fast calls (README, "Security").
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include <rpc/client.hpp>
#include <rpc/server.hpp>

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

TEST_CASE("load: 64 clients mixing fast, deferred and streamed calls get exactly their own replies",
          "[rpc][load]") {
  constexpr int clients = 64, rounds = 30;
  rpc::server server;
  server.bind("echo", [](int who, int n) { return std::vector<int>{who, n}; });
  server.bind("later", [](int who, int n) {
    std::this_thread::sleep_for(2ms);
    return who * 100000 + n;
  }, {.defer = rpc::defer_policy::always});
  server.bind("count", [](rpc::sink& out, int who, int n) {
    for (int i = 0; i < n; ++i) out.write(who * 1000 + i);
  });
  const std::string endpoint = server.listen("tcp://127.0.0.1:0");
  server.start();

  std::atomic<int> wrong{0}, failed{0}, calls{0};
  std::vector<std::vector<double>> latencies(clients);
  const auto start = steady::now();
  std::vector<std::thread> threads;
  for (int who = 0; who < clients; ++who) {
    threads.emplace_back([&, who] {
      try {
        rpc::client c(endpoint);
        for (int n = 0; n < rounds; ++n) {
          auto t0 = steady::now();
          auto got = c.async_call_for(30s, "echo", who, n).get().as<std::vector<int>>();
          latencies[static_cast<std::size_t>(who)].push_back(std::chrono::duration<double, std::milli>(steady::now() - t0).count());
          if (got != std::vector<int>{who, n}) ++wrong;
          if (n % 5 == 0 && c.async_call_for(30s, "later", who, n).get().as<int>() != who * 100000 + n) ++wrong;
          if (n % 10 == 0) {
            rpc::source items = c.stream("count", who, 50);
            int i = 0;
            while (auto item = items.next()) {
              if (item->as<int>() != who * 1000 + i) ++wrong;
              ++i;
            }
            if (i != 50) ++wrong;
          }
          ++calls;
        }
      } catch (const std::exception& e) {
        std::fprintf(stderr, "client %d: %s\n", who, e.what());
        ++failed;
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(steady::now() - start).count();
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  REQUIRE(!all.empty());
  const double p99 = all[all.size() * 99 / 100];
  std::printf("load: %d clients, %d rounds (fast + deferred + streams): %.0f rounds/s, fast-call p99 %.2f ms\n",
              clients, calls.load(), calls.load() / seconds, p99);
  CHECK(failed.load() == 0);
  CHECK(wrong.load() == 0);
  CHECK(calls.load() == clients * rounds);
  CHECK(server.open_channels() == 0);
}
