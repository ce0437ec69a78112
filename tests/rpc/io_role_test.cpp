// The I/O role without a server: a lending that outlasts its budget loses the role, and not before its budget;
// short lendings, however many, keep it; an idle stretch in between does not leave the next lending unwatched.
// The lendings that run long here block on purpose (the handler that blocks is what the role guards against); the
// test waits on vacate() itself, bounded.
#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "io_role.hpp"

using namespace std::chrono_literals;
using rpc::detail::io_role;
using steady = std::chrono::steady_clock;

namespace {
// Counts vacate() calls and lets a test wait for the next one.
struct vacancies {
  std::mutex mu;
  std::condition_variable cv;
  int count = 0;
  steady::time_point last;

  void note() {
    std::lock_guard lock(mu);
    ++count;
    last = steady::now();
    cv.notify_all();
  }
  int seen() {
    std::lock_guard lock(mu);
    return count;
  }
  bool wait_for_count(int n, std::chrono::milliseconds limit) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, limit, [&] { return count >= n; });
  }
};

// Lends the role and blocks until it has gone to another thread (bounded by `limit`). Returns: how long it was lent.
steady::duration lend_until_vacated(io_role& role, io_role::ticket t, vacancies& v, int nth,
                                    std::chrono::milliseconds limit) {
  const auto start = steady::now();
  role.enter(t, start);
  REQUIRE(v.wait_for_count(nth, limit));
  std::lock_guard lock(v.mu);
  return v.last - start;
}
}  // namespace

TEST_CASE("io_role: a lending that outlasts its budget loses the role, not before its budget", "[io_role]") {
  vacancies v;
  io_role role(20ms, [&] { v.note(); });
  const io_role::ticket t = role.take();
  REQUIRE(t != 0);
  CHECK(role.take() == 0);  // held: nobody else takes it

  const auto lent = lend_until_vacated(role, t, v, 1, 10s);
  CHECK(lent >= 20ms);
  CHECK(role.waiting());
  CHECK_FALSE(role.mine(t));
  CHECK_FALSE(role.leave(t));  // the lender learns that it went on
  CHECK(role.handoffs() == 1);

  // The next holder is watched the same way.
  const io_role::ticket next = role.take();
  REQUIRE(next > t);
  CHECK(role.mine(next));
  const auto lent_again = lend_until_vacated(role, next, v, 2, 10s);
  CHECK(lent_again >= 20ms);
  CHECK(role.handoffs() == 2);
  role.stop_monitor();
}

TEST_CASE("io_role: lendings shorter than the budget keep the role however long they go on", "[io_role]") {
  // A budget far above any scheduling delay of a loaded CI machine, over more than two budgets of back-to-back
  // lendings: the timer is set again about twice a budget, and the role must never go to another thread.
  vacancies v;
  io_role role(250ms, [&] { v.note(); });
  const io_role::ticket t = role.take();
  REQUIRE(t != 0);
  const auto until = steady::now() + 600ms;
  int lendings = 0;
  bool kept = true;
  while (steady::now() < until && kept) {
    role.enter(t);
    kept = role.leave(t);
    ++lendings;
  }
  CHECK(kept);
  CHECK(lendings > 100);
  CHECK(role.handoffs() == 0);
  CHECK(v.seen() == 0);
  role.stop_monitor();
}

TEST_CASE("io_role: a lending after an idle stretch is watched from its own start", "[io_role]") {
  vacancies v;
  io_role role(20ms, [&] { v.note(); });
  const io_role::ticket t = role.take();
  REQUIRE(t != 0);
  role.enter(t);
  REQUIRE(role.leave(t));
  // Idle for several budgets: the timer the lending above set has fired, with nothing lent.
  std::this_thread::sleep_for(80ms);
  CHECK(role.handoffs() == 0);
  const auto lent = lend_until_vacated(role, t, v, 1, 10s);
  CHECK(lent >= 20ms);
  CHECK(role.handoffs() == 1);
  role.stop_monitor();
}

TEST_CASE("io_role: once its monitor is stopped, a lending that runs long vacates nothing", "[io_role]") {
  vacancies v;
  io_role role(50ms, [&] { v.note(); });
  const io_role::ticket t = role.take();
  REQUIRE(t != 0);
  role.enter(t);
  role.stop_monitor();  // returns without waiting for the lending or its timer
  std::this_thread::sleep_for(100ms);  // past the budget: a monitor still watching would vacate by now
  CHECK(role.leave(t));
  CHECK(v.seen() == 0);
}

TEST_CASE("io_role: the role ends for waiters once its holder ends it, or at once when vacant", "[io_role]") {
  io_role role(1ms, [] {});
  const io_role::ticket t = role.take();
  REQUIRE(t != 0);
  role.end_if_vacant();  // held: the holder ends it
  CHECK(role.mine(t));
  std::thread holder([&] { role.end(t); });
  role.wait_ended();
  holder.join();
  CHECK(role.take() == 0);

  io_role idle(1ms, [] {});
  idle.end_if_vacant();
  idle.wait_ended();
  CHECK(idle.take() == 0);
}

TEST_CASE("io_role: a budget too long to count in nanoseconds means never, without overflowing", "[io_role]") {
  vacancies v;
  io_role role(std::chrono::microseconds::max(), [&] { v.note(); });
  const io_role::ticket t = role.take();
  REQUIRE(t != 0);
  for (int i = 0; i < 3; ++i) {  // the first sets the timer a century ahead; the others find it set
    role.enter(t);
    CHECK(role.leave(t));
  }
  std::this_thread::sleep_for(50ms);
  CHECK(role.handoffs() == 0);
  role.stop_monitor();
}
