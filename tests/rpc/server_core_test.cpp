// The server's core without sockets: a fake pipe (server_pipe.hpp) stands where a duct would, the test feeds it
// events and chooses the time, and asserts on what the core sends back. The server is begun without its I/O role,
// so no thread of its own touches the ROUTER or ticks: requests captured from zerorpc-python get the replies the
// captured server gave; heartbeats are sent and their loss stops the handler; a call past its budget is deferred
// and cancelled by token; bad events are dropped and counted; a broken pipe or a closed one loses nothing else.
#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <string>
#include <vector>

#include <duct/msgpack.hpp>
#include <rpc/event.hpp>
#include <rpc/server.hpp>

#include "access.hpp"
#include "call_table.hpp"
#include "fixtures.hpp"
#include "server_impl.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using steady = rpc::detail::clock;

namespace {

// A pipe whose sends are kept, decoded, for the test to read.
struct fake_pipe final : rpc::detail::server_pipe {
  const std::string id = std::string("\0test:", 6) + "pipe";
  std::mutex mu;
  std::vector<rpc::event> sent;
  bool broken = false;
  std::atomic<int> lends{0}, reclaims{0};

  const std::string& identity() const noexcept override { return id; }
  std::string peer() const override { return "test:fake"; }
  void send(std::span<const std::byte> body) override {
    std::lock_guard lock(mu);
    if (broken) throw std::runtime_error("fake pipe: broken");
    sent.push_back(rpc::decode_event(body));
  }
  void lend() noexcept override { ++lends; }
  void reclaim() noexcept override { ++reclaims; }
  /// What was sent since the last take().
  std::vector<rpc::event> take() {
    std::lock_guard lock(mu);
    return std::exchange(sent, {});
  }
  std::size_t count() {
    std::lock_guard lock(mu);
    return sent.size();
  }
};

// A server whose core the test drives: its methods, begun without the I/O role, serving one fake pipe.
struct driven {
  rpc::server server;
  rpc::server::impl& core;
  fake_pipe pipe;
  rpc::id_generator ids;
  std::atomic<int> started{0}, stopped{0};
  std::promise<void> slow_may_return;
  std::shared_future<void> slow_returns = slow_may_return.get_future().share();

  explicit driven(rpc::server_options o = {}) : server(std::move(o)), core(rpc::detail::access::core(server)) {
    server.bind("add", [](int a, int b) { return a + b; });
    server.bind("echo", [](msgpack::object v) { return v; });
    server.bind("boom", [](std::string why) -> int { throw std::invalid_argument(why); });
    server.bind("count", [](rpc::sink& out, int n) {
      for (int i = 0; i < n; ++i) out.write(i);
    });
    server.bind("slow", [this](int seconds) {
      slow_returns.wait();
      return "slept " + std::to_string(seconds);
    });
    server.bind("sum", [](rpc::source& in, int base) {
      long total = base;
      while (auto item = in.next()) total += item->as<int>();
      return total;
    });
    server.bind("until_stopped", [this](std::stop_token stop) {
      ++started;
      test::sleep_until_stopped(stop);
      ++stopped;
      return 0;
    });
    core.begin(false);
    std::lock_guard lock(core.mu);
    core.add_pipe(pipe);
  }
  ~driven() {
    let_slow_return();
    server.stop();  // before `pipe` goes
  }
  void let_slow_return() {
    if (slow_returns.wait_for(0s) != std::future_status::ready) slow_may_return.set_value();
  }

  /// As the pipe's reader hands an event over: with `keep`, a call that may start at once runs here, now.
  void feed(const duct::buffer& body, bool keep = true) {
    core.on_pipe_event(pipe, std::make_shared<rpc::event>(rpc::decode_event(body.span())), keep);
    core.run_pipe_calls(pipe);
  }
  /// An event arriving at `now`, its call (if any) queued for the server's threads.
  void feed_at(const duct::buffer& body, steady::time_point now) {
    rpc::server::impl::locked g(core);
    core.on_event(pipe.identity(), std::make_shared<rpc::event>(rpc::decode_event(body.span())), now);
    g.flush();
  }
  void tick(steady::time_point now) {
    rpc::server::impl::locked g(core);
    core.tick(now);
    g.flush();
  }
  /// A request from a client that takes tokens (ours) or not (a plain zerorpc one).
  template <class... Args>
  duct::buffer request(rpc::message_id& id, std::string_view method, bool tokens, const Args&... args) {
    rpc::event_header h{ids.next()};
    h.accepts_deferred = tokens;
    id = h.id;
    return rpc::encode_event(h, method, std::make_tuple(args...));
  }
  /// Starts until_stopped on the server's threads, arriving now, from a client that takes tokens or not; returns
  /// when it runs. Returns: when it arrived.
  steady::time_point start_held(rpc::message_id& call, bool tokens) {
    const auto t0 = steady::now();
    feed_at(request(call, "until_stopped", tokens), t0);
    test::eventually([&] { return started.load() == 1; });
    return t0;
  }
  duct::buffer on_channel(const rpc::message_id& channel, std::string_view name) {
    rpc::event_header h{ids.next(), channel};
    return rpc::encode_event(h, name, std::make_tuple());
  }
};

std::vector<std::string> names(const std::vector<rpc::event>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.name);
  return out;
}

}  // namespace

