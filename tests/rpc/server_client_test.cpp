// Server and client over real ZeroMQ sockets on loopback and ipc: calls, errors, built-ins, heartbeats, bad input.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <thread>

#include <rpc/client.hpp>
#include <rpc/event.hpp>
#include <rpc/server.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "fixtures.hpp"
#include "support.hpp"

using namespace std::chrono_literals;

namespace {

struct calc {
  rpc::server server;
  std::string endpoint;

  explicit calc(rpc::server_options o = {}, std::string where = "tcp://127.0.0.1:0") : server(std::move(o)) {
    server.bind("add", [](int a, int b) { return a + b; }, "Adds two integers.", {"a", "b"});
    server.bind("echo", [](msgpack::object v) { return v; });
    server.bind("concat", [](std::string a, std::vector<std::string> rest) {
      for (auto& s : rest) a += s;
      return a;
    });
    server.bind("boom", [](std::string why) -> int { throw std::invalid_argument(why); });
    server.bind("refuse", []() -> int { throw rpc::remote_error("ValueError", "not today"); });
    server.bind("nothing", []() {});
    server.bind("spin", [](int ms) {  // burns CPU, never yields to anything
      auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
      std::uint64_t n = 0;
      while (std::chrono::steady_clock::now() < until) ++n;
      return n > 0;
    });
    server.bind("sleep", [](int ms) {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      return ms;
    });
    endpoint = server.listen(where);
    server.start();
  }
};

// A calc (heartbeats every 100 ms) in a forked child process, for the tests that kill their server: its pid and
// endpoint. Forked before this test makes a ZeroMQ context of its own.
std::pair<pid_t, std::string> fork_calc() {
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(ready[0]);
    calc c({.heartbeat = 100ms});
    const std::string ep = c.endpoint + "\n";
    if (::write(ready[1], ep.data(), ep.size()) < 0) ::_exit(1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  std::string endpoint;
  char ch;
  while (::read(ready[0], &ch, 1) == 1 && ch != '\n') endpoint += ch;
  ::close(ready[0]);
  REQUIRE_FALSE(endpoint.empty());
  return {pid, endpoint};
}

}  // namespace

TEST_CASE("a call over tcp and over ipc returns its result", "[rpc][server]") {
  test::temp_dir dir;
  for (std::string where : {std::string("tcp://127.0.0.1:0"), "ipc://" + dir.file("calc.ipc")}) {
    CAPTURE(where);
    calc c({}, where);
    CHECK(c.endpoint != "tcp://127.0.0.1:0");
    rpc::client cl(c.endpoint);
    CHECK(cl.call("add", 1, 2).as<int>() == 3);
    CHECK(cl.call("concat", std::string("a"), std::vector<std::string>{"b", "c"}).as<std::string>() == "abc");
    CHECK(cl.call("echo", std::map<std::string, double>{{"x", 2.0}}).to_json() == R"({"x": 2.0})");
    CHECK(cl.call("nothing").get().type == msgpack::type::NIL);
  }
}

TEST_CASE("many calls in flight from many threads all get their own answers", "[rpc][server][threads]") {
  calc c({.threads = 4});
  rpc::client cl(c.endpoint);
  std::vector<rpc::future> futures;
  for (int i = 0; i < 200; ++i) futures.push_back(cl.async_call("add", i, 1000));
  std::vector<std::thread> callers;
  std::atomic<int> right{0};
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) right += cl.call("add", t, i).as<int>() == t + i;
    });
  for (int i = 0; i < 200; ++i) CHECK(futures[static_cast<std::size_t>(i)].get().as<int>() == i + 1000);
  for (auto& t : callers) t.join();
  CHECK(right == 200);
  CHECK(c.server.open_channels() == 0);
}

