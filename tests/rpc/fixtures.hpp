// Shared by the rpc suites: a server with methods a test can hold, release and cancel; waiting by looking; a plain
// ZeroMQ DEALER that speaks zerorpc without our client.
#pragma once

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <duct/connection.hpp>
#include <rpc/client.hpp>
#include <rpc/event.hpp>
#include <rpc/link.hpp>
#include <rpc/server.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

namespace test {

/// A result as JSON, to compare maps and arrays whole.
inline nlohmann::json as_json(const duct::value& v) { return nlohmann::json::parse(v.to_json()); }

/// Waits (bounded to 10 s, by looking, not by sleeping a fixed time) until `ready()` holds.
/// Blocks until `stop` is stopped, sleeping a millisecond at a time: a handler that spun would take the CPU from the
/// threads under test. (Not condition_variable_any's stop_token wait, which lost a wake-up under ASan here.)
inline void sleep_until_stopped(std::stop_token stop) {
  while (!stop.stop_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

template <class Pred>
void eventually(Pred ready) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!ready()) {
    REQUIRE(std::chrono::steady_clock::now() < until);
    // A short sleep, not a yield: on two cores a spinning test takes the CPU from the very threads it waits for.
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

/// A running server, on tcp://127.0.0.1 (port 0) or on `over` (a duct), with:
///   add(a, b)         at once
///   hold(x)           returns x * 10 once the test calls release.set_value()
///   until_stopped()   runs until its stop token is stopped (counts `started` and `stopped`)
///   fail()            throws ValueError("no good")
///   quick(x)          x + 1 on the receiving thread (run_on::receiver), ValueError if x < 0
struct held_service {
  rpc::server server;
  std::string endpoint;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> started{0};
  std::atomic<int> stopped{0};

  explicit held_service(rpc::server_options o = {}, const rpc::link* over = nullptr) : server(std::move(o)) {
    server.bind("add", [](int a, int b) { return a + b; });
    server.bind("hold", [this](int x) {
      released.wait();
      return x * 10;
    });
    server.bind("until_stopped", [this](std::stop_token stop) {
      ++started;
      sleep_until_stopped(stop);
      ++stopped;
      return 0;
    });
    server.bind("fail", []() -> int { throw rpc::remote_error("ValueError", "no good"); });
    server.bind(
        "quick",
        [](int x) {
          if (x < 0) throw rpc::remote_error("ValueError", "negative");
          return x + 1;
        },
        {.doc = "Adds one, inline.", .where = rpc::run_on::receiver});
    endpoint = over ? server.listen(*over) : server.listen("tcp://127.0.0.1:0");
    server.start();
  }
  held_service(const held_service&) = delete;
  held_service& operator=(const held_service&) = delete;
  // Releases a handler still holding, then stops the server before the members its handlers use go away, so that
  // a test failing half-way neither hangs nor leaves a handler reading freed memory.
  ~held_service() {
    if (released.wait_for(std::chrono::seconds(0)) != std::future_status::ready) release.set_value();
    server.stop();
  }
};

/// A client of a server, over a socketpair duct or over tcp://127.0.0.1 (port 0): the suites that run each case
/// over both transports derive their fixtures from it.
struct served {
  std::optional<rpc::link> server_end, client_end;
  std::string endpoint;
  std::unique_ptr<rpc::client> client;

  /// Listens with `s` (its methods bound), starts it and connects `client`.
  void serve(rpc::server& s, bool over_duct, rpc::client_options co = {}) {
    if (over_duct) {
      auto [a, b] = duct::pair();
      server_end.emplace(std::move(a));
      client_end.emplace(std::move(b));
      endpoint = s.listen(*server_end);
      s.start();
      client = std::make_unique<rpc::client>(*client_end, co);
    } else {
      endpoint = s.listen("tcp://127.0.0.1:0");
      s.start();
      client = std::make_unique<rpc::client>(endpoint, co);
    }
  }
};

/// A DEALER connected to `endpoint`, as a plain zerorpc client's socket is.
inline zmq::socket_t plain_dealer(zmq::context_t& ctx, const std::string& endpoint) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.connect(endpoint);
  return s;
}

/// Sends one event body with the empty delimiter frame before it.
inline void send_body(zmq::socket_t& s, std::span<const std::byte> body) {
  s.send(zmq::message_t(), zmq::send_flags::sndmore);
  s.send(zmq::buffer(body.data(), body.size()));
}

/// Receives one reply and decodes its body (the last frame).
inline rpc::event recv_event(zmq::socket_t& s) {
  std::vector<zmq::message_t> frames;
  REQUIRE(zmq::recv_multipart(s, std::back_inserter(frames)));
  return rpc::decode_event(std::as_bytes(std::span(static_cast<const char*>(frames.back().data()), frames.back().size())));
}

/// The methods the tests of several servers (a broker's workers, a client over a list) give each server:
///   who()          its tag
///   add(a, b)      at once
///   hold(x)        returns x once the test calls release.set_value(), or when its server stops (counts `holding`)
///   sleepy(ms)     sleeps ms, returns ms
///   count(n)       streams 0 .. n-1
///   total()        sums a chunked request
/// Its owner (which derives from it) binds them with bind_pool_methods(), and lets held calls go before it stops
/// its server: let_go().
struct pool_methods {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> holding{0};

  void bind_pool_methods(rpc::server& server, const std::string& tag) {
    using namespace std::chrono_literals;
    server.bind("who", [tag] { return tag; });
    server.bind("add", [](int a, int b) { return a + b; });
    server.bind("hold", [this](std::stop_token stop, int x) {
      ++holding;
      while (!stop.stop_requested() && released.wait_for(1ms) != std::future_status::ready) {
      }
      --holding;
      return x;
    });
    server.bind("sleepy", [](int ms) {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      return ms;
    });
    server.bind("count", [](rpc::sink& out, int n) {
      for (int i = 0; i < n; ++i) out.write(i);
    });
    server.bind("total", [](rpc::source& in) {
      std::int64_t sum = 0;
      while (auto v = in.next()) sum += v->as<std::int64_t>();
      return sum;
    });
  }
  void let_go() {
    if (released.wait_for(std::chrono::seconds(0)) != std::future_status::ready) release.set_value();
  }
};

/// Reads two streams of count(n) at once, an item of each in turn, checking that each yields 0, 1, 2, ...
/// Returns: how many items each yielded.
inline std::pair<int, int> read_both(rpc::source& s1, rpc::source& s2) {
  int n1 = 0, n2 = 0;
  for (bool more = true; more;) {
    more = false;
    if (auto v = s1.next()) {
      CHECK(v->as<int>() == n1++);
      more = true;
    }
    if (auto v = s2.next()) {
      CHECK(v->as<int>() == n2++);
      more = true;
    }
  }
  return {n1, n2};
}

}  // namespace test
