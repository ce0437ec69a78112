// Internal: the server's I/O role (receiving on the ROUTER, heartbeats, timers) as a token that moves between
// threads, in the manner of a leader/follower pool or Go's sysmon handing a processor on when a thread blocks.
//
// The thread holding the role runs a short handler itself, where its call arrived: no thread wakes for it. Before
// it does, it lends the role (enter()); a handler still running one budget after its enter() loses the role: it
// becomes vacant and `vacate` is called, which lets an idle thread take it (take()). The lender learns on its
// return (leave()) whether it still holds it. So a handler that blocks or spins holds up receiving and heartbeats
// for about one budget.
//
// Who looks: a monitor thread asleep on a timer (a timerfd) that the holder keeps set to at most one budget after
// the start of any lending. The holder does not set it for every lending, only when the last setting is half a
// budget old: so while short handlers keep coming, the timer is pushed on about twice a budget and never fires,
// and the monitor sleeps throughout. When it fires, the monitor looks at the lending in progress: one a budget
// old loses the role; a younger one gets the timer set to its own budget's end. A monitor that woke on a clock
// tick instead (1,000 times a second for a 1 ms budget) cost measurably in calls per second on a 2-vCPU VM
// (bench/README.md). A server has one role for its ROUTER and one per duct it serves (link_core), whose reader
// runs handlers the same way.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include "wakeup.hpp"

namespace rpc::detail {

class io_role {
 public:
  /// Which taking of the role a holder has: what enter(), leave() and mine() are asked about.
  using ticket = std::uint64_t;
  using time_point = std::chrono::steady_clock::time_point;

  /// `vacate` is called (by the monitor, without locks) each time the role becomes vacant and must be taken.
  /// The role starts vacant: the first take() has it. Throws: error if no timer can be made (timerfd_create).
  io_role(std::chrono::microseconds budget, std::function<void()> vacate);
  /// Stops the monitor.
  ~io_role();
  io_role(const io_role&) = delete;
  io_role& operator=(const io_role&) = delete;

  /// Takes the vacant role. Returns: the holder's ticket, or 0 if the role has ended (end()) or is not vacant.
  ticket take() noexcept;
  /// The holder is about to run a handler, at `now`: the role is lent to it until leave().
  void enter(ticket t, time_point now) noexcept;
  void enter(ticket t) noexcept { enter(t, std::chrono::steady_clock::now()); }
  /// The handler has returned. Returns: whether the holder still has the role (false: it went to another thread,
  /// and this one holds nothing now).
  bool leave(ticket t) noexcept;
  /// Whether the role is vacant: it went from a long handler, and no take() has it yet.
  [[nodiscard]] bool waiting() const noexcept;
  /// Whether `t` still holds the role (held or lent).
  [[nodiscard]] bool mine(ticket t) const noexcept;
  /// The holder gives the role up for good: the server stops. Threads waiting in wait_ended() go on.
  void end(ticket t);
  /// Ends the role unless a thread holds it: then that thread ends it, when it sees the server stopping.
  void end_if_vacant();
  /// Waits until end().
  void wait_ended();
  /// Stops the monitor; no vacate() is called after this returns.
  void stop_monitor();
  /// How many times a handler passed its budget and the role went to another thread.
  [[nodiscard]] std::uint64_t handoffs() const noexcept { return handoffs_.load(std::memory_order_relaxed); }

 private:
  // state_ is ticket << 2 | how: the ticket of the last taking, and whether it is held, lent, vacant or ended.
  enum : std::uint64_t { held = 0, lent = 1, vacant = 2, ended = 3 };
  void watch();
  void start_monitor() noexcept;
  /// Sets the timer to fire at `at` (nanoseconds of the steady clock).
  void set_timer(std::int64_t at) noexcept;

  const std::int64_t budget_;  // nanoseconds
  const std::function<void()> vacate_;
  std::atomic<std::uint64_t> state_{vacant};
  // Both written by the holder before it stores `lent` (so the monitor, seeing `lent`, sees them) and read by the
  // monitor: which lending this is, and when it started (nanoseconds of the steady clock).
  std::atomic<std::uint64_t> lendings_{0};
  std::atomic<std::int64_t> lent_since_{0};
  // From when a lending sets the timer again (0: the next one does). The holder's, but the monitor clears it when
  // the timer has fired, since nothing is then set for the next lending.
  std::atomic<std::int64_t> set_again_at_{0};
  const int timer_fd_;
  wakeup stop_wake_;
  std::atomic<bool> monitor_started_{false};
  std::atomic<std::uint64_t> handoffs_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool ended_ = false;
  std::thread monitor_;
};

}  // namespace rpc::detail
