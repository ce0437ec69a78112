// Progressive results (rpc::progress on the server, client::call_with_progress): reports in order before the result,
// only to a caller that asked, never blocking the handler, over ZeroMQ and over a duct.
#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <duct/connection.hpp>
#include <rpc/client.hpp>
#include <rpc/link.hpp>
#include <rpc/server.hpp>

#include "fixtures.hpp"

using namespace std::chrono_literals;

namespace {

struct reporting : test::served {
  std::atomic<int> wanted{-1};       // whether work() saw a caller that wants progress
  std::atomic<int> acked{0};         // the last report lockstep()'s caller has seen
  std::atomic<int> finished{0};      // work() calls that returned
  std::atomic<int> stopped{0};       // until_stopped() calls whose stop token was stopped
  rpc::server server;

  explicit reporting(bool over_duct, rpc::client_options co = {}) : server({.threads = 2}) {
    server.bind("work", [this](rpc::progress& p, int steps) {
      wanted = p.wanted() ? 1 : 0;
      for (int i = 1; i <= steps; ++i) p.report(i);
      ++finished;
      return std::string("done");
    });
    server.bind("lockstep", [this](rpc::progress& p, int steps) {
      for (int i = 1; i <= steps; ++i) {
        p.report(i);
        // Until the caller has seen it (bounded; no Catch assertion off the test's thread): nothing is replaced.
        auto until = std::chrono::steady_clock::now() + 10s;
        while (acked.load() < i && std::chrono::steady_clock::now() < until) std::this_thread::yield();
      }
      return std::string("done");
    });
    server.bind("fail_midway", [](rpc::progress& p) -> int {
      p.report(std::string("half"));
      throw rpc::remote_error("ValueError", "gave up");
    });
    server.bind("until_stopped", [this](rpc::progress& p) {
      for (int i = 0; !p.stop_token().stop_requested(); ++i) p.report(i);
      ++stopped;
      return 0;
    });
    server.bind("plain", [](int x) { return x * 2; });
    serve(server, over_duct, co);
  }
  ~reporting() {
    client.reset();
    server.stop();
  }
};

}  // namespace

TEST_CASE("progress: reports arrive in order before the result, only when asked for", "[rpc][progress]") {
  bool over_duct = GENERATE(false, true);
  CAPTURE(over_duct);
  reporting r(over_duct);
  std::vector<int> seen;
  duct::value result = r.client->call_with_progress("lockstep", [&](const duct::value& v) {
    seen.push_back(v.as<int>());
    r.acked = v.as<int>();
  }, 10);
  CHECK(result.as<std::string>() == "done");
  CHECK(seen == std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  CHECK(r.client->call_with_progress("work", [](const duct::value&) {}, 10).as<std::string>() == "done");
  CHECK(r.wanted.load() == 1);
  // A plain call: no progress is sent, and the handler knows not to compute it.
  CHECK(r.client->call("work", 10).as<std::string>() == "done");
  CHECK(r.wanted.load() == 0);
  // A method without progress just answers.
  int reports = 0;
  CHECK(r.client->call_with_progress("plain", [&](const duct::value&) { ++reports; }, 21).as<int>() == 42);
  CHECK(reports == 0);
  test::eventually([&] { return r.server.open_channels() == 0; });
}

TEST_CASE("progress: a slow caller never blocks the handler - newer reports replace waiting ones", "[rpc][progress]") {
  bool over_duct = GENERATE(false, true);
  CAPTURE(over_duct);
  reporting r(over_duct, {.stream_window = 2});
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::vector<int> seen;
  auto call = std::async(std::launch::async, [&] {
    return r.client->call_with_progress("work", [&](const duct::value& v) {
      seen.push_back(v.as<int>());
      released.wait();  // the caller is stuck in its first report
    }, 1000).as<std::string>();
  });
  // The handler reports 1000 times and returns while its caller is stuck: reporting never waited for credit.
  test::eventually([&] { return r.finished.load() == 1; });
  release.set_value();
  CHECK(call.get() == "done");
  REQUIRE_FALSE(seen.empty());
  CHECK(seen.front() == 1);
  CHECK(seen.size() < 1000);  // most were replaced by newer ones, or superseded by the result
  for (std::size_t i = 1; i < seen.size(); ++i) CHECK(seen[i] > seen[i - 1]);
}

TEST_CASE("progress: errors end the call after its reports - a caller's exception stops the handler", "[rpc][progress]") {
  bool over_duct = GENERATE(false, true);
  CAPTURE(over_duct);
  reporting r(over_duct);
  std::vector<std::string> seen;
  try {
    r.client->call_with_progress("fail_midway", [&](const duct::value& v) { seen.push_back(v.as<std::string>()); });
    FAIL("no exception");
  } catch (const rpc::remote_error& e) {
    CHECK(e.name() == "ValueError");
    CHECK(e.message() == "gave up");
  }
  CHECK(seen == std::vector<std::string>{"half"});
  struct enough {};
  CHECK_THROWS_AS(r.client->call_with_progress("until_stopped", [](const duct::value& v) {
    if (v.as<int>() >= 3) throw enough{};  // reports may be replaced by newer ones: not necessarily 3 itself
  }), enough);
  test::eventually([&] { return r.stopped.load() == 1; });
  test::eventually([&] { return r.server.open_channels() == 0; });
}

TEST_CASE("progress: on the wire, PROGRESS events go only to a request with the header key", "[rpc][progress][wire]") {
  reporting r(false);
  zmq::context_t ctx;
  std::string endpoint = r.client->endpoint();
  zmq::socket_t dealer = test::plain_dealer(ctx, endpoint);
  rpc::id_generator ids;
  test::send_body(dealer, rpc::encode_event({ids.next()}, "work", std::make_tuple(3)).span());
  rpc::event plain = test::recv_event(dealer);
  CHECK(plain.name == "OK");  // a plain zerorpc client gets its result and nothing else
  rpc::event_header asking{ids.next()};
  asking.wants_progress = true;
  test::send_body(dealer, rpc::encode_event(asking, "work", std::make_tuple(3)).span());
  rpc::event first = test::recv_event(dealer);
  CHECK(first.name == "PROGRESS");
  CHECK(first.args().as<int>() == 1);  // the value itself, as a STREAM item is
  CHECK(first.header.response_to == asking.id);
  test::send_body(dealer, rpc::encode_event({ids.next(), asking.id}, "_zpc_more", std::make_tuple(10)).span());
  rpc::event last;
  do {
    last = test::recv_event(dealer);
  } while (last.name == "PROGRESS");
  CHECK(last.name == "OK");
  CHECK(last.args().via.array.ptr[0].as<std::string>() == "done");
}
