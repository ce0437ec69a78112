// The store of deferred calls without a server: tokens, each client's budgets of jobs and kept bytes, what may be
// dropped to make room (only outcomes already fetched, the client's own first, never another client's unfetched
// one), expiry, and waiters' time limits.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "job_store.hpp"

using namespace std::chrono_literals;
using steady = rpc::detail::clock;
using rpc::detail::job;
using rpc::detail::job_state;
using rpc::detail::job_store;

namespace {

duct::buffer bytes(std::size_t n) {
  duct::buffer b(n);
  return b;
}

// Finishes running job `j` at `t` with an outcome of `n` bytes, as the server does. Returns: whether it was kept.
bool finish(job_store& s, job& j, std::size_t n, steady::time_point t, std::size_t client_bytes = 1 << 20,
            std::size_t total_bytes = 1 << 20) {
  if (!s.keep(j, "OK", bytes(n), client_bytes, total_bytes)) return false;
  j.state = job_state::done;
  j.finished = t;
  return true;
}

}  // namespace

TEST_CASE("job store: tokens are 128 random bits in hex, never repeated, and find their job", "[rpc][jobs]") {
  job_store s;
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) {
    job& j = s.create("render", "", "c:a");
    REQUIRE(j.token.size() == 32);
    REQUIRE(j.token.find_first_not_of("0123456789abcdef") == std::string::npos);
    REQUIRE(seen.insert(j.token).second);
    REQUIRE(s.find(j.token) == &j);
  }
  CHECK(s.size() == 2000);
  CHECK(s.jobs_of("c:a") == 2000);
  CHECK(s.find("00000000000000000000000000000000") == nullptr);
  const std::string some = *seen.begin();
  s.erase(some);
  CHECK(s.find(some) == nullptr);
  CHECK(s.jobs_of("c:a") == 1999);
}

TEST_CASE("job store: a client's job count is bounded - fetched outcomes make room, unfetched ones do not",
          "[rpc][jobs][limits]") {
  job_store s;
  const auto t0 = steady::now();
  job& a = s.create("m", "", "c:a");
  job& b = s.create("m", "", "c:a");
  REQUIRE(finish(s, a, 10, t0));
  REQUIRE(finish(s, b, 10, t0 + 1ms));
  // Two jobs is this client's limit: both unfetched, so no room, and nothing was dropped.
  CHECK_FALSE(s.room_for("c:a", 100, 2, 1 << 20, 1 << 20));
  CHECK(s.size() == 2);
  // Another client is not held back by it.
  CHECK(s.room_for("c:b", 100, 2, 1 << 20, 1 << 20));
  // Once one is fetched, it is what goes to make room.
  b.collected = true;
  const std::string b_token = b.token, a_token = a.token;
  CHECK(s.room_for("c:a", 100, 2, 1 << 20, 1 << 20));
  CHECK(s.find(b_token) == nullptr);
  CHECK(s.find(a_token) != nullptr);
}

TEST_CASE("job store: the server-wide limit drops anyone's fetched outcome, oldest first, never an unfetched one",
          "[rpc][jobs][limits]") {
  job_store s;
  const auto t0 = steady::now();
  job& mine = s.create("m", "", "c:a");
  job& theirs_old = s.create("m", "", "c:b");
  job& theirs_new = s.create("m", "", "c:b");
  REQUIRE(finish(s, mine, 10, t0));
  REQUIRE(finish(s, theirs_old, 10, t0 + 1ms));
  REQUIRE(finish(s, theirs_new, 10, t0 + 2ms));
  theirs_old.collected = theirs_new.collected = true;
  const std::string mine_token = mine.token, old_token = theirs_old.token, new_token = theirs_new.token;
  // Three jobs kept, room for three: the oldest fetched one goes.
  CHECK(s.room_for("c:c", 3, 10, 1 << 20, 1 << 20));
  CHECK(s.find(old_token) == nullptr);
  CHECK(s.find(new_token) != nullptr);
  CHECK(s.find(mine_token) != nullptr);
  // Room for one only: the other fetched one goes too, and the unfetched one stays although room is still short.
  CHECK_FALSE(s.room_for("c:c", 1, 10, 1 << 20, 1 << 20));
  CHECK(s.find(new_token) == nullptr);
  CHECK(s.find(mine_token) != nullptr);
}

