// Internal: the server's handler threads, shared fairly among clients.
//
// Each client (a CURVE key, or one connection) has its own queue. A free thread takes the next call of the next
// client in turn (round robin), skipping clients that already have `per_client_running` calls running: so one
// client's backlog never delays another client's next call by more than one call per client ahead of it, and one
// client can never hold every thread. Queues are bounded, per client and in all; a call beyond a bound is refused
// at once (the server answers it with Overloaded) rather than held.
#pragma once

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
 public:
  struct limits {
    std::size_t threads = 4;
    std::size_t per_client_running = 3;  ///< at least 1
    std::size_t per_client_queued = 256;
    std::size_t queued = 4096;  ///< across clients
  };
  enum class refusal { none, client_queue_full, queue_full };

  explicit fair_pool(limits l);
  /// Drops the queued calls, lets the running ones finish, joins the threads.
  ~fair_pool();
  fair_pool(const fair_pool&) = delete;
  fair_pool& operator=(const fair_pool&) = delete;

  /// Queues `job` for `client`. Returns: refusal::none, or which bound refused it (the job is dropped then).
  refusal submit(const std::string& client, std::function<void()> job);
  /// Forgets clients with nothing queued or running (their entries are kept between calls, to save an allocation
  /// per call of a client that calls one at a time).
  void sweep();
  [[nodiscard]] const limits& bounds() const noexcept { return limits_; }

 private:
  struct client_queue {
    std::deque<std::function<void()>> jobs;
    std::size_t running = 0;
    bool in_turn = false;  // among turns_
  };
  void work();
  [[nodiscard]] bool may_run(const client_queue& c) const { return !c.jobs.empty() && c.running < limits_.per_client_running; }

  const limits limits_;
  std::mutex mu_;
  std::condition_variable ready_;
  std::unordered_map<std::string, client_queue> clients_;  // node-based: the pointers in turns_ stay valid
  std::deque<client_queue*> turns_;                        // clients with a call that may run now, in turn
  std::size_t queued_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace rpc::detail