TEST_CASE("handler errors arrive as remote errors with name and message", "[rpc][server][errors]") {
  calc c;
  rpc::client cl(c.endpoint);
  try {
    cl.call("boom", std::string("bad thing"));
    FAIL("no exception");
  } catch (const rpc::remote_error& e) {
    CHECK(e.name() == "std::invalid_argument");
    CHECK(e.message() == "bad thing");
  }
  try {
    cl.call("refuse");
    FAIL("no exception");
  } catch (const rpc::remote_error& e) {
    CHECK(e.name() == "ValueError");
    CHECK(std::string(e.what()) == "ValueError: not today");
  }
  CHECK_THROWS_AS(cl.call("no_such_method"), rpc::unknown_method_error);
  CHECK(cl.call("add", 2, 2).as<int>() == 4);  // still serving
}

TEST_CASE("wrong argument counts and types are TypeErrors, never crashes", "[rpc][server][errors]") {
  calc c;
  rpc::client cl(c.endpoint);
  CHECK_THROWS_WITH(cl.call("add", 1), Catch::Contains("TypeError") && Catch::Contains("takes 2 arguments but 1"));
  CHECK_THROWS_WITH(cl.call("add", 1, 2, 3), Catch::Contains("but 3 were given"));
  CHECK_THROWS_WITH(cl.call("add", std::string("x"), 2), Catch::Contains("argument 1 must be int, not str"));
  CHECK_THROWS_WITH(cl.call("concat", 1, 2), Catch::Contains("argument 1 must be str, not int"));
  CHECK(cl.call("add", 20, 22).as<int>() == 42);
}

TEST_CASE("the zerorpc built-ins describe the service", "[rpc][server][builtins]") {
  calc c({.name = "calc"});
  rpc::client cl(c.endpoint);
  CHECK(cl.call("_zerorpc_ping").to_json() == R"(["pong", "calc"])");
  CHECK(cl.call("_zerorpc_name").as<std::string>() == "calc");
  auto names = cl.call("_zerorpc_list").as<std::vector<std::string>>();
  CHECK(names == std::vector<std::string>{"add", "boom", "concat", "echo", "nothing", "refuse", "sleep", "spin"});
  CHECK(cl.call("_zerorpc_help", std::string("add")).as<std::string>() == "Adds two integers.");
  CHECK(cl.call("_zerorpc_help", std::string("echo")).get().type == msgpack::type::NIL);
  CHECK(cl.call("_zerorpc_args", std::string("add")).to_json() == R"([["a", "b"], null, null, null])");
  CHECK_THROWS_AS(cl.call("_zerorpc_help", std::string("nope")), rpc::unknown_method_error);
  auto inspect = nlohmann::json::parse(cl.call("_zerorpc_inspect").to_json());
  CHECK(inspect["name"] == "calc");
  CHECK(inspect["methods"]["add"]["doc"] == "Adds two integers.");
  CHECK(inspect["methods"]["add"]["args"] == nlohmann::json::parse(R"([{"name": "a"}, {"name": "b"}])"));
  CHECK(inspect["methods"]["echo"]["doc"].is_null());
  CHECK_THROWS_AS(cl.call("_zerorpc_nonsense"), rpc::unknown_method_error);
}

TEST_CASE("a handler busy for three heartbeat periods causes no lost remote", "[rpc][heartbeat]") {
  calc c({.threads = 1, .heartbeat = 100ms});
  rpc::client cl(c.endpoint, {.heartbeat = 100ms});
  CHECK(cl.call("spin", 300).as<bool>());
  // and while one handler spins, another client's call on the same one-thread pool waits, but is not lost either
  auto spinning = cl.async_call("spin", 300);
  rpc::client other(c.endpoint, {.heartbeat = 100ms});
  CHECK(other.call("add", 1, 1).as<int>() == 2);
  CHECK(spinning.get().as<bool>());
}

