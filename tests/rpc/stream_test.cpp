// Streamed replies (rpc::sink on the server, rpc::source on the client), over ZeroMQ and over a duct: order, the
// clean end, errors as the final chunk, credit, cancellation by dropping the source, a time limit between items,
// a peer lost mid-stream on either side, memory bounded by credit, and fairness to other calls.
#include <catch2/catch.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <thread>

#include <duct/connection.hpp>
#include <duct/spawn.hpp>
#include <rpc/client.hpp>
#include <rpc/link.hpp>
#include <rpc/server.hpp>
#include <rpc/stream.hpp>

#include "fixtures.hpp"
#include "support.hpp"

using namespace std::chrono_literals;

namespace {

// A server with streaming methods, and a client of it: over tcp://127.0.0.1:0, or over a socketpair duct.
struct streams : test::served {
  std::atomic<int> written{0};    // items endless() wrote
  std::atomic<int> cancelled{0};  // producers stopped with cancelled_error
  std::atomic<int> lost{0};       // producers stopped with lost_remote_error
  std::atomic<int> stalled{0};    // stall() calls that got their stop
  rpc::server server;

  explicit streams(bool over_duct, rpc::client_options co = {}) : server({.threads = 2}) {
    server.bind("count", [](rpc::sink& out, int n) {
      for (int i = 0; i < n; ++i) out.write(i);
    });
    server.bind("count_then_fail", [](rpc::sink& out, int n) {
      for (int i = 0; i < n; ++i) out.write(i);
      throw rpc::remote_error("ValueError", "broke after " + std::to_string(n));
    });
    server.bind("endless", [this](rpc::sink& out) {
      try {
        for (int i = 0;; ++i) {
          out.write(i);
          ++written;
        }
      } catch (const rpc::cancelled_error&) {
        ++cancelled;
        throw;
      } catch (const rpc::lost_remote_error&) {
        ++lost;
        throw;
      }
    });
    server.bind("stall", [this](rpc::sink& out) {
      out.write(std::string("first"));
      test::sleep_until_stopped(out.stop_token());
      ++stalled;
    });
    server.bind("burst_then_stall", [this](rpc::sink& out, int n) {
      for (int i = 0; i < n; ++i) out.write(i);
      while (!out.stop_token().stop_requested()) std::this_thread::yield();
      ++stalled;
    });
    server.bind("add", [](int a, int b) { return a + b; });
    serve(server, over_duct, co);
  }
  ~streams() {
    client.reset();
    server.stop();
  }
};

}  // namespace

TEST_CASE("streams: items arrive in order past many credit windows, then a clean end", "[rpc][stream]") {
  bool over_duct = GENERATE(false, true);
  CAPTURE(over_duct);
  streams s(over_duct, {.stream_window = 16});
  rpc::source items = s.client->stream("count", 1000);
  for (int i = 0; i < 1000; ++i) {
    auto item = items.next();
    REQUIRE(item);
    REQUIRE(item->as<int>() == i);
  }
  CHECK_FALSE(items.next());
  CHECK_FALSE(items.next());  // and again: the end stays the end
  rpc::source empty = s.client->stream("count", 0);
  CHECK_FALSE(empty.next());
  // A method that answers with one result yields it as the only item.
  rpc::source one = s.client->stream("add", 2, 3);
  CHECK(one.next()->as<int>() == 5);
  CHECK_FALSE(one.next());
  // call() on a streaming method fails clearly instead of returning a part.
  CHECK_THROWS_WITH(s.client->call("count", 3), Catch::Contains("stream"));
  test::eventually([&] { return s.server.open_channels() == 0; });
}

TEST_CASE("streams: the producer's exception is the final chunk, an error distinct from the end", "[rpc][stream]") {
  bool over_duct = GENERATE(false, true);
  CAPTURE(over_duct);
  streams s(over_duct);
  rpc::source items = s.client->stream("count_then_fail", 3);
  for (int i = 0; i < 3; ++i) CHECK(items.next()->as<int>() == i);
  for (int again = 0; again < 2; ++again) {
    try {
      (void)items.next();
      FAIL("no exception");
    } catch (const rpc::remote_error& e) {
      CHECK(e.name() == "ValueError");
      CHECK(e.message() == "broke after 3");
    }
  }
  rpc::source unknown = s.client->stream("nope");
  CHECK_THROWS_AS(unknown.next(), rpc::unknown_method_error);
  rpc::source wrong = s.client->stream("count", "three");
  CHECK_THROWS_WITH(wrong.next(), Catch::Contains("TypeError"));
}

