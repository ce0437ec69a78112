// Chunked requests (the client writes into an rpc::duplex, the handler reads an rpc::source) and bidirectional
// calls, over ZeroMQ and over a duct: order and the clean end, errors as the final chunk in both directions,
// credit, cancellation, a peer lost on either side, a time limit between items, chunked publish, and a client that
// ignores its credit.
#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <rpc/client.hpp>
#include <rpc/server.hpp>
#include <rpc/stream.hpp>

#include "fixtures.hpp"

using namespace std::chrono_literals;

namespace {

// A server with methods that read chunked requests, and a client of it.
struct chunked : test::served {
  std::atomic<int> read{0};       // items slow_sum() took
  std::atomic<int> watching{0};   // watch() calls that started
  std::atomic<int> cancelled{0};  // readers stopped with cancelled_error
  std::atomic<int> lost{0};       // readers stopped with lost_remote_error
  std::atomic<int> failed{0};     // readers that saw the client's own error
  std::string client_error;       // its "name: message", set before `failed` counts it
  std::promise<void> go;          // slow_sum() reads one item per step: the test moves it on
  std::atomic<int> steps{0};
  std::mutex published_mu;
  std::vector<std::string> published;  // what store() received, in order
  std::atomic<bool> stored{false};
  rpc::server server;

  explicit chunked(bool over_duct, rpc::server_options so = {}, rpc::client_options co = {})
      : server(with_threads(std::move(so))) {
    server.bind("sum", [](rpc::source& in, int base) {
      long total = base;
      while (auto item = in.next()) total += item->as<int>();
      return total;
    });
    server.bind("doubled", [](rpc::source& in, rpc::sink& out) {
      while (auto item = in.next()) out.write(item->as<int>() * 2);
    });
    server.bind("watch", [this](rpc::source& in) {
      ++watching;
      try {
        while (in.next()) {
        }
      } catch (const rpc::cancelled_error&) {
        ++cancelled;
        throw;
      } catch (const rpc::lost_remote_error&) {
        ++lost;
        throw;
      } catch (const rpc::remote_error& e) {
        client_error = e.name() + ": " + e.message();
        ++failed;
        throw;
      }
      return 0;
    });
    server.bind("slow_sum", [this](rpc::source& in) {
      long total = 0;
      for (;;) {
        while (steps.load() == 0) std::this_thread::yield();
        --steps;
        auto item = in.next();
        if (!item) return total;
        total += item->as<int>();
        ++read;
      }
    });
    server.bind("first_only", [](rpc::source& in) -> int {
      auto item = in.next();
      throw rpc::remote_error("ValueError", "refused " + std::to_string(item->as<int>()));
    });
    server.bind("patient", [](rpc::source& in) {
      int n = 0;
      while (in.next_for(100ms)) ++n;
      return n;
    });
    server.bind("store", [this](rpc::source& in) {
      std::lock_guard lock(published_mu);
      while (auto item = in.next()) published.push_back(item->as<std::string>());
      stored = true;
    });
    server.bind("add", [](int a, int b) { return a + b; });
    serve(server, over_duct, co);
  }
  ~chunked() {
    steps = 1 << 30;
    client.reset();
    server.stop();
  }
  static rpc::server_options with_threads(rpc::server_options o) {
    o.threads = 3;
    return o;
  }
};

}  // namespace

TEST_CASE("chunked requests: the handler reads every item in order past many credit windows, then the end",
          "[rpc][chunked]") {
  bool over_duct = GENERATE(false, true);
  CAPTURE(over_duct);
  chunked s(over_duct, {.input_window = 16});
  rpc::duplex call = s.client->chunked_call("sum", 7);
  long expected = 7;
  for (int i = 0; i < 1000; ++i) {
    call.write(i);
    expected += i;
  }
  CHECK(call.finish().as<long>() == expected);
  CHECK_THROWS_AS(call.write(1), rpc::closed_error);  // the input has ended
  // An empty input is a clean end at once; a plain call gives the handler an empty input too.
  CHECK(s.client->chunked_call("sum", 1).finish().as<int>() == 1);
  CHECK(s.client->call("sum", 2).as<int>() == 2);
  test::eventually([&] { return s.server.open_channels() == 0; });
}