TEST_CASE("a killed server makes a waiting call fail with lost remote, in bounded time", "[rpc][heartbeat][process]") {
  const auto [pid, endpoint] = fork_calc();
  rpc::client cl(endpoint, {.heartbeat = 100ms});
  // Each socket's handshake is done before the kill (a server killed in the middle of one would be a refusal).
  CHECK(cl.async_call("add", 1, 1).get().as<int>() == 2);
  auto waiting = cl.async_call("sleep", 60000);  // through the client's I/O thread
  std::atomic<int> tid{0};
  auto blocking = std::async(std::launch::async, [&] {  // a blocking call(), on that thread's own socket
    (void)cl.call("add", 0, 0);
    tid = static_cast<int>(::gettid());
    return cl.call("sleep", 60000).as<int>();
  });
  CHECK(cl.call("add", 1, 2).as<int>() == 3);  // the server is up
  test::wait_until_sleeping(tid);              // and the blocking call is waiting in poll
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  auto start = std::chrono::steady_clock::now();
  REQUIRE(waiting.wait_for(5s) == std::future_status::ready);
  REQUIRE(blocking.wait_for(5s) == std::future_status::ready);
  CHECK_THROWS_AS(waiting.get(), rpc::lost_remote_error);
  CHECK_THROWS_AS(blocking.get(), rpc::lost_remote_error);
  CHECK(std::chrono::steady_clock::now() - start < 1s);  // about 2-3 periods
}

TEST_CASE("a killed server whose port then hangs up on every connection still ends calls with lost remote",
          "[rpc][heartbeat][process]") {
  // A reconnection that reaches a dying server's listener (or anything that accepts and hangs up) fails its
  // handshake with no detail. Before, the handshake watch took that for a refusal (a server requiring CURVE) and
  // failed the open calls with a connection error; once a handshake has succeeded it is the server going away.
  const auto [pid, endpoint] = fork_calc();
  const int port = std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
  // Silence is lost remote after 2 of the client's periods (1 s): time for several reconnections (every 100 ms).
  rpc::client cl(endpoint, {.heartbeat = 500ms});
  auto waiting = cl.async_call("sleep", 60000);
  std::atomic<int> tid{0};
  std::atomic<bool> shook_hands{false};
  auto blocking = std::async(std::launch::async, [&] {
    tid = static_cast<int>(::gettid());
    // An answered call first: this thread's own socket has shaken hands with the server before it dies (sleeping
    // in poll() alone does not say so, and a socket that never shook hands is rightly told the handshake failed).
    shook_hands = cl.call("add", 1, 2).as<int>() == 3;
    return cl.call("sleep", 60000).as<int>();
  });
  CHECK(cl.call("add", 1, 2).as<int>() == 3);
  test::eventually([&] { return shook_hands.load(); });
  test::wait_until_sleeping(tid);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  // The port now accepts and hangs up at once, as a listener does in the moment its process dies.
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(listener >= 0);
  const int on = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener, 16) == 0);
  std::atomic<bool> done{false};
  std::atomic<int> hung_up{0};
  std::thread rude([&] {
    while (!done) {
      pollfd p{listener, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int fd = ::accept(listener, nullptr, nullptr);
      if (fd >= 0) {
        ::close(fd);
        ++hung_up;
      }
    }
  });
  const bool waited = waiting.wait_for(10s) == std::future_status::ready &&
                      blocking.wait_for(10s) == std::future_status::ready;
  done = true;
  rude.join();
  ::close(listener);
  REQUIRE(waited);
  CHECK(hung_up.load() > 0);  // the reconnections did meet the hang-ups
  CHECK_THROWS_AS(waiting.get(), rpc::lost_remote_error);
  CHECK_THROWS_AS(blocking.get(), rpc::lost_remote_error);
}

