// A duct over a socketpair: values, bytes, end of stream, limits, time-outs, threads.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <thread>

#include <duct/duct.hpp>

#include "support.hpp"

using namespace std::chrono_literals;

namespace {

// Writes bytes straight onto the socket, bypassing the framing.
void write_raw(duct::connection& c, std::string_view hex) {
  duct::buffer b = test::unhex(hex);
  REQUIRE(::send(c.fileno(), b.data(), b.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(b.size()));
}

struct point {
  double x = 0, y = 0;
  MSGPACK_DEFINE(x, y)
};

}  // namespace

TEST_CASE("values of any msgpack type round-trip", "[connection]") {
  auto [a, b] = duct::pair();
  a.send(std::vector<int>{1, 2, 3});
  a.send(std::map<std::string, double>{{"pi", 3.25}});
  a.send(point{1.5, -2});
  a.send(std::string("text"));
  CHECK(b.recv().as<std::vector<int>>() == std::vector<int>{1, 2, 3});
  CHECK(b.recv().as<std::map<std::string, double>>().at("pi") == 3.25);
  CHECK(b.recv().as<point>().y == -2);
  CHECK(b.recv().to_json() == R"("text")");
}

TEST_CASE("bytes round-trip, empty and large", "[connection]") {
  auto [a, b] = duct::pair();
  std::string big(1 << 20, 'x');
  big[12345] = 'y';
  std::thread writer([&] {
    a.send_bytes("");
    a.send_bytes(big);
    a.send_bytes("tail");
  });
  CHECK(b.recv_bytes().empty());
  CHECK(b.recv_bytes().view() == big);
  CHECK(b.recv_bytes().view() == "tail");
  writer.join();
}

TEST_CASE("recv_bytes_into fills the caller's buffer", "[connection]") {
  auto [a, b] = duct::pair();
  a.send_bytes("hello");
  std::array<std::byte, 16> buf{};
  REQUIRE(b.recv_bytes_into(buf) == 5);
  CHECK(std::string_view(reinterpret_cast<char*>(buf.data()), 5) == "hello");
}

TEST_CASE("a message too long for recv_bytes_into is kept in the error and the duct stays in step", "[connection]") {
  auto [a, b] = duct::pair();
  a.send_bytes("0123456789");
  a.send_bytes("next");
  std::array<std::byte, 4> small{};
  try {
    b.recv_bytes_into(small);
    FAIL("no exception");
  } catch (const duct::buffer_too_short& e) {
    CHECK(e.message().view() == "0123456789");
  }
  CHECK(b.recv_bytes().view() == "next");
}

TEST_CASE("recv_bytes(max_length) refuses a longer message and closes the duct", "[connection][limits]") {
  auto [a, b] = duct::pair();
  a.send_bytes("0123456789");
  CHECK_THROWS_WITH(b.recv_bytes(4), Catch::Contains("exceeds the limit of 4"));
  CHECK(b.closed());
  CHECK_THROWS_AS(b.recv_bytes(), duct::closed_error);
}

TEST_CASE("end of stream between messages: recv throws closed_error, try_recv is empty", "[connection][eof]") {
  auto [a, b] = duct::pair();
  a.send_bytes("last");
  a.close();
  CHECK(b.recv_bytes().view() == "last");
  CHECK_FALSE(b.try_recv_bytes());
  CHECK_FALSE(b.try_recv());
  try {
    b.recv();
    FAIL("no exception");
  } catch (const duct::closed_error& e) {
    CHECK_FALSE(e.mid_message());
    CHECK_THAT(e.what(), Catch::Contains("peer closed") && Catch::Contains("socketpair fd"));
  }
}

TEST_CASE("end of stream in the middle of a frame is told apart", "[connection][eof]") {
  for (const char* partial : {"54", "540000", "540000000a2261"}) {
    CAPTURE(partial);
    auto [a, b] = duct::pair();
    write_raw(a, partial);
    a.close();
    try {
      b.try_recv_bytes();
      FAIL("no exception");
    } catch (const duct::closed_error& e) {
      CHECK(e.mid_message());
      CHECK_THAT(e.what(), Catch::Contains("middle of a message"));
    }
    CHECK(b.closed());
  }
}

TEST_CASE("a bad magic byte is a protocol error and closes the duct", "[connection][limits]") {
  auto [a, b] = duct::pair();
  write_raw(a, "55000000046e756c6c");
  CHECK_THROWS_WITH(b.recv_bytes(), Catch::Contains("bad magic byte 0x55"));
  CHECK(b.closed());
  CHECK_THROWS_WITH(b.recv_bytes(), Catch::Contains("duct is closed"));
  // The peer learns of it too: its next read sees end of stream.
  CHECK_FALSE(a.try_recv_bytes(5s));
}

TEST_CASE("an oversize header is rejected before anything large is allocated", "[connection][limits]") {
  SECTION("4 GiB announced, default 64 MiB limit") {
    auto [a, b] = duct::pair();
    write_raw(a, "54ffffffff");
    test::reset_largest_allocation();
    CHECK_THROWS_WITH(b.recv_bytes(), Catch::Contains("4294967295 bytes exceeds the limit of 67108864"));
    CHECK(test::largest_allocation() < (64u << 10));
    CHECK(b.closed());
  }
  SECTION("a configured limit, multiprocessing framing with the 64-bit escape") {
    duct::options o{.framing = duct::framing::multiprocessing, .max_message_size = 1000};
    auto [a, b] = duct::pair(true, o);
    write_raw(a, "ffffffff0000000100000000");
    test::reset_largest_allocation();
    CHECK_THROWS_AS(b.recv(), duct::protocol_error);
    CHECK(test::largest_allocation() < (64u << 10));
  }
  SECTION("a message at the limit is fine") {
    duct::options o{.max_message_size = 1000};
    auto [a, b] = duct::pair(true, o);
    a.send_bytes(std::string(1000, 'z'));
    CHECK(b.recv_bytes().size() == 1000);
  }
}

TEST_CASE("a time-out between messages leaves the duct usable", "[connection][timeout]") {
  auto [a, b] = duct::pair();
  auto start = std::chrono::steady_clock::now();
  try {
    b.recv_bytes(50ms);
    FAIL("no exception");
  } catch (const duct::timeout_error& e) {
    CHECK_FALSE(e.duct_closed());
  }
  CHECK(std::chrono::steady_clock::now() - start >= 50ms);
  CHECK_FALSE(b.closed());
  a.send_bytes("after");
  CHECK(b.recv_bytes(5s).view() == "after");
}

TEST_CASE("a time-out in the middle of a frame closes the duct", "[connection][timeout]") {
  SECTION("inside the header") {
    auto [a, b] = duct::pair();
    write_raw(a, "5400");
    try {
      b.recv_bytes(50ms);
      FAIL("no exception");
    } catch (const duct::timeout_error& e) {
      CHECK(e.duct_closed());
    }
    CHECK(b.closed());
  }
  SECTION("inside a large payload") {
    auto [a, b] = duct::pair();
    write_raw(a, "5400100000" + std::string(2000, 'a'));  // announces 1 MiB, sends 1000 bytes
    CHECK_THROWS_AS(b.recv_bytes(50ms), duct::timeout_error);
    CHECK(b.closed());
  }
}

TEST_CASE("send time-outs: before any byte the duct survives, mid-frame it closes", "[connection][timeout]") {
  auto [a, b] = duct::pair();
  // Fill the socket buffer so that nothing more can be written.
  std::string chunk(65536, 'f');
  while (::send(a.fileno(), chunk.data(), chunk.size(), MSG_DONTWAIT | MSG_NOSIGNAL) > 0) {
  }
  try {
    a.send_bytes("x", 50ms);
    FAIL("no exception");
  } catch (const duct::timeout_error& e) {
    CHECK_FALSE(e.duct_closed());
  }
  CHECK_FALSE(a.closed());

  auto [c, d] = duct::pair();
  try {
    c.send_bytes(std::string(16 << 20, 'g'), 50ms);  // more than the socket holds: part goes out
    FAIL("no exception");
  } catch (const duct::timeout_error& e) {
    CHECK(e.duct_closed());
  }
  CHECK(c.closed());
}

TEST_CASE("frame_timeout: a message begun and stalled times out and closes the duct - an idle duct waits",
          "[connection][timeout]") {
  duct::options o;
  o.frame_timeout = 200ms;
  for (const char* partial : {"54", "540000000a2261"}) {  // stalled in the header, and in the payload
    CAPTURE(partial);
    auto [a, b] = duct::pair(true, o);
    write_raw(a, partial);
    const auto start = std::chrono::steady_clock::now();
    try {
      b.recv_bytes();  // no timeout of the caller's: only the frame's
      FAIL("no exception");
    } catch (const duct::timeout_error& e) {
      CHECK(e.duct_closed());
      CHECK_THAT(e.what(), Catch::Contains("middle of a message"));
    }
    CHECK(std::chrono::steady_clock::now() - start >= 200ms);
    CHECK(b.closed());
  }
  auto [a, b] = duct::pair(true, o);
  CHECK_THROWS_AS(b.recv_bytes(500ms), duct::timeout_error);  // idle past the frame timeout: the caller's limit
  CHECK_FALSE(b.closed());
  a.send_bytes("after a pause");
  CHECK(b.recv_bytes().view() == "after a pause");
}

TEST_CASE("sending to a closed peer is closed_error, never SIGPIPE", "[connection][eof]") {
  auto [a, b] = duct::pair();
  b.close();
  CHECK_THROWS_AS(a.send_bytes(std::string(1 << 20, 'p')), duct::closed_error);
  CHECK_THROWS_AS(a.send(42), duct::closed_error);
}

TEST_CASE("poll reports a whole message, not a partial one", "[connection][poll]") {
  auto [a, b] = duct::pair();
  CHECK_FALSE(b.poll());
  CHECK_FALSE(b.poll(20ms));
  write_raw(a, "540000000341");
  CHECK_FALSE(b.poll(20ms));  // 1 of 3 payload bytes
  write_raw(a, "4242");
  CHECK(b.poll(5s));
  CHECK(b.recv_bytes().view() == "ABB");
  a.close();
  CHECK(b.poll(5s));  // end of stream: recv would not block
}

TEST_CASE("one-way pairs refuse the wrong direction", "[connection][oneway]") {
  auto [r, w] = duct::pair(false);
  CHECK(r.readable());
  CHECK_FALSE(r.writable());
  CHECK(w.writable());
  CHECK_FALSE(w.readable());
  CHECK_THROWS_WITH(r.send_bytes("x"), Catch::Contains("receive-only"));
  CHECK_THROWS_WITH(w.recv_bytes(), Catch::Contains("send-only"));
  CHECK_THROWS_AS(w.poll(), duct::usage_error);
  w.send(std::string("one way"));
  CHECK(r.recv().as<std::string>() == "one way");
  // The kernel agrees: the raw socket of the receiving end cannot write either.
  CHECK(::send(r.fileno(), "x", 1, MSG_NOSIGNAL) < 0);
}

TEST_CASE("close is idempotent and later use is closed_error", "[connection][close]") {
  auto [a, b] = duct::pair();
  a.close();
  a.close();
  CHECK(a.closed());
  CHECK(a.fileno() == -1);
  CHECK_THROWS_WITH(a.send_bytes("x"), Catch::Contains("duct is closed"));
  CHECK_THROWS_AS(a.recv(), duct::closed_error);
  duct::connection none;
  CHECK(none.closed());
  CHECK_THROWS_AS(none.recv_bytes(), duct::closed_error);
}

TEST_CASE("close wakes a thread blocked in recv", "[connection][close][threads]") {
  auto [a, b] = duct::pair();
  std::atomic<int> tid{0};
  std::promise<std::string> outcome;
  auto result = outcome.get_future();
  std::thread reader([&, &b = b] {
    tid = static_cast<int>(::gettid());
    try {
      b.recv_bytes();
      outcome.set_value("returned");
    } catch (const duct::closed_error& e) {
      outcome.set_value(e.what());
    }
  });
  test::wait_until_sleeping(tid);  // the reader is inside recv, holding the receive lock
  b.close();
  REQUIRE(result.wait_for(10s) == std::future_status::ready);
  CHECK_THAT(result.get(), Catch::Contains("duct is closed"));
  reader.join();
}

TEST_CASE("one thread blocks in recv while another sends on the same duct", "[connection][threads]") {
  auto [a, b] = duct::pair();
  std::promise<std::string> got;
  std::thread reader([&, &a = a] { got.set_value(std::string(a.recv_bytes(10s).view())); });
  // If send and receive shared one lock this send would wait for the reader, which waits for the pong: deadlock.
  a.send_bytes("ping", 5s);
  CHECK(b.recv_bytes(5s).view() == "ping");
  b.send_bytes("pong");
  auto f = got.get_future();
  REQUIRE(f.wait_for(10s) == std::future_status::ready);
  CHECK(f.get() == "pong");
  reader.join();
}

TEST_CASE("concurrent senders never interleave frames", "[connection][threads]") {
  auto [a, b] = duct::pair();
  constexpr int threads = 4, per_thread = 500;
  std::vector<std::thread> senders;
  for (int t = 0; t < threads; ++t) {
    senders.emplace_back([&, t, &a = a] {
      for (int i = 0; i < per_thread; ++i) {
        std::string m(static_cast<std::size_t>(1 + (i * 997) % 20000), static_cast<char>('a' + t));
        a.send_bytes(m);
      }
    });
  }
  std::map<char, int> counts;
  for (int n = 0; n < threads * per_thread; ++n) {
    duct::buffer m = b.recv_bytes(10s);
    std::string_view v = m.view();
    REQUIRE_FALSE(v.empty());
    REQUIRE(v.find_first_not_of(v[0]) == std::string_view::npos);
    ++counts[v[0]];
  }
  for (auto& s : senders) s.join();
  for (int t = 0; t < threads; ++t) CHECK(counts[static_cast<char>('a' + t)] == per_thread);
}

TEST_CASE("shutdown_write: the peer sees end of stream while this end still receives", "[connection][eof]") {
  auto [a, b] = duct::pair();
  a.send_bytes("before");
  a.shutdown_write();
  CHECK(b.recv_bytes().view() == "before");
  CHECK_FALSE(b.try_recv_bytes(5s));
  b.send_bytes("still heard");
  CHECK(a.recv_bytes(5s).view() == "still heard");
  CHECK_THROWS_AS(a.send_bytes("x"), duct::closed_error);
}

TEST_CASE("a payload the codec cannot decode leaves the duct usable", "[connection][codec]") {
  duct::options o{.codec = duct::codec::json};
  auto [a, b] = duct::pair(true, o);
  a.send_bytes("not json");
  a.send(std::vector<int>{4, 5});
  try {
    b.recv();
    FAIL("no exception");
  } catch (const duct::codec_error& e) {
    CHECK(e.payload().view() == "not json");
  }
  CHECK(b.recv().as<std::vector<int>>() == std::vector<int>{4, 5});
}

TEST_CASE("the json codec puts ductworks' bytes on the wire", "[connection][codec]") {
  duct::options json{.codec = duct::codec::json};
  auto [a, b] = duct::pair(true, json);
  a.send(std::make_tuple(std::string("hello world"), 42));
  duct::buffer raw(64);
  ssize_t n = ::recv(b.fileno(), raw.data(), raw.size(), 0);
  raw.truncate(static_cast<std::size_t>(n));
  CHECK(test::hex(raw) == "54000000135b2268656c6c6f20776f726c64222c2034325d");
}

TEST_CASE("the raw codec sends strings as they are and receives bin", "[connection][codec]") {
  duct::options raw{.codec = duct::codec::raw};
  auto [a, b] = duct::pair(true, raw);
  a.send(std::string("plain"));
  duct::value v = b.recv();
  REQUIRE(v.get().type == msgpack::type::BIN);
  CHECK(std::string_view(v.get().via.bin.ptr, v.get().via.bin.size) == "plain");
  CHECK_THROWS_AS(a.send(1), duct::codec_error);
}

TEST_CASE("the multiprocessing framing round-trips", "[connection]") {
  duct::options mp{.framing = duct::framing::multiprocessing};
  auto [a, b] = duct::pair(true, mp);
  a.send_bytes("hello");
  duct::buffer raw(64);
  ssize_t n = ::recv(b.fileno(), raw.data(), raw.size(), 0);
  raw.truncate(static_cast<std::size_t>(n));
  CHECK(test::hex(raw) == "0000000568656c6c6f");
  b.send(std::string("back"));
  CHECK(a.recv().as<std::string>() == "back");
}

TEST_CASE("a corked writer batches frames and flushes them whole", "[connection][corked]") {
  auto [a, b] = duct::pair();
  // Catch2's assertions are for the test's own thread: the reader notes what it got, checked after the join.
  int in_order = 0;
  std::size_t large = 0;
  std::string last;
  std::thread reader([&, &b = b] {
    while (in_order < 10000 && b.recv(10s).as<int>() == in_order) ++in_order;
    large = b.recv_bytes(10s).size();
    last = std::string(b.recv_bytes(10s).view());
  });
  {
    duct::corked_writer w(a, 4096);
    for (int i = 0; i < 10000; ++i) w.send(i);
    w.send_bytes(std::string(1 << 20, 'L'));  // larger than the batch: goes straight through after a flush
    w.send_bytes("after");
    CHECK(w.pending() > 0);
    w.flush(10s);
    CHECK(w.pending() == 0);
  }
  reader.join();
  CHECK(in_order == 10000);
  CHECK(large == (1u << 20));
  CHECK(last == "after");
}

TEST_CASE("wait() returns the ducts that have a message", "[connection][wait]") {
  auto [a1, b1] = duct::pair();
  auto [a2, b2] = duct::pair();
  auto [a3, b3] = duct::pair();
  CHECK(duct::wait({&b1, &b2, &b3}, 20ms).empty());
  a2.send_bytes("two");
  a3.send_bytes("three");
  auto ready = duct::wait({&b1, &b2, &b3}, 5s);
  REQUIRE(ready.size() == 2);
  CHECK(ready[0] == &b2);
  CHECK(ready[1] == &b3);
  b3.close();
  ready = duct::wait({&b1, &b2, &b3}, 5s);
  REQUIRE(ready.size() == 1);
  CHECK(ready[0] == &b2);
  // A message arriving while we wait wakes us.
  std::thread late([&, &a1 = a1] { a1.send_bytes("one"); });
  CHECK(b2.recv_bytes().view() == "two");
  ready = duct::wait({&b1, &b2}, 10s);
  late.join();
  REQUIRE(ready.size() == 1);
  CHECK(ready[0] == &b1);
}