TEST_CASE("server core: zerorpc-python's captured conversations, replayed in their own time, get the same answers",
          "[rpc][server_core][vectors]") {
  std::map<std::string, std::vector<nlohmann::json>> cases;
  for (const auto& line : test::load_vectors("zerorpc-python.jsonl")) cases[line["case"]].push_back(line);
  REQUIRE(cases.size() >= 19);
  int compared = 0;
  for (auto& [name, lines] : cases) {
    CAPTURE(name);
    driven d;
    // Each event the captured client sent arrives when it did; when the captured server answered, the core is
    // ticked to that instant and must have answered the same (handlers run on the server's threads, so the test
    // waits for them; "slow" waits until the test lets it return, after its heartbeat).
    const auto t0 = steady::now();
    std::vector<rpc::event> expected, got;
    for (const auto& line : lines) {
      const auto at = t0 + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(line["t"].get<double>()));
      const duct::buffer body = test::unhex(line["frames_hex"].back().get<std::string>());
      if (line["dir"] == "c2s") {
        d.feed_at(body, at);
        continue;
      }
      expected.push_back(rpc::decode_event(body.span()));
      if (expected.back().name == "OK") d.let_slow_return();
      d.tick(at);
      test::eventually([&] { return got.size() + d.pipe.count() >= expected.size(); });
      for (auto& e : d.pipe.take()) got.push_back(std::move(e));
    }
    REQUIRE(names(got) == names(expected));
    for (std::size_t i = 0; i < got.size(); ++i) {
      CHECK(got[i].header.response_to == expected[i].header.response_to);  // the captured client's channel
      if (name.starts_with("zerorpc_") || got[i].name == "ERR") {
        // Built-ins describe this server, and ERR names C++ exceptions: the same shape, other words.
        CHECK(got[i].args().type == expected[i].args().type);
        CHECK(got[i].args().via.array.size == expected[i].args().via.array.size);
      } else {
        CHECK(got[i].args() == expected[i].args());
      }
    }
    ++compared;
  }
  CHECK(compared == static_cast<int>(cases.size()));
}

TEST_CASE("server core: heartbeats go out each period, and a client silent for two stops its handler",
          "[rpc][server_core][heartbeat]") {
  driven d({.heartbeat = 100ms});
  rpc::message_id call;
  const auto t0 = d.start_held(call, false);
  d.tick(t0 + 150ms);
  auto sent = d.pipe.take();
  REQUIRE(names(sent) == std::vector<std::string>{"_zpc_hb"});
  CHECK(sent[0].header.response_to == call);
  d.feed_at(d.on_channel(call, "_zpc_hb"), t0 + 190ms);  // the client is alive
  d.tick(t0 + 350ms);
  CHECK(names(d.pipe.take()) == std::vector<std::string>{"_zpc_hb"});
  CHECK(d.stopped.load() == 0);
  CHECK(d.server.open_channels() == 1);
  d.tick(t0 + 391ms);  // two periods and more since it was last heard: lost
  test::eventually([&] { return d.stopped.load() == 1; });
  CHECK(d.server.open_channels() == 0);
  CHECK(d.pipe.take().empty());  // nobody to answer: the handler's return goes nowhere
}

TEST_CASE("server core: a call past its budget is deferred with a token, which cancels it",
          "[rpc][server_core][deferred]") {
  driven d({.defer_after = 50ms});
  rpc::message_id call;
  const auto t0 = d.start_held(call, true);
  d.tick(t0 + 40ms);
  CHECK(d.pipe.take().empty());
  d.tick(t0 + 60ms);
  auto sent = d.pipe.take();
  REQUIRE(names(sent) == std::vector<std::string>{"DEFERRED"});
  CHECK(sent[0].header.response_to == call);
  const std::string token = sent[0].args().via.array.ptr[0].as<std::string>();
  rpc::message_id cancel;
  d.feed(d.request(cancel, "_ductrpc_cancel", true, token));
  sent = d.pipe.take();
  REQUIRE(names(sent) == std::vector<std::string>{"OK"});
  CHECK(sent[0].args().via.array.ptr[0].as<bool>());
  test::eventually([&] { return d.stopped.load() == 1; });
}