TEST_CASE("a client that goes away has its channels freed on the server", "[rpc][heartbeat]") {
  calc c({.heartbeat = 100ms});
  {
    rpc::client cl(c.endpoint, {.heartbeat = 100ms});
    auto pending = cl.async_call("sleep", 1000);
    // The same socket as the sleep, so ZeroMQ delivers them in order: once add is answered, sleep is running.
    REQUIRE(cl.async_call("add", 1, 1).get().as<int>() == 2);
    CHECK(c.server.open_channels() == 1);
  }  // closed with the call open: it stops heartbeating
  test::eventually([&] { return c.server.open_channels() == 0; });
}

TEST_CASE("a per-call time limit fails the call without disturbing others", "[rpc][client][timeout]") {
  calc c;
  rpc::client cl(c.endpoint);
  CHECK_THROWS_WITH(cl.call_for(50ms, "sleep", 400), Catch::Contains("sleep") && Catch::Contains("50 ms"));
  CHECK(cl.call("add", 2, 3).as<int>() == 5);
  rpc::client strict(c.endpoint, {.timeout = 50ms});
  CHECK_THROWS_AS(strict.call("sleep", 400), rpc::timeout_error);
  CHECK_THROWS_AS(strict.async_call("sleep", 400).get(), rpc::timeout_error);
  CHECK(cl.async_call("add", 3, 4).get().as<int>() == 7);
}

TEST_CASE("the server answers captured zerorpc-python and node requests as they expect", "[rpc][server][vectors]") {
  calc c;
  zmq::context_t ctx;
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.connect(c.endpoint);
  int checked = 0;
  for (const std::string file : {"zerorpc-python.jsonl", "zerorpc-node.jsonl"}) {
    for (const auto& line : test::load_vectors(file)) {
      if (line["case"] != "add" || line["seq"] != 0) continue;
      CAPTURE(file, line.value("peers", ""));
      duct::buffer body = test::unhex(line["frames_hex"][1].get<std::string>());
      rpc::event request = rpc::decode_event(body.span());
      dealer.send(zmq::message_t(), zmq::send_flags::sndmore);
      dealer.send(zmq::buffer(body.data(), body.size()));
      std::vector<zmq::message_t> frames;
      REQUIRE(zmq::recv_multipart(dealer, std::back_inserter(frames)));
      REQUIRE(frames.size() == 2);
      CHECK(frames[0].size() == 0);  // the delimiter
      rpc::event reply = rpc::decode_event(std::as_bytes(std::span(static_cast<const char*>(frames[1].data()), frames[1].size())));
      CHECK(reply.name == "OK");
      REQUIRE(reply.header.response_to);
      CHECK(*reply.header.response_to == request.header.id);  // bin for Python, str for node
      CHECK(reply.header.id.binary());
      std::string args;
      duct::write_json(reply.args(), args);
      CHECK(args == "[5]");
      ++checked;
    }
  }
  CHECK(checked == 3);
}

TEST_CASE("garbage is dropped and counted while other clients are served", "[rpc][server][limits]") {
  calc c({.max_message_size = 1 << 20});
  zmq::context_t ctx;
  zmq::socket_t bad = test::plain_dealer(ctx, c.endpoint);
  auto send = [&](const std::string& hex) { test::send_body(bad, test::unhex(hex).span()); };
  send("c1");                        // not msgpack
  send("92c0c0");                    // msgpack, not an event
  send("dd7fffffff");                // claims 2^31 elements
  send("9383aa6d6573736167655f6964a178a17603ab726573706f6e73655f746fa17aa75f7a70635f686290");  // unknown channel
  bad.send(zmq::buffer(std::string("single frame, no delimiter, not msgpack")));
  rpc::client good(c.endpoint);
  test::eventually([&] { return c.server.dropped_events() >= 5; });
  CHECK(c.server.dropped_events() == 5);
  CHECK(good.call("add", 1, 2).as<int>() == 3);
  // An oversize message is refused by ZeroMQ before it is read; the server stays up for everyone else.
  std::string huge(2 << 20, 'x');
  bad.send(zmq::message_t(), zmq::send_flags::sndmore);
  bad.send(zmq::buffer(huge));
  CHECK(good.call("add", 3, 4).as<int>() == 7);
}