TEST_CASE("bidirectional calls: the handler streams as it reads, each direction with its own credit",
          "[rpc][chunked][duplex]") {
  bool over_duct = GENERATE(false, true);
  CAPTURE(over_duct);
  chunked s(over_duct, {.input_window = 4}, {.stream_window = 4});
  rpc::duplex call = s.client->chunked_call("doubled");
  // In lock step: each item written comes back doubled before the next is written.
  for (int i = 0; i < 50; ++i) {
    call.write(i);
    REQUIRE(call.output().next_for(10s)->as<int>() == 2 * i);
  }
  // Ahead by far more than either window: the writer runs in its own thread and blocks on credit until the
  // reader here catches up; nothing is lost or reordered.
  std::thread writer([&] {
    for (int i = 50; i < 500; ++i) call.write(i);
    call.end();
  });
  for (int i = 50; i < 500; ++i) REQUIRE(call.output().next_for(10s)->as<int>() == 2 * i);
  CHECK_FALSE(call.output().next_for(10s));
  writer.join();
}

TEST_CASE("chunked requests: credit keeps a fast writer within the handler's window", "[rpc][chunked][credit]") {
  bool over_duct = GENERATE(false, true);
  CAPTURE(over_duct);
  const int window = 8;
  chunked s(over_duct, {.input_window = window});
  rpc::duplex call = s.client->chunked_call("slow_sum");
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int i = 1; i <= 200; ++i) {
      call.write(i);
      ++written;
    }
    call.end();
  });
  for (int step = 0; step < 100; ++step) {
    ++s.steps;
    test::eventually([&] { return s.read.load() == step + 1; });
    // What the client has written can never run ahead of what the handler read by more than the window: look
    // many times while the writer runs.
    for (int look = 0; look < 200; ++look) {
      REQUIRE(written.load() <= s.read.load() + window);
      std::this_thread::yield();
    }
  }
  s.steps = 1 << 30;
  writer.join();
  CHECK(call.finish().as<long>() == 200 * 201 / 2);
}

TEST_CASE("chunked requests: the client's error is the input's final chunk, distinct from its end",
          "[rpc][chunked][errors]") {
  bool over_duct = GENERATE(false, true);
  CAPTURE(over_duct);
  chunked s(over_duct);
  rpc::duplex call = s.client->chunked_call("watch");
  for (int i = 0; i < 3; ++i) call.write(i);
  call.fail("ValueError", "the file went away");
  test::eventually([&] { return s.failed.load() == 1; });
  CHECK(s.client_error == "ValueError: the file went away");
  // The handler rethrew it: the call's outcome is that error.
  try {
    (void)call.finish();
    FAIL("no exception");
  } catch (const rpc::remote_error& e) {
    CHECK(e.name() == "ValueError");
    CHECK(e.message() == "the file went away");
  }
  CHECK_THROWS_AS(call.fail("Again", "no"), rpc::closed_error);
}

TEST_CASE("chunked requests: the handler's error reaches the writer, and so does a method that reads no chunks",
          "[rpc][chunked][errors]") {
  bool over_duct = GENERATE(false, true);
  CAPTURE(over_duct);
  chunked s(over_duct);
  rpc::duplex call = s.client->chunked_call("first_only");
  bool refused = false;
  for (int i = 0; i < 1000 && !refused; ++i) {  // the writes before the error arrives may succeed
    try {
      call.write(i);
    } catch (const rpc::remote_error& e) {
      CHECK(e.name() == "ValueError");
      CHECK(e.message() == "refused 0");
      refused = true;
    }
  }
  if (!refused) {  // every write fit in the credit: the error is the outcome all the same
    CHECK_THROWS_WITH(call.finish(), Catch::Contains("refused 0"));
    refused = true;
  }
  CHECK(refused);
  CHECK_THROWS_WITH(call.output().next(), Catch::Contains("refused 0"));

  CHECK_THROWS_AS(s.client->chunked_call("nope").finish(), rpc::unknown_method_error);
  CHECK_THROWS_WITH(s.client->chunked_call("add", 1, 2).finish(), Catch::Contains("does not read a chunked request"));
  CHECK_THROWS_WITH(s.client->chunked_call("sum", "seven").finish(), Catch::Contains("TypeError"));
  CHECK(s.client->call("add", 1, 1).as<int>() == 2);  // the client and server carry on
  test::eventually([&] { return s.server.open_channels() == 0; });
}

