// Internal: the server's I/O role (receiving on the ROUTER, heartbeats, timers) as a token that moves between
// threads, in the manner of a leader/follower pool or Go's sysmon handing a processor on when a thread blocks.
//
// The thread holding the role runs a short handler itself, where its call arrived: no thread wakes for it. Before
// it does, it lends the role (enter()); a monitor thread checks every `budget`, and a handler still running one
// whole period later loses the role: it becomes vacant and `vacate` is called, which lets an idle thread take it
// (take()). The lender learns on its return (leave()) whether it still holds it. So a handler that blocks or spins
// holds up receiving and heartbeats for at most about two budgets.
//
// The monitor thread starts when a handler is first lent the role, ticks while handlers keep running, and sleeps
// again after 100 quiet periods: an idle server costs nothing, a busy one a timer tick per period. A server has one
// role for its ROUTER and one per duct it serves (link_core), whose reader runs handlers the same way.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

namespace rpc::detail {

class io_role {
 public:
  /// Which taking of the role a holder has: what enter(), leave() and mine() are asked about.
  using ticket = std::uint64_t;

  /// `vacate` is called (by the monitor, without locks) each time the role becomes vacant and must be taken.
  /// The role starts vacant: the first take() has it.
  io_role(std::chrono::microseconds budget, std::function<void()> vacate);
  /// Stops the monitor.
  ~io_role();
  io_role(const io_role&) = delete;
  io_role& operator=(const io_role&) = delete;

  /// Takes the vacant role. Returns: the holder's ticket, or 0 if the role has ended (end()) or is not vacant.
  ticket take() noexcept;
  /// The holder is about to run a handler: the role is lent to it until leave().
  void enter(ticket t) noexcept;
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

  const std::chrono::microseconds budget_;
  const std::function<void()> vacate_;
  std::atomic<std::uint64_t> state_{vacant};
  std::atomic<std::uint64_t> lendings_{0};  // counts enter(): the monitor tells one long handler from many short ones
  std::atomic<bool> watching_{false};       // the monitor ticks (else it sleeps until an enter() wakes it)
  std::atomic<std::uint64_t> handoffs_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool ended_ = false;
  std::thread monitor_;
};

}  // namespace rpc::detail