// A server that answers with what no reply may be: the call fails with a protocol error naming where it went,
// through the blocking path and the future's alike.
TEST_CASE("a reply that makes no sense fails its call, naming endpoint and method", "[rpc][client][errors]") {
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.set(zmq::sockopt::rcvtimeo, 10000);
  router.bind("tcp://127.0.0.1:0");
  const std::string endpoint = router.get(zmq::sockopt::last_endpoint);
  std::thread odd_server([&] {
    rpc::id_generator ids;
    for (int i = 0; i < 4; ++i) {
      std::vector<zmq::message_t> frames;
      if (!zmq::recv_multipart(router, std::back_inserter(frames))) return;
      rpc::event req = rpc::decode_event(std::as_bytes(std::span(static_cast<const char*>(frames.back().data()), frames.back().size())));
      duct::buffer reply = req.name == "odd" ? rpc::encode_event({ids.next(), req.header.id}, "WHAT", std::make_tuple(1))
                                             : rpc::encode_event({ids.next(), req.header.id}, "OK", std::make_tuple());
      router.send(frames.front(), zmq::send_flags::sndmore);
      router.send(zmq::message_t(), zmq::send_flags::sndmore);
      router.send(zmq::buffer(reply.data(), reply.size()));
    }
  });
  {
    rpc::client c(endpoint);
    CHECK_THROWS_WITH(c.call("odd"), endpoint + ": odd: unexpected event WHAT");
    CHECK_THROWS_WITH(c.call("empty"), endpoint + ": empty: OK without a value");
    CHECK_THROWS_WITH(c.async_call("odd").get(), endpoint + ": odd: unexpected event WHAT");
    CHECK_THROWS_WITH(c.async_call("empty").get(), endpoint + ": empty: OK without a value");
  }
  odd_server.join();
}

TEST_CASE("a method run on the receiving thread answers while every pool thread is busy", "[rpc][server][inline]") {
  // One pool thread, held by a handler that runs until cancelled: a pool method would wait behind it, an inline
  // one must not.
  test::held_service s({.threads = 1});
  rpc::client c(s.endpoint);
  auto busy = c.async_call("until_stopped");
  test::eventually([&] { return s.started.load() == 1; });
  CHECK(c.call_for(5s, "quick", 41).as<int>() == 42);
  try {
    c.call_for(5s, "quick", -1);
    FAIL("no exception");
  } catch (const rpc::remote_error& e) {
    CHECK(e.name() == "ValueError");
    CHECK(e.message() == "negative");
  }
  CHECK_THROWS_WITH(c.call_for(5s, "quick", "x"), Catch::Contains("TypeError"));
  CHECK_THROWS_AS(c.call_for(100ms, "add", 1, 2), rpc::timeout_error);  // the pool really is busy
  CHECK(nlohmann::json::parse(c.call("_zerorpc_inspect").to_json())["methods"]["quick"]["doc"] == "Adds one, inline.");
  s.server.shutdown(rpc::shutdown_mode::abort, 0s);
  CHECK_THROWS_AS(busy.get(), rpc::cancelled_error);
  CHECK(s.stopped.load() == 1);
}