TEST_CASE("chunked requests: a cancel from the client stops the handler and frees the call", "[rpc][chunked][cancel]") {
  bool over_duct = GENERATE(false, true);
  CAPTURE(over_duct);
  chunked s(over_duct);
  {
    rpc::duplex call = s.client->chunked_call("watch");
    call.write(1);
    call.write(2);
    test::eventually([&] { return s.watching.load() == 1; });  // running, not waiting for a thread
  }  // dropped: the handler's next read throws Cancelled
  test::eventually([&] { return s.cancelled.load() == 1; });
  test::eventually([&] { return s.server.open_channels() == 0; });
  rpc::duplex again = s.client->chunked_call("watch");
  again.write(1);
  again.cancel();
  CHECK_THROWS_AS(again.write(2), rpc::cancelled_error);
  // Its handler is stopped, or never starts if the cancel came while it waited for a thread.
  test::eventually([&] { return s.server.open_channels() == 0; });
  CHECK(s.cancelled.load() >= 1);
  CHECK(s.cancelled.load() <= 2);
  CHECK(s.lost.load() == 0);
}

TEST_CASE("chunked requests: a time limit between items ends a stalled input", "[rpc][chunked][timeout]") {
  bool over_duct = GENERATE(false, true);
  CAPTURE(over_duct);
  chunked s(over_duct);
  rpc::duplex call = s.client->chunked_call("patient");
  call.write(1);
  // The client writes nothing more: the handler's next_for() gives up, and its error is the outcome.
  CHECK_THROWS_WITH(call.output().next_for(10s), Catch::Contains("nothing arrived within"));
}

TEST_CASE("chunked requests: a connection lost mid-input ends the call with lost remote, on both sides",
          "[rpc][chunked][lost]") {
  SECTION("the client's end closes: the handler's next read throws lost_remote_error") {
    chunked s(true);
    rpc::duplex call = s.client->chunked_call("watch");
    call.write(1);
    // Running, not waiting for a thread: a call whose client is lost before it starts never runs (its handler
    // would never see the loss), which a loaded machine made happen here.
    test::eventually([&] { return s.watching.load() == 1; });
    s.client_end->close();
    test::eventually([&] { return s.lost.load() == 1; });
    CHECK(s.cancelled.load() == 0);
  }
  SECTION("the server's end closes: the writer gets lost_remote_error, not a hang") {
    chunked s(true, {.input_window = 4});
    rpc::duplex call = s.client->chunked_call("slow_sum");  // reads nothing: the writer runs out of credit
    s.server_end->close();
    bool ended_with_loss = false;
    try {
      for (int i = 0; i < 100; ++i) call.write(i);
    } catch (const rpc::lost_remote_error&) {
      ended_with_loss = true;
    }
    CHECK(ended_with_loss);
  }
  SECTION("the client goes silent over ZeroMQ: the server stops the reader after two heartbeat periods") {
    chunked s(false, {.heartbeat = 100ms});
    // A plain DEALER that starts a chunked call, sends one item and then says nothing more.
    zmq::context_t ctx;
    zmq::socket_t dealer = test::plain_dealer(ctx, s.endpoint);
    rpc::id_generator ids;
    rpc::message_id id = ids.next();
    test::send_body(dealer, rpc::encode_event({id}, "_ductrpc_chunked", std::make_tuple("watch", std::make_tuple())).span());
    rpc::event credit = test::recv_event(dealer);
    CHECK(credit.name == "_zpc_more");
    CHECK(credit.header.accepts_stop);
    test::send_body(dealer, rpc::encode_event({ids.next(), id}, "CHUNK", 1).span());
    test::eventually([&] { return s.lost.load() == 1; });
    CHECK(s.server.open_channels() == 0);
  }
}