TEST_CASE("streams: credit keeps a fast producer within the consumer's window", "[rpc][stream][credit]") {
  bool over_duct = GENERATE(false, true);
  CAPTURE(over_duct);
  const int window = 8;
  streams s(over_duct, {.stream_window = window});
  rpc::source items = s.client->stream("endless");
  int read = 0;
  for (; read < 50; ++read) {
    REQUIRE(items.next()->as<int>() == read);
    // What the producer has written can never run ahead of what was read by more than the window (plus the one
    // event every peer may send unasked): look many times while the producer runs.
    for (int look = 0; look < 200; ++look) {
      REQUIRE(s.written.load() <= read + 1 + window + 1);
      std::this_thread::yield();
    }
  }
  // The producer is blocked, waiting for credit, not finished: reading on gets the next items in order.
  CHECK(items.next()->as<int>() == read);
}

TEST_CASE("streams: dropping the source mid-stream stops the producer", "[rpc][stream][cancel]") {
  bool over_duct = GENERATE(false, true);
  CAPTURE(over_duct);
  streams s(over_duct, {.stream_window = 4});
  {
    rpc::source items = s.client->stream("endless");
    for (int i = 0; i < 3; ++i) CHECK(items.next()->as<int>() == i);
  }  // dropped here: its producer's next write fails with Cancelled
  test::eventually([&] { return s.cancelled.load() == 1; });
  test::eventually([&] { return s.server.open_channels() == 0; });
  rpc::source again = s.client->stream("endless");
  again.cancel();
  CHECK_THROWS_AS(again.next(), rpc::cancelled_error);
  // Its producer is stopped, or never starts if the stop came while it waited for a thread.
  test::eventually([&] { return s.server.open_channels() == 0; });
  CHECK(s.cancelled.load() >= 1);
  CHECK(s.cancelled.load() <= 2);
  CHECK(s.lost.load() == 0);
  CHECK(s.client->call("add", 1, 1).as<int>() == 2);  // the client and server carry on
}

TEST_CASE("streams: a time limit between items ends a stalled stream and stops its producer", "[rpc][stream][timeout]") {
  bool over_duct = GENERATE(false, true);
  CAPTURE(over_duct);
  streams s(over_duct);
  rpc::source items = s.client->stream("stall");
  CHECK(items.next_for(10s)->as<std::string>() == "first");
  auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(items.next_for(100ms), rpc::timeout_error);
  CHECK(std::chrono::steady_clock::now() - start >= 100ms);
  CHECK_THROWS_AS(items.next(), rpc::timeout_error);  // the stream stays ended
  test::eventually([&] { return s.stalled.load() == 1; });
}

TEST_CASE("streams: items written with credit to spare leave soon, though the producer then goes quiet",
          "[rpc][stream][batch]") {
  // Items are held back a moment to leave together; a producer that writes a few and then pauses must not keep them.
  bool over_duct = GENERATE(false, true);
  CAPTURE(over_duct);
  streams s(over_duct);
  rpc::source items = s.client->stream("burst_then_stall", 50);
  // Well before the heartbeat (5 s), which would flush them too.
  for (int i = 0; i < 50; ++i) REQUIRE(items.next_for(2s)->as<int>() == i);
  items.cancel();
  test::eventually([&] { return s.stalled.load() == 1; });
}