TEST_CASE("job store: kept bytes are counted per client and an outcome over the budget is refused, not kept",
          "[rpc][jobs][limits]") {
  job_store s;
  const auto t0 = steady::now();
  job& first = s.create("m", "", "c:a");
  REQUIRE(finish(s, first, 600, t0, 1000, 1 << 20));
  CHECK(s.bytes_of("c:a") == 600);
  CHECK(s.bytes() == 600);
  job& second = s.create("m", "", "c:a");
  CHECK_FALSE(s.keep(second, "OK", bytes(600), 1000, 1 << 20));  // 1200 > 1000, and the first is unfetched
  CHECK(second.outcome.size() == 0);
  CHECK(second.state == job_state::running);
  CHECK(s.bytes_of("c:a") == 600);
  // A small cancellation is kept regardless (force), so that a job always ends with something to fetch.
  CHECK(s.keep(second, "ERR", bytes(20), 1000, 1 << 20, true));
  CHECK(s.bytes_of("c:a") == 620);
  // Once the first is fetched, its bytes make room.
  first.collected = true;
  job& third = s.create("m", "", "c:a");
  CHECK(s.keep(third, "OK", bytes(600), 1000, 1 << 20));
  CHECK(s.bytes_of("c:a") == 620);
  // And the total budget across clients holds the same way.
  job& other = s.create("m", "", "c:b");
  CHECK_FALSE(s.keep(other, "OK", bytes(500), 1000, 1000));  // 620 + 500 over 1000, and nothing is fetched
}

TEST_CASE("job store: finished jobs expire after the keep time - running ones never - uncollected ones are counted",
          "[rpc][jobs]") {
  job_store s;
  const auto t0 = steady::now();
  job& running = s.create("m", "", "c:a");
  job& fetched = s.create("m", "", "c:a");
  job& unfetched = s.create("m", "", "c:a");
  REQUIRE(finish(s, fetched, 10, t0));
  REQUIRE(finish(s, unfetched, 10, t0));
  fetched.collected = true;
  const std::string running_token = running.token;
  // The server sleeps until the first of them expires (a running job never does); waiters alone without `keep`.
  CHECK(s.next_deadline(300s) == t0 + 300s + steady::duration(1));
  CHECK_FALSE(s.next_deadline());
  CHECK(s.expire(t0 + 300s, 300s) == 0);  // kept for 300 s, not a moment less
  CHECK(s.expire(t0 + 299s, 300s) == 0);
  CHECK(s.size() == 3);
  CHECK(s.expire(t0 + 301s, 300s) == 1);  // two go; one of them had never been fetched
  CHECK(s.size() == 1);
  CHECK(s.find(running_token) != nullptr);
  CHECK(s.bytes_of("c:a") == 0);
  CHECK(s.jobs_of("c:a") == 1);
}

TEST_CASE("job store: waiters past their limit are handed back once, and the next limit is known", "[rpc][jobs]") {
  job_store s;
  const auto t0 = steady::now();
  job& j = s.create("m", "", "c:a");
  CHECK_FALSE(s.next_deadline());
  j.waiters.push_back({"c:a", rpc::message_id{}, t0 + 100ms});
  j.waiters.push_back({"c:b", rpc::message_id{}, t0 + 50ms});
  CHECK(s.next_deadline() == t0 + 50ms);
  CHECK(s.overdue_waiters(t0 + 10ms).empty());
  auto late = s.overdue_waiters(t0 + 60ms);
  REQUIRE(late.size() == 1);
  CHECK(late[0].first == &j);
  CHECK(late[0].second.identity == "c:b");
  CHECK(s.overdue_waiters(t0 + 60ms).empty());  // handed back once
  CHECK(s.next_deadline() == t0 + 100ms);
}
