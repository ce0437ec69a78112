// Internal: the server's handler threads, shared fairly among clients.
//
// Each client (a CURVE key, or one connection) has its own queue. A free thread takes the next call of the next
// client in turn (round robin), skipping clients that already have `per_client_running` calls running: so one
// client's backlog never delays another client's next call by more than one call per client ahead of it, and one
// client can never hold every thread. Queues are bounded, per client and in all; a call beyond a bound is refused
// at once (the server answers it with Overloaded) rather than held.
//
// With a `lead` function the pool also carries the server's I/O role (io_role.hpp): it runs one thread more than
// handlers may run at once, so a thread is always free to take the role when it falls vacant (vacate()), and the
// thread holding it may run a call itself (try_begin()/end()) when that call would run at once anyway. A duct's
// reader runs calls the same way (counted by try_begin(), on a thread of its own); when one runs long, a free
// thread reads for it meanwhile (vacate(job)): that thread is free because the long call counts as running.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace rpc::detail {

class fair_pool {
  struct client_queue;

 public:
  struct limits {
    std::size_t threads = 4;
    std::size_t per_client_running = 3;  ///< at least 1
    std::size_t per_client_queued = 256;
    std::size_t queued = 4096;  ///< across clients
  };
  enum class refusal { none, client_queue_full, queue_full };

  /// `lead`, if given, is run by a free thread each time vacate() is called (the first time too: the role starts
  /// vacant once the pool exists).
  explicit fair_pool(limits l, std::function<void()> lead = nullptr);
  /// stop()s.
  ~fair_pool();
  fair_pool(const fair_pool&) = delete;
  fair_pool& operator=(const fair_pool&) = delete;

  /// Drops the queued calls, lets the running ones finish, joins the threads. Running jobs may still call end(),
  /// submit() (which drops the job) and vacate() meanwhile. Call it from none of the pool's own threads.
  void stop();
  /// Queues `job` for `client`. Returns: refusal::none, or which bound refused it (the job is dropped then).
  refusal submit(const std::string& client, std::function<void()> job);
  /// A call try_begin() counted as running: true if it did. end() takes it back without looking its client up.
  class counted {
   public:
    counted() = default;
    explicit operator bool() const noexcept { return c_ != nullptr; }

   private:
    friend class fair_pool;
    explicit counted(client_queue* c) : c_(c) {}
    client_queue* c_ = nullptr;
  };
  /// Counts a call of `client` as running on the caller's own thread, if one may start now: no other call is
  /// waiting its turn, fewer than `threads` run, and the client runs fewer than its bound. Returns: whether it was
  /// counted (then end() must follow), else the call should be submit()ted.
  [[nodiscard]] counted try_begin(const std::string& client);
  /// A call counted by try_begin() has ended.
  void end(counted call);
  /// end(`done`), then try_begin(`client`), under one lock: for a thread running calls one after another.
  [[nodiscard]] counted end_and_begin(counted done, const std::string& client);
  /// As end_and_begin(), but without the lock when nothing is queued and `done` was `client`'s: its count then
  /// passes to the next call unchanged, which is all end_and_begin() would do. `done` may be empty (then it is
  /// try_begin()). Returns: what end_and_begin() or try_begin() would.
  [[nodiscard]] counted go_on(counted done, const std::string& client);
  /// The I/O role fell vacant: a free thread runs `lead`.
  void vacate();
  /// Another role fell vacant (a duct's reader runs a long call): a free thread runs `job`, before any queued
  /// call. Dropped if the pool is stopping.
  void vacate(std::function<void()> job);
  /// Forgets clients with nothing queued or running (their entries are kept between calls, to save an allocation
  /// per call of a client that calls one at a time).
  void sweep();
  /// Whether nothing runs (on the pool's threads or counted by try_begin()), waits, or waits for a thread to take it.
  [[nodiscard]] bool idle();
  [[nodiscard]] const limits& bounds() const noexcept { return limits_; }

 private:
  // A `counted` points at its client's entry: entries stay put (node-based map) and are not swept while a call of
  // theirs runs.
  struct client_queue {
    std::deque<std::function<void()>> jobs;
    std::size_t running = 0;
    bool in_turn = false;             // among turns_
    const std::string* key = nullptr;  // its client's name, the key in clients_
  };
  void work();
  [[nodiscard]] bool may_run(const client_queue& c) const { return !c.jobs.empty() && c.running < limits_.per_client_running; }
  [[nodiscard]] bool job_ready() const { return !turns_.empty() && running_ < limits_.threads; }
  /// calm_ brought up to date (mu_ held).
  void note_calm() { calm_.store(queued_ == 0 && !stopping_, std::memory_order_relaxed); }
  /// One of `c`'s calls has ended (mu_ held): its turn may come again.
  void ended(client_queue& c);
  /// `client`'s queue, made if it has none (mu_ held).
  client_queue& queue_of(const std::string& client);
  /// try_begin() with mu_ held; `last`, if set, is the queue of the caller's last call, likely `client`'s.
  counted begin(const std::string& client, client_queue* last);

  const limits limits_;
  std::mutex mu_;
  std::condition_variable ready_;
  std::unordered_map<std::string, client_queue> clients_;  // node-based: the pointers in turns_ stay valid
  std::deque<client_queue*> turns_;                        // clients with a call that may run now, in turn
  std::size_t queued_ = 0;
  std::size_t running_ = 0;  // calls running, on the pool's threads or counted by try_begin()
  const std::function<void()> lead_;
  std::deque<std::function<void()>> vacant_;  // roles waiting for a thread to take them (lead_ for the I/O role)
  bool stopping_ = false;
  // Nothing queued and not stopping, as of the last change under mu_: read without it by go_on(). A stale `true`
  // lets one more call of a run go on a moment after another was queued; the next go_on() sees it.
  std::atomic<bool> calm_{true};
  std::vector<std::thread> threads_;
};

}  // namespace rpc::detail
