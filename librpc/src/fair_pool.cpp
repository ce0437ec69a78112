#include "fair_pool.hpp"

#include <algorithm>

namespace rpc::detail {

fair_pool::fair_pool(limits l) : limits_([&] {
  l.threads = std::max<std::size_t>(l.threads, 1);
  l.per_client_running = std::max<std::size_t>(l.per_client_running, 1);
  return l;
}()) {
  for (std::size_t i = 0; i < limits_.threads; ++i) threads_.emplace_back([this] { work(); });
}

fair_pool::~fair_pool() {
  std::vector<std::function<void()>> dropped;  // destroyed outside the lock: a job's captures may take locks
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& [name, c] : clients_) {  // the entries stay: running jobs' threads still count themselves out
      for (auto& job : c.jobs) dropped.push_back(std::move(job));
      c.jobs.clear();
    }
    turns_.clear();
  }
  ready_.notify_all();
  for (auto& t : threads_) t.join();
}

fair_pool::refusal fair_pool::submit(const std::string& client, std::function<void()> job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return refusal::none;  // dropped, as queued jobs are at the end
    if (queued_ >= limits_.queued) return refusal::queue_full;
    client_queue& c = clients_[client];
    if (c.jobs.size() >= limits_.per_client_queued) return refusal::client_queue_full;
    c.jobs.push_back(std::move(job));
    ++queued_;
    if (c.in_turn || !may_run(c)) return refusal::none;  // it runs when its turn comes, or one of its calls ends
    c.in_turn = true;
    turns_.push_back(&c);
  }
  ready_.notify_one();
  return refusal::none;
}

void fair_pool::sweep() {
  std::lock_guard lock(mu_);
  std::erase_if(clients_, [](const auto& c) { return c.second.jobs.empty() && c.second.running == 0; });
}

void fair_pool::work() {
  std::unique_lock lock(mu_);
  for (;;) {
    ready_.wait(lock, [&] { return stopping_ || !turns_.empty(); });
    if (stopping_) return;
    client_queue& c = *turns_.front();
    turns_.pop_front();
    std::function<void()> job = std::move(c.jobs.front());
    c.jobs.pop_front();
    --queued_;
    ++c.running;
    c.in_turn = may_run(c);
    if (c.in_turn) turns_.push_back(&c);  // its next call waits behind the other clients' turns
    const bool more = !turns_.empty();
    lock.unlock();
    if (more) ready_.notify_one();  // submit() wakes one thread per client put in turn, not per call: pass it on
    job();
    job = nullptr;  // its captures go before the lock is taken again
    lock.lock();
    --c.running;
    if (!c.in_turn && may_run(c)) {  // it was held back by its running bound: its turn comes again
      c.in_turn = true;
      turns_.push_back(&c);
      // this thread takes the next turn itself: no other thread needs waking
    }
  }
}

}  // namespace rpc::detail