TEST_CASE("streams: a connection lost mid-stream ends it with lost remote, on both sides", "[rpc][stream][lost]") {
  SECTION("the server's end of the duct closes: the consumer gets lost_remote_error, not a hang or an end") {
    streams s(true);
    rpc::source items = s.client->stream("endless");
    CHECK(items.next()->as<int>() == 0);
    s.server_end->close();
    bool ended_with_loss = false;
    try {
      while (items.next_for(10s)) {
      }
    } catch (const rpc::lost_remote_error&) {
      ended_with_loss = true;
    }
    CHECK(ended_with_loss);
  }
  SECTION("the client's end closes: the producer's write fails with lost_remote_error") {
    streams s(true, {.stream_window = 4});
    rpc::source items = s.client->stream("endless");
    CHECK(items.next()->as<int>() == 0);
    s.client_end->close();
    test::eventually([&] { return s.lost.load() == 1; });
    CHECK(s.cancelled.load() == 0);
  }
  SECTION("the client goes silent over ZeroMQ: the server stops the producer after two heartbeat periods") {
    rpc::server server({.threads = 2, .heartbeat = 100ms});
    std::atomic<int> lost{0};
    server.bind("endless", [&](rpc::sink& out) {
      try {
        for (int i = 0;; ++i) out.write(i);
      } catch (const rpc::lost_remote_error&) {
        ++lost;
        throw;
      }
    });
    std::string endpoint = server.listen("tcp://127.0.0.1:0");
    server.start();
    // A plain DEALER that asks for the stream, takes the first item and then says nothing more.
    zmq::context_t ctx;
    zmq::socket_t dealer = test::plain_dealer(ctx, endpoint);
    rpc::id_generator ids;
    test::send_body(dealer, rpc::encode_event({ids.next()}, "endless", std::make_tuple()).span());
    rpc::event first = test::recv_event(dealer);
    CHECK(first.name == "STREAM");
    CHECK_FALSE(first.header.accepts_stop);  // a plain zerorpc client is never told of our extension
    test::eventually([&] { return lost.load() == 1; });
    CHECK(server.open_channels() == 0);
  }
}

TEST_CASE("streams: a client process SIGKILLed mid-stream has its producer stopped and its thread freed within two "
          "heartbeat periods", "[rpc][stream][lost][process]") {
  constexpr auto period = 200ms;
  rpc::server server({.threads = 1, .heartbeat = period});  // one thread: the next call needs the producer's
  std::atomic<int> lost{0};
  std::atomic<std::int64_t> lost_at{0};  // steady_clock ticks when the producer heard
  server.bind("endless", [&](rpc::sink& out) {
    try {
      for (int i = 0;; ++i) out.write(i);
    } catch (const rpc::lost_remote_error&) {
      lost_at = std::chrono::steady_clock::now().time_since_epoch().count();
      ++lost;
      throw;
    }
  });
  server.bind("add", [](int a, int b) { return a + b; });
  const std::string endpoint = server.listen("tcp://127.0.0.1:0");
  server.start();
  // The client is a process of its own (rpc-stream-peer, started by fork and exec: a fork alone of this process,
  // with its threads, is not safe to go on in under the sanitizers). It takes the first item, says so, and waits.
  int out[2];
  REQUIRE(::pipe(out) == 0);
  const std::string period_ms = std::to_string(std::chrono::milliseconds(period).count());
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::execl(RPC_STREAM_PEER, RPC_STREAM_PEER, "take-one", endpoint.c_str(), period_ms.c_str(), nullptr);
    ::_exit(127);
  }
  ::close(out[1]);
  std::string said;
  pollfd p{out[0], POLLIN, 0};
  for (char ch; said.find('\n') == std::string::npos && ::poll(&p, 1, 10000) == 1 && ::read(out[0], &ch, 1) == 1;)
    said += ch;
  ::close(out[0]);
  const bool streaming = said == "taken\n";
  if (!streaming) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  REQUIRE(streaming);
  REQUIRE(server.open_channels() == 1);
  const auto killed = std::chrono::steady_clock::now();
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  test::eventually([&] { return lost.load() == 1 && server.open_channels() == 0; });
  const auto took = std::chrono::steady_clock::duration(lost_at.load()) - killed.time_since_epoch();
  // Silence is noticed after two periods; the rest is the server's tick and a loaded machine's scheduling.
  CHECK(took < 2 * period + 300ms);
  std::printf("a SIGKILLed client's producer stopped %lld ms after the kill (heartbeat %lld ms)\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()),
              static_cast<long long>(period.count()));
  rpc::client other(endpoint);
  CHECK(other.call_for(5s, "add", 2, 3).as<int>() == 5);  // the only thread is free again
}

