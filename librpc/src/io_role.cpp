#include "io_role.hpp"

#include <poll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

#include <rpc/error.hpp>

namespace rpc::detail {
namespace {

int make_timer() {
  const int fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (fd < 0) throw error(std::string("the I/O role's timer: timerfd_create: ") + std::strerror(errno));
  return fd;
}

std::int64_t nanoseconds(io_role::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// At least 50 us (a smaller budget would hand on handlers that only took the time a thread takes to wake), and at
// most a century: a longer one (microseconds::max() for "never") would overflow in nanoseconds, and means the same.
std::int64_t budget_ns(std::chrono::microseconds budget) {
  constexpr std::chrono::microseconds least(50), most = std::chrono::hours(24 * 365 * 100);
  return std::chrono::nanoseconds(std::clamp(budget, least, most)).count();
}

}  // namespace

// steady_clock is CLOCK_MONOTONIC here, which the timer counts in too.
static_assert(std::chrono::steady_clock::is_steady);

io_role::io_role(std::chrono::microseconds budget, std::function<void()> vacate)
    : budget_(budget_ns(budget)),
      vacate_(std::move(vacate)),
      timer_fd_(make_timer()) {}

io_role::~io_role() {
  stop_monitor();
  ::close(timer_fd_);
}

void io_role::stop_monitor() {
  std::thread monitor;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    monitor.swap(monitor_);  // no enter() starts one after this
  }
  stop_wake_.signal();
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

void io_role::enter(ticket t, time_point now) noexcept {
  const std::int64_t at = nanoseconds(now);
  // Only the holder lends, and holders follow one another through state_: plain stores, not locked operations.
  lendings_.store(lendings_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  lent_since_.store(at, std::memory_order_relaxed);
  state_.store(t << 2 | lent);  // seq_cst, as the load of set_again_at_ below and the monitor's: see watch()
  if (at >= set_again_at_.load()) {
    set_timer(at + budget_);
    set_again_at_.store(at + budget_ / 2, std::memory_order_relaxed);
  }
  if (!monitor_started_.load(std::memory_order_relaxed)) start_monitor();
}

void io_role::start_monitor() noexcept {
  std::lock_guard lock(mu_);
  if (monitor_started_.load(std::memory_order_relaxed) || stop_) return;
  try {
    monitor_ = std::thread([this] { watch(); });
    monitor_started_.store(true, std::memory_order_relaxed);
  } catch (const std::system_error&) {
    // No thread to be had: handlers run where they arrive but never hand receiving on, as if the budget were
    // endless. The next lending tries again.
  }
}

void io_role::set_timer(std::int64_t at) noexcept {
  itimerspec when{};
  when.it_value.tv_sec = static_cast<time_t>(at / 1'000'000'000);
  when.it_value.tv_nsec = static_cast<long>(at % 1'000'000'000);
  (void)::timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &when, nullptr);  // cannot fail with a valid time
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

// Why no lending runs past its budget unseen: a lending that starts at s either sets the timer to s + budget itself,
// or finds it set by an earlier one (at r <= s, to r + budget) less than half a budget ago, so not yet fired. When it
// fires, the monitor first clears set_again_at_, then looks at state_; the holder stores state_ first, then reads
// set_again_at_ (all seq_cst). So of a lending that starts meanwhile, either the holder sees 0 and sets the timer,
// or the monitor sees it and sets the timer to its end. The monitor only ever sets the timer to the end of a
// lending it saw, which started no later than any lending after it.
void io_role::watch() {
  pollfd fds[] = {{timer_fd_, POLLIN, 0}, {stop_wake_.fd(), POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) continue;  // EINTR
    if (fds[1].revents & POLLIN) return;   // stop_monitor()
    if (!(fds[0].revents & POLLIN)) continue;
    std::uint64_t fired;
    if (::read(timer_fd_, &fired, sizeof fired) < 0) continue;  // set again since it fired: not due after all
    set_again_at_.store(0);
    const std::uint64_t seen = lendings_.load(std::memory_order_relaxed);
    std::uint64_t v = state_.load();
    if ((v & 3) != lent) continue;  // nothing runs: the next lending sets the timer
    const std::int64_t since = lent_since_.load(std::memory_order_relaxed);
    const std::int64_t now = nanoseconds(std::chrono::steady_clock::now());
    if (now - since < budget_ || lendings_.load(std::memory_order_relaxed) != seen) {
      set_timer(since + budget_);  // a lending younger than its budget (or one that just started): at its end
      continue;
    }
    // The same handler has run its whole budget: the role goes to a thread that is free.
    if (state_.compare_exchange_strong(v, (v & ~std::uint64_t{3}) | vacant)) {
      handoffs_.fetch_add(1, std::memory_order_relaxed);
      vacate_();
    }
  }
}

}  // namespace rpc::detail