TEST_CASE("server core: bad events are dropped and counted, bad calls answered, and nothing else is disturbed",
          "[rpc][server_core]") {
  driven d;
  const rpc::message_id stray(std::string(32, 'x'), true);
  d.feed(d.on_channel(stray, "_zpc_hb"));  // a channel never opened
  CHECK(d.pipe.take().empty());
  CHECK(d.server.dropped_events() == 1);
  rpc::message_id call;
  d.feed(d.request(call, "add", false, std::string("two"), 3));
  auto sent = d.pipe.take();
  REQUIRE(names(sent) == std::vector<std::string>{"ERR"});
  CHECK(sent[0].args().via.array.ptr[0].as<std::string>() == "TypeError");
  d.feed(d.request(call, "add", false, 2, 3));
  sent = d.pipe.take();
  REQUIRE(names(sent) == std::vector<std::string>{"OK"});
  CHECK(sent[0].args().via.array.ptr[0].as<int>() == 5);
  // Both calls ran where they arrived, each lending the pipe's role (the args are converted by the handler's
  // wrapper, whose TypeError is the first call's answer); the stray event ran nothing.
  CHECK(d.pipe.lends == 2);
  CHECK(d.pipe.reclaims == 2);
}

TEST_CASE("server core: a pipe that breaks loses its replies, counted, and one that closes stops its handlers",
          "[rpc][server_core]") {
  driven d;
  d.pipe.broken = true;
  rpc::message_id call;
  d.feed(d.request(call, "add", false, 2, 3));
  CHECK(d.server.dropped_events() == 1);
  CHECK(d.server.open_channels() == 0);
  d.pipe.broken = false;
  d.feed(d.request(call, "until_stopped", false), false);
  test::eventually([&] { return d.started.load() == 1; });
  d.core.on_pipe_closed(d.pipe);
  test::eventually([&] { return d.stopped.load() == 1; });
  CHECK(d.server.open_channels() == 0);
  CHECK(d.pipe.take().empty());
}

TEST_CASE("server core: a chunked call from the client's call table: its input moves as the core grants credit",
          "[rpc][server_core][chunked]") {
  // The two sans-I/O cores face each other: the client's call table makes the request and the chunks, the server's
  // core answers, and the test carries events between them. The server grants 2 items at a time: 20 items pass only
  // if its grants reach the writer as the handler reads.
  driven d({.input_window = 2});
  std::mutex calls_mu;  // the table is not thread-safe: the writer's thread and this one share it
  rpc::detail::call_table calls;
  rpc::detail::call_spec spec;
  spec.endpoint = "fake";
  spec.method = "sum";
  rpc::detail::stream_spec kind;
  kind.chunked = true;
  duct::pack_buffer base;
  msgpack::pack(base, std::make_tuple(100));
  auto r = calls.open_stream("sum", std::as_bytes(std::span(base.data(), base.size())), spec, kind, steady::now());
  REQUIRE(r.halves.in);
  r.halves.in->attach([&](std::string_view name, std::span<const std::byte> args) {
    std::optional<duct::buffer> body;
    {
      std::lock_guard lock(calls_mu);
      body = calls.chunk(r.id, name, args);
    }
    if (body) d.feed(*body, false);
    return body.has_value();
  });
  d.feed(r.body, false);
  std::thread writer([&] {
    for (int i = 1; i <= 20; ++i) {
      duct::pack_buffer item;
      msgpack::pack(item, i);
      r.halves.in->write(std::as_bytes(std::span(item.data(), item.size())));
    }
    r.halves.in->end();
  });
  std::size_t grants = 0;
  bool answered = false;
  test::eventually([&] {
    rpc::detail::effects fx;
    for (auto& ev : d.pipe.take()) {
      grants += ev.name == "_zpc_more";
      answered = answered || ev.name == "OK";
      std::lock_guard lock(calls_mu);
      CHECK(calls.on_event(ev, steady::now(), fx));
    }
    CHECK(fx.settles.empty());  // a chunked call's reply goes to its reply stream, not to a future
    return answered;
  });
  writer.join();
  const std::optional<duct::value> result = r.halves.out->next(std::nullopt);
  REQUIRE(result);
  CHECK(result->as<long>() == 100 + 210);
  CHECK(grants >= 10);  // 20 items, 2 at a time
}