// A server that takes a chunked call, grants the writer two chunks and then says nothing more, over ZeroMQ or a duct.
// Over both, the same: the writer's next write() and the reply throw lost_remote_error once two heartbeat periods
// have passed in silence (and a chunk the transport cannot send ends the call in the same way: see stream.hpp).
TEST_CASE("chunked requests: a server gone silent mid-input ends the writer and the reply with lost remote, over both "
          "transports", "[rpc][chunked][lost]") {
  const rpc::client_options co{.heartbeat = 100ms};
  auto silent_grant = [](const rpc::event& request) {
    CHECK(request.name == "_ductrpc_chunked");
    rpc::id_generator ids;
    rpc::event_header h{ids.next(), request.header.id};
    h.accepts_stop = true;
    return rpc::encode_event(h, "_zpc_more", std::make_tuple(2));
  };
  auto check_lost = [](rpc::duplex& call) {
    bool lost = false;
    try {
      for (int i = 0; i < 10; ++i) call.write(i);  // the credit runs out: a write waits until the server is lost
    } catch (const rpc::lost_remote_error&) {
      lost = true;
    }
    CHECK(lost);
    CHECK_THROWS_WITH(call.output().next(), Catch::Contains("watch") && Catch::Contains("lost remote"));
    CHECK_THROWS_AS(call.output().next(), rpc::lost_remote_error);
  };
  SECTION("over ZeroMQ") {
    zmq::context_t ctx;
    zmq::socket_t router(ctx, zmq::socket_type::router);
    router.set(zmq::sockopt::linger, 0);
    router.bind("tcp://127.0.0.1:0");
    rpc::client c(router.get(zmq::sockopt::last_endpoint), co);
    rpc::duplex call = c.chunked_call("watch");
    std::vector<zmq::message_t> frames;
    REQUIRE(zmq::recv_multipart(router, std::back_inserter(frames)));
    rpc::event request = rpc::decode_event(
        std::as_bytes(std::span(static_cast<const char*>(frames.back().data()), frames.back().size())));
    duct::buffer grant = silent_grant(request);
    router.send(std::move(frames[0]), zmq::send_flags::sndmore);
    router.send(zmq::message_t(), zmq::send_flags::sndmore);
    router.send(zmq::buffer(grant.data(), grant.size()));
    check_lost(call);
  }
  SECTION("over a duct") {
    auto [ours, theirs] = duct::pair();
    rpc::client c{rpc::link(std::move(ours)), co};
    rpc::duplex call = c.chunked_call("watch");
    rpc::event request = rpc::decode_event(theirs.recv_bytes().span());
    theirs.send_bytes(silent_grant(request).span());
    check_lost(call);  // the duct stays open: only the silence tells
  }
}

TEST_CASE("chunked requests: a client that writes beyond its credit is stopped, not buffered",
          "[rpc][chunked][credit][wire]") {
  chunked s(false, {.input_window = 4});
  zmq::context_t ctx;
  zmq::socket_t dealer = test::plain_dealer(ctx, s.endpoint);
  rpc::id_generator ids;
  rpc::message_id id = ids.next();
  test::send_body(dealer, rpc::encode_event({id}, "_ductrpc_chunked", std::make_tuple("watch", std::make_tuple())).span());
  rpc::event credit = test::recv_event(dealer);
  REQUIRE(credit.name == "_zpc_more");
  CHECK(credit.args().via.array.ptr[0].as<int>() == 3);  // with the one event every peer may send: the window
  for (int i = 0; i < 50; ++i) test::send_body(dealer, rpc::encode_event({ids.next(), id}, "CHUNK", i).span());
  rpc::event reply = test::recv_event(dealer);
  while (reply.name == "_zpc_more" || reply.name == "_zpc_hb") reply = test::recv_event(dealer);
  CHECK(reply.name == "ERR");
  CHECK(reply.args().via.array.ptr[1].as<std::string>().find("beyond the credit") != std::string::npos);
  CHECK(s.server.dropped_events() >= 1);
}

TEST_CASE("chunked publish: the input goes, then the call is one-way", "[rpc][chunked][publish]") {
  bool over_duct = GENERATE(false, true);
  CAPTURE(over_duct);
  chunked s(over_duct);
  rpc::duplex call = s.client->chunked_publish("store");
  for (const char* word : {"one", "two", "three"}) call.write(std::string(word));
  call.end();  // returns once the end is sent; nothing waits for the handler
  CHECK_THROWS_AS(call.write(std::string("four")), rpc::closed_error);
  test::eventually([&] { return s.stored.load(); });
  {
    std::lock_guard lock(s.published_mu);
    CHECK(s.published == std::vector<std::string>{"one", "two", "three"});
  }
  test::eventually([&] { return s.server.open_channels() == 0; });
  // Errors before the end still reach the writer.
  rpc::duplex wrong = s.client->chunked_publish("nope");
  CHECK_THROWS_AS(wrong.write(1), rpc::unknown_method_error);
  rpc::duplex streaming = s.client->chunked_publish("doubled");
  CHECK_THROWS_WITH(streaming.write(1), Catch::Contains("cannot be published"));
}