namespace {

// A server streaming count(n) on tcp://127.0.0.1:0, and a plain DEALER connected to it, for the wire tests.
struct counting_server {
  rpc::server server;
  std::string endpoint;
  zmq::context_t ctx;
  zmq::socket_t dealer;
  counting_server() {
    server.bind("count", [](rpc::sink& out, int n) {
      for (int i = 0; i < n; ++i) out.write(i);
    });
    endpoint = server.listen("tcp://127.0.0.1:0");
    server.start();
    dealer = test::plain_dealer(ctx, endpoint);
  }
};

}  // namespace

TEST_CASE("streams: a plain zerorpc client gets STREAM items and STREAM_DONE as zerorpc-python sends them",
          "[rpc][stream][wire]") {
  counting_server s;
  zmq::socket_t& dealer = s.dealer;
  rpc::id_generator ids;
  rpc::message_id call = ids.next();
  test::send_body(dealer, rpc::encode_event({call}, "count", std::make_tuple(3)).span());
  // One credit to start with: the first item, then nothing until we grant more, as zerorpc-python does.
  rpc::event e = test::recv_event(dealer);
  CHECK(e.name == "STREAM");
  CHECK(e.args().as<int>() == 0);  // the item itself, not wrapped in an array
  CHECK(e.header.response_to == call);
  test::send_body(dealer, rpc::encode_event({ids.next(), call}, "_zpc_more", std::make_tuple(100)).span());
  CHECK(test::recv_event(dealer).args().as<int>() == 1);
  CHECK(test::recv_event(dealer).args().as<int>() == 2);
  rpc::event done = test::recv_event(dealer);
  CHECK(done.name == "STREAM_DONE");
  CHECK(done.args().type == msgpack::type::NIL);
}

TEST_CASE("streams: a client that takes batches gets several items to an event, each counted against its credit",
          "[rpc][stream][wire][batch]") {
  counting_server s;
  zmq::socket_t& dealer = s.dealer;
  rpc::id_generator ids;
  rpc::message_id call = ids.next();
  rpc::event_header h{call};
  h.accepts_batches = true;
  test::send_body(dealer, rpc::encode_event(h, "count", std::make_tuple(5000)).span());
  // The one free event first, then as much as we grant: 999 more items, in however many events.
  rpc::event first = test::recv_event(dealer);
  REQUIRE(first.name == "STREAM_BATCH");
  REQUIRE(first.args().via.array.size == 1);
  test::send_body(dealer, rpc::encode_event({ids.next(), call}, "_zpc_more", std::make_tuple(999)).span());
  int next = 1, events = 0;
  while (next < 1000) {
    rpc::event e = test::recv_event(dealer);
    REQUIRE(e.name == "STREAM_BATCH");
    ++events;
    for (std::uint32_t i = 0; i < e.args().via.array.size; ++i) REQUIRE(e.args().via.array.ptr[i].as<int>() == next++);
  }
  CHECK(next == 1000);  // exactly the credit: not one item beyond it
  CHECK(events < 999);  // and some events carried several
  // Nothing more comes until we grant more (a heartbeat at most, which is 5 s away): look for a while.
  zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
  CHECK(zmq::poll(&item, 1, std::chrono::milliseconds(200)) == 0);
}