// A plain call to a run_on::receiver method takes a shorter path (no channel, no entry among running calls): it must
// still echo its id as it came (str from node, bin from Python), count as open until answered, and not be taken for
// a new call when it reuses the id of a call that is still open.
TEST_CASE("calls on the receiving thread echo their ids and never reuse an open call's id", "[rpc][server][inline]") {
  test::held_service s;
  zmq::context_t ctx;
  zmq::socket_t dealer = test::plain_dealer(ctx, s.endpoint);
  dealer.set(zmq::sockopt::rcvtimeo, 10000);
  for (bool binary : {true, false}) {
    const rpc::message_id id(binary ? "0123456789abcdef0123456789abcdef" : "node-style-id-0000", binary);
    test::send_body(dealer, rpc::encode_event({id}, "quick", std::make_tuple(1)).span());
    rpc::event reply = test::recv_event(dealer);
    CHECK(reply.name == "OK");
    REQUIRE(reply.header.response_to);
    CHECK(*reply.header.response_to == id);  // the same bytes, and the same msgpack type
    CHECK(reply.args().via.array.ptr[0].as<int>() == 2);
  }
  CHECK(s.server.open_channels() == 0);

  const rpc::message_id held("held-call-id", false);
  test::send_body(dealer, rpc::encode_event({held}, "hold", std::make_tuple(4)).span());
  test::eventually([&] { return s.server.open_channels() == 1; });
  const auto dropped = s.server.dropped_events();
  test::send_body(dealer, rpc::encode_event({held}, "quick", std::make_tuple(1)).span());  // the same id: dropped
  test::eventually([&] { return s.server.dropped_events() == dropped + 1; });
  s.release.set_value();
  rpc::event reply = test::recv_event(dealer);
  CHECK(*reply.header.response_to == held);
  CHECK(reply.args().via.array.ptr[0].as<int>() == 40);  // the held call's answer, and no other
  test::send_body(dealer, rpc::encode_event({rpc::message_id("after", false)}, "quick", std::make_tuple(7)).span());
  rpc::event after = test::recv_event(dealer);
  CHECK(after.args().via.array.ptr[0].as<int>() == 8);
  CHECK(s.server.open_channels() == 0);
}

TEST_CASE("bind and listen refuse misuse with clear errors", "[rpc][server]") {
  rpc::server s;
  s.bind("x", [] { return 1; });
  CHECK_THROWS_WITH(s.bind("x", [] { return 2; }), Catch::Contains("bound already"));
  CHECK_THROWS_WITH(s.bind("_hidden", [] { return 2; }), Catch::Contains("must not"));
  CHECK_THROWS_WITH(s.bind("z", [] { return 2; }, {.defer = rpc::defer_policy::always, .where = rpc::run_on::receiver}),
                    Catch::Contains("'z'") && Catch::Contains("cannot be deferred"));
  CHECK_THROWS_WITH(s.start(), Catch::Contains("listen"));
  CHECK_THROWS_WITH(s.listen("bogus://nowhere"), Catch::Contains("bogus://nowhere"));
  s.listen("tcp://127.0.0.1:0");
  s.start();
  CHECK_THROWS_AS(s.start(), rpc::error);
  CHECK_THROWS_AS(s.bind("y", [] { return 1; }), rpc::error);
  s.stop();
  s.stop();
  CHECK_THROWS_WITH(s.start(), Catch::Contains("cannot start again"));
}

TEST_CASE("a tcp port out of range is refused, not wrapped round", "[rpc][server][client]") {
  rpc::server s;
  CHECK_THROWS_WITH(s.listen("tcp://127.0.0.1:99999"), Catch::Contains("tcp://127.0.0.1:99999: the port must be"));
  CHECK_THROWS_WITH(s.listen("tcp://127.0.0.1:-1"), Catch::Contains("the port must be"));
  CHECK_THROWS_WITH(s.listen("tcp://127.0.0.1:"), Catch::Contains("the port must be"));
  CHECK_THROWS_WITH(rpc::client("tcp://127.0.0.1:65536"), Catch::Contains("tcp://127.0.0.1:65536: the port must be"));
  CHECK_NOTHROW(rpc::client("tcp://127.0.0.1:65535"));
}

