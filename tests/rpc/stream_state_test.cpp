// The client's side of a streamed reply without any transport: credit granted as items are consumed, the clean end,
// an error as the final chunk after the items before it, cancellation, a time limit between items.
#include <catch2/catch.hpp>

#include <rpc/error.hpp>

#include "stream_state.hpp"

using namespace std::chrono_literals;

namespace {

duct::value int_value(int i) {
  duct::pack_buffer out;
  msgpack::pack(out, i);
  return duct::value(msgpack::unpack(out.data(), out.size()));
}

struct recorded {
  std::vector<std::size_t> grants;
  int stops = 0;
};

std::shared_ptr<rpc::detail::stream_state> make_state(recorded& r, std::size_t window) {
  auto st = std::make_shared<rpc::detail::stream_state>("test: count", window);
  st->attach([&r](std::size_t n) { r.grants.push_back(n); }, [&r] { ++r.stops; });
  return st;
}

}  // namespace

TEST_CASE("stream state: credit keeps what is granted and buffered within the window", "[rpc][stream][sans-io]") {
  recorded r;
  auto st = make_state(r, 8);
  // The server may send one item before any grant; taking it opens the window (8 - nothing in flight).
  st->push(int_value(0));
  CHECK(st->next(std::nullopt)->as<int>() == 0);
  REQUIRE(r.grants == std::vector<std::size_t>{8});
  // Items granted arrive and wait; no grant while at least half the window is still on its way.
  for (int i = 1; i <= 4; ++i) st->push(int_value(i));
  for (int i = 1; i <= 4; ++i) CHECK(st->next(std::nullopt)->as<int>() == i);
  // 4 were consumed, 4 are outstanding: at half, nothing more yet; the next consumption tops up.
  CHECK(r.grants == std::vector<std::size_t>{8});
  st->push(int_value(5));
  CHECK(st->next(std::nullopt)->as<int>() == 5);
  REQUIRE(r.grants.size() == 2);
  CHECK(r.grants[1] == 5);  // back to 8 outstanding: 3 + 5
  std::size_t granted = 1;
  for (auto g : r.grants) granted += g;
  CHECK(granted - 6 <= 8);  // never more than the window owed
}

TEST_CASE("stream state: the clean end comes after the items and stays", "[rpc][stream][sans-io]") {
  recorded r;
  auto st = make_state(r, 4);
  st->push(int_value(1));
  st->push(int_value(2));
  st->end();
  CHECK(st->next(std::nullopt)->as<int>() == 1);
  CHECK(st->next(std::nullopt)->as<int>() == 2);
  CHECK_FALSE(st->next(std::nullopt));
  CHECK_FALSE(st->next(std::nullopt));
  st->fail(std::make_exception_ptr(rpc::remote_error("ValueError", "late")));  // an ended stream stays ended
  CHECK_FALSE(st->next(std::nullopt));
  CHECK(r.stops == 0);
}

TEST_CASE("stream state: an error is the final chunk, after the items before it, and distinct from the end",
          "[rpc][stream][sans-io]") {
  recorded r;
  auto st = make_state(r, 4);
  st->push(int_value(1));
  st->fail(std::make_exception_ptr(rpc::remote_error("ValueError", "broke")));
  st->push(int_value(2));  // nothing is taken after the end
  st->end();               // nor does a late end hide the error
  CHECK(st->next(std::nullopt)->as<int>() == 1);
  for (int again = 0; again < 2; ++again) CHECK_THROWS_WITH(st->next(std::nullopt), "ValueError: broke");
}

TEST_CASE("stream state: cancelling drops what is buffered, stops the producer once, and grants nothing more",
          "[rpc][stream][sans-io]") {
  recorded r;
  auto st = make_state(r, 4);
  st->push(int_value(1));
  st->push(int_value(2));
  st->cancel();
  st->cancel();
  CHECK(r.stops == 1);
  CHECK_THROWS_AS(st->next(std::nullopt), rpc::cancelled_error);
  st->push(int_value(3));
  CHECK_THROWS_AS(st->next(std::nullopt), rpc::cancelled_error);
  CHECK(r.grants.empty());
}

TEST_CASE("stream state: a time limit between items ends the stream and stops the producer", "[rpc][stream][sans-io]") {
  recorded r;
  auto st = make_state(r, 4);
  auto start = rpc::detail::clock::now();
  CHECK_THROWS_AS(st->next(start + 50ms), rpc::timeout_error);
  CHECK(rpc::detail::clock::now() - start >= 50ms);
  CHECK(r.stops == 1);
  st->push(int_value(1));
  CHECK_THROWS_AS(st->next(std::nullopt), rpc::timeout_error);
}

TEST_CASE("stream state: a detached transport is never called back", "[rpc][stream][sans-io]") {
  recorded r;
  auto st = make_state(r, 4);
  st->detach();
  st->push(int_value(1));
  CHECK(st->next(std::nullopt)->as<int>() == 1);
  st->cancel();
  CHECK(r.grants.empty());
  CHECK(r.stops == 0);
}
