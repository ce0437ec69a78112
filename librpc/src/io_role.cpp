#include "io_role.hpp"

#include <system_error>

namespace rpc::detail {

io_role::io_role(std::chrono::microseconds budget, std::function<void()> vacate)
    : budget_(std::max(budget, std::chrono::microseconds(50))), vacate_(std::move(vacate)) {}

io_role::~io_role() { stop_monitor(); }

void io_role::stop_monitor() {
  std::thread monitor;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    monitor.swap(monitor_);  // no enter() starts one after this
  }
  cv_.notify_all();
  if (monitor.joinable()) monitor.join();
}

io_role::ticket io_role::take() noexcept {
  std::uint64_t v = state_.load();
  for (;;) {
    if ((v & 3) != vacant) return 0;
    const ticket t = (v >> 2) + 1;
    if (state_.compare_exchange_weak(v, t << 2 | held)) return t;
  }
}

void io_role::enter(ticket t) noexcept {
  // Only the holder lends, and holders follow one another through state_: a plain store, not a locked increment.
  lendings_.store(lendings_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  state_.store(t << 2 | lent);  // seq_cst, and so is the load below: see watch()
  if (!watching_.load()) {
    {
      std::lock_guard lock(mu_);
      watching_ = true;
      if (!monitor_.joinable() && !stop_) {  // the first lending
        try {
          monitor_ = std::thread([this] { watch(); });
        } catch (const std::system_error&) {
          // No thread to be had: handlers run where they arrive but never hand receiving on, as if the budget were
          // endless. The next lending tries again.
          watching_ = false;
        }
      }
    }
    cv_.notify_one();
  }
}

bool io_role::leave(ticket t) noexcept {
  std::uint64_t v = t << 2 | lent;
  return state_.compare_exchange_strong(v, t << 2 | held);
}

bool io_role::waiting() const noexcept { return (state_.load() & 3) == vacant; }

bool io_role::mine(ticket t) const noexcept {
  const std::uint64_t v = state_.load();
  return v >> 2 == t && (v & 3) <= lent;
}

void io_role::end(ticket t) {
  {
    std::lock_guard lock(mu_);
    state_.store(t << 2 | ended);
    ended_ = true;
  }
  cv_.notify_all();
}

void io_role::end_if_vacant() {
  std::uint64_t v = state_.load();
  while ((v & 3) == vacant)
    if (state_.compare_exchange_weak(v, (v & ~std::uint64_t{3}) | ended)) {
      end(v >> 2);
      return;
    }
}

void io_role::wait_ended() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return ended_; });
}

void io_role::watch() {
  std::unique_lock lock(mu_);
  std::uint64_t last = lendings_.load();
  int quiet = 0;
  while (!stop_) {
    if (!watching_) {
      cv_.wait(lock, [&] { return stop_ || watching_.load(); });
      last = lendings_.load();
      quiet = 0;
      continue;
    }
    cv_.wait_for(lock, budget_);
    if (stop_) break;
    const std::uint64_t seen = lendings_.load();
    std::uint64_t v = state_.load();
    if ((v & 3) == lent && seen == last) {
      // The same handler has run one whole period at least: the role goes to a thread that is free.
      if (state_.compare_exchange_strong(v, (v & ~std::uint64_t{3}) | vacant)) {
        handoffs_.fetch_add(1, std::memory_order_relaxed);
        lock.unlock();
        vacate_();
        lock.lock();
      }
    } else if (seen == last && (v & 3) != lent && ++quiet >= 100) {
      // Nothing ran for 100 periods: sleep. An enter() that read watching_ as true just before this store has
      // stored `lent` first (both seq_cst), so the load below sees it and the monitor stays awake for it.
      watching_ = false;
      if ((state_.load() & 3) == lent) watching_ = true;
      quiet = 0;
    }
    if (seen != last) quiet = 0;
    last = seen;
  }
}

}  // namespace rpc::detail