TEST_CASE("a request over the message size limit fails at once, naming the sizes", "[rpc][client][limits]") {
  calc c;
  rpc::client client(c.endpoint, {.max_message_size = 1 << 20});
  const std::string big(1 << 20, 'x');
  const auto started = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH(client.call("echo", big), Catch::Contains(c.endpoint + ": echo: ") &&
                                                  Catch::Contains("over the message size limit of 1048576 bytes"));
  CHECK_THROWS_WITH(client.async_call("echo", big).get(), Catch::Contains("over the message size limit"));
  CHECK_THROWS_WITH(client.stream("echo", big), Catch::Contains("over the message size limit"));
  CHECK_THROWS_WITH(client.publish("echo", big), Catch::Contains("over the message size limit"));
  rpc::server reader;
  reader.bind("drain", [](rpc::source& in) {
    int n = 0;
    while (in.next()) ++n;
    return n;
  });
  rpc::client to_reader(reader.listen("tcp://127.0.0.1:0"), {.max_message_size = 1 << 20});
  reader.start();
  rpc::duplex up = to_reader.chunked_call("drain");
  up.write(1);
  CHECK_THROWS_WITH(up.write(big), Catch::Contains("drain: ") && Catch::Contains("over the message size limit"));
  CHECK(std::chrono::steady_clock::now() - started < 5s);  // not the heartbeat's two periods
  CHECK(client.call("add", 1, 2).as<int>() == 3);            // and the connection is still good
}

TEST_CASE("signals arriving during calls interrupt nothing", "[rpc][server][client]") {
  // A handler installed without SA_RESTART makes blocking calls in whichever thread takes the signal fail with
  // EINTR: the I/O threads of server and client, and a caller blocked in call(), must all go round again.
  struct sigaction on_signal{};
  on_signal.sa_handler = [](int) {};
  struct sigaction previous{};
  REQUIRE(::sigaction(SIGUSR1, &on_signal, &previous) == 0);
  calc c;
  rpc::client cl(c.endpoint);
  {
    // A jthread: should a call throw, the test fails with its error rather than abort on a joinable thread.
    std::jthread pelter([](std::stop_token stop) {
      while (!stop.stop_requested()) {
        ::kill(::getpid(), SIGUSR1);
        std::this_thread::yield();
      }
    });
    int right = 0;
    for (int i = 0; i < 1000; ++i) {
      right += cl.call("add", i, 1).as<int>() == i + 1;
      right += cl.async_call("add", i, 2).get().as<int>() == i + 2;
      // Setting up sockets is interrupted too (ZeroMQ's connect, monitor and ZMQ_FD fail with EINTR): a fresh
      // client, and a fresh thread's own socket, now and then.
      if (i % 50 == 0) {
        rpc::client fresh(c.endpoint);
        right += fresh.call("add", i, 3).as<int>() == i + 3;
        bool fine = false;
        std::thread([&] {
          try {
            fine = cl.call("add", i, 4).as<int>() == i + 4;
          } catch (const std::exception& e) {
            UNSCOPED_INFO("a call from a fresh thread: " << e.what());
          }
        }).join();
        right += fine;
      }
    }
    CHECK(right == 2040);
  }
  ::sigaction(SIGUSR1, &previous, nullptr);
}

TEST_CASE("a client outlives a server restart: its next call after the restart succeeds", "[rpc][server][faults]") {
  test::temp_dir dir;
  const std::string where = "ipc://" + dir.file("restart.ipc");
  rpc::client cl(where, {.heartbeat = 100ms});
  {
    calc first({}, where);
    CHECK(cl.call("add", 1, 2).as<int>() == 3);
  }  // gone, and its socket file with it
  CHECK_THROWS_AS(cl.call_for(300ms, "add", 1, 2), rpc::error);  // nobody there meanwhile
  calc second({}, where);
  // ZeroMQ reconnects on its own; the first call after that succeeds (bounded: a few reconnect intervals).
  bool served = false;
  for (int i = 0; i < 50 && !served; ++i) {
    try {
      served = cl.call_for(1s, "add", 2, 2).as<int>() == 4;
    } catch (const rpc::error&) {
      // not reconnected yet: the call timed out or was lost
    }
  }
  CHECK(served);
}