TEST_CASE("streams: 1 GiB in 64 KiB chunks to a slower consumer keeps each process under 64 MiB resident",
          "[rpc][stream][memory][process]") {
  // Both sides are fresh processes (rpc-stream-peer), so that each one's peak resident memory is its own. Without
  // credit the producer would run ahead into ZeroMQ's queues (1000 messages each way: 64 MiB per queue).
  test::temp_dir dir;
  const std::string endpoint = "ipc://" + dir.file("s.ipc"), rss_file = dir.file("server.rss");
  // Under AddressSanitizer freed memory sits in a quarantine (256 MiB) before reuse: turn it off for the peers, so
  // that what is measured is what the code keeps, as in a normal build (where the option is ignored).
  const char* asan = std::getenv("ASAN_OPTIONS");
  ::setenv("ASAN_OPTIONS", (std::string(asan ? asan : "") + ":quarantine_size_mb=0:thread_local_quarantine_size_kb=0").c_str(), 1);
  duct::child server = duct::spawn({RPC_STREAM_PEER, "serve", endpoint, rss_file});
  const int chunks = 16384, size = 65536;  // 1 GiB
#ifdef __SANITIZE_ADDRESS__
  // AddressSanitizer's shadow memory and allocator add their own tens of MiB (the server peaked at 137 MiB in
  // session 15's runs, against 64 MiB in a normal build); without credit the peers would still hold hundreds.
  const long limit_kib = 160 * 1024;
#elif defined(__SANITIZE_THREAD__)
  // ThreadSanitizer keeps shadow memory and a history of accesses for what the peers touch: about 160 MiB for the
  // consumer. Still far below the gigabyte an unbounded stream would hold.
  const long limit_kib = 256 * 1024;
#else
  const long limit_kib = 64 * 1024;
#endif
  std::string cmd = std::string(RPC_STREAM_PEER) + " consume " + endpoint + " " + std::to_string(chunks) + " " +
                    std::to_string(size) + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  int status = ::pclose(p);
  INFO(out);
  REQUIRE(status == 0);
  std::size_t bytes = 0;
  long consumer_kib = 0;
  REQUIRE(std::sscanf(out.c_str(), "bytes=%zu peak_kib=%ld", &bytes, &consumer_kib) == 2);
  CHECK(bytes == std::size_t{1} << 30);
  CHECK(consumer_kib < limit_kib);
  REQUIRE(server.wait(std::chrono::seconds(60)) == std::optional<int>(0));
  std::ifstream rss(rss_file);
  long server_kib = 0;
  REQUIRE(rss >> server_kib);
  CHECK(server_kib < limit_kib);
  std::printf("1 GiB stream: consumer peak %ld KiB, server peak %ld KiB\n", consumer_kib, server_kib);
}

TEST_CASE("streams: a fast producer starves neither other calls nor heartbeats", "[rpc][stream][fairness]") {
  // zerorpc-python #61: a long stream held up every other call on the server. Here one client drains an endless
  // stream as fast as it can while another makes calls with a short time limit, both heartbeating every 100 ms.
  rpc::server server({.threads = 2, .heartbeat = 100ms});
  std::atomic<bool> stop{false};
  server.bind("endless", [&](rpc::sink& out) {
    for (int i = 0; !stop; ++i) out.write(std::string(1024, 'x'));
  });
  server.bind("add", [](int a, int b) { return a + b; });
  std::string endpoint = server.listen("tcp://127.0.0.1:0");
  server.start();
  rpc::client streaming(endpoint, {.heartbeat = 100ms});
  rpc::client calling(endpoint, {.heartbeat = 100ms});
  std::atomic<long> items{0};
  std::exception_ptr stream_error;
  std::thread consumer([&] {
    try {
      rpc::source s = streaming.stream("endless");
      while (s.next_for(5s)) ++items;
    } catch (...) {
      stream_error = std::current_exception();
    }
  });
  test::eventually([&] { return items.load() > 1000; });
  int answered = 0;
  for (int i = 0; i < 300; ++i) answered += calling.call_for(1s, "add", i, 1).as<int>() == i + 1;
  CHECK(answered == 300);
  const long before = items.load();
  test::eventually([&] { return items.load() > before + 1000; });  // the stream kept flowing meanwhile
  stop = true;
  consumer.join();
  CHECK_FALSE(stream_error);  // ended cleanly: no lost remote on either side
}

TEST_CASE("streams: a credit window larger than ZeroMQ's high-water mark loses no item", "[rpc][stream][credit]") {
  // A ROUTER silently drops what it cannot queue past its high-water mark (1000 messages by default): with a
  // window of 5000 a fast producer would lose items, and the consumer would wait for them for ever.
  streams s(false, {.stream_window = 5000});
  rpc::source items = s.client->stream("count", 50000);
  for (int i = 0; i < 50000; ++i) {
    auto item = items.next_for(10s);
    INFO("server dropped " << s.server.dropped_events());
    REQUIRE(item);
    REQUIRE(item->as<int>() == i);
  }
  CHECK_FALSE(items.next_for(10s));
}
