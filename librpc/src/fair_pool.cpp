#include "fair_pool.hpp"

#include <algorithm>

namespace rpc::detail {

fair_pool::fair_pool(limits l, std::function<void()> lead) : limits_([&] {
  l.threads = std::max<std::size_t>(l.threads, 1);
  l.per_client_running = std::max<std::size_t>(l.per_client_running, 1);
  return l;
}()), lead_(std::move(lead)) {
  // With the I/O role, one thread more: `threads` may run handlers while another holds the role.
  const std::size_t n = limits_.threads + (lead_ ? 1 : 0);
  for (std::size_t i = 0; i < n; ++i) threads_.emplace_back([this] { work(); });
}

fair_pool::~fair_pool() { stop(); }

void fair_pool::stop() {
  std::vector<std::function<void()>> dropped;  // destroyed outside the lock: a job's captures may take locks
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    note_calm();
    for (auto& [name, c] : clients_) {  // the entries stay: running jobs' threads still count themselves out
      for (auto& job : c.jobs) dropped.push_back(std::move(job));
      c.jobs.clear();
    }
    turns_.clear();
    for (auto& job : vacant_) dropped.push_back(std::move(job));
    vacant_.clear();
  }
  ready_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

fair_pool::refusal fair_pool::submit(const std::string& client, std::function<void()> job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return refusal::none;  // dropped, as queued jobs are at the end
    if (queued_ >= limits_.queued) return refusal::queue_full;
    client_queue& c = queue_of(client);
    if (c.jobs.size() >= limits_.per_client_queued) return refusal::client_queue_full;
    c.jobs.push_back(std::move(job));
    ++queued_;
    note_calm();
    if (c.in_turn || !may_run(c)) return refusal::none;  // it runs when its turn comes, or one of its calls ends
    c.in_turn = true;
    turns_.push_back(&c);
  }
  ready_.notify_one();
  return refusal::none;
}

fair_pool::counted fair_pool::try_begin(const std::string& client) {
  std::lock_guard lock(mu_);
  return begin(client, nullptr);
}

fair_pool::counted fair_pool::begin(const std::string& client, client_queue* last) {
  if (stopping_ || !turns_.empty() || running_ >= limits_.threads) return {};
  // A run of calls from one client (the usual batch) looks it up once.
  client_queue& c = last && *last->key == client ? *last : queue_of(client);
  if (c.running >= limits_.per_client_running) return {};
  ++c.running;
  ++running_;
  return counted(&c);
}

fair_pool::client_queue& fair_pool::queue_of(const std::string& client) {
  auto [it, fresh] = clients_.try_emplace(client);
  if (fresh) it->second.key = &it->first;  // node-based: the key stays where it is
  return it->second;
}

void fair_pool::end(counted call) {
  bool wake;
  {
    std::lock_guard lock(mu_);
    ended(*call.c_);
    wake = job_ready();
  }
  if (wake) ready_.notify_one();
}

fair_pool::counted fair_pool::end_and_begin(counted done, const std::string& client) {
  bool wake;
  counted next;
  {
    std::lock_guard lock(mu_);
    ended(*done.c_);
    next = begin(client, done.c_);
    wake = job_ready();
  }
  if (wake) ready_.notify_one();
  return next;
}

fair_pool::counted fair_pool::go_on(counted done, const std::string& client) {
  if (done && calm_.load(std::memory_order_relaxed) && *done.c_->key == client) return done;
  return done ? end_and_begin(done, client) : try_begin(client);
}

void fair_pool::ended(client_queue& c) {
  --c.running;
  --running_;
  if (!c.in_turn && may_run(c)) {  // it was held back by its running bound: its turn comes again
    c.in_turn = true;
    turns_.push_back(&c);
  }
}

void fair_pool::vacate() { vacate(lead_); }

void fair_pool::vacate(std::function<void()> job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    vacant_.push_back(std::move(job));
  }
  // Every waiting thread may be one the running bound holds back: wake them all, the first takes the role.
  ready_.notify_all();
}

bool fair_pool::idle() {
  std::lock_guard lock(mu_);
  return running_ == 0 && queued_ == 0 && vacant_.empty();
}

void fair_pool::sweep() {
  std::lock_guard lock(mu_);
  std::erase_if(clients_, [](const auto& c) { return c.second.jobs.empty() && c.second.running == 0; });
}

void fair_pool::work() {
  std::unique_lock lock(mu_);
  for (;;) {
    ready_.wait(lock, [&] { return stopping_ || !vacant_.empty() || job_ready(); });
    if (stopping_) return;
    if (!vacant_.empty()) {
      std::function<void()> role = std::move(vacant_.front());
      vacant_.pop_front();
      lock.unlock();
      role();
      role = nullptr;
      lock.lock();
      continue;
    }
    client_queue& c = *turns_.front();
    turns_.pop_front();
    std::function<void()> job = std::move(c.jobs.front());
    c.jobs.pop_front();
    --queued_;
    note_calm();
    ++c.running;
    ++running_;
    c.in_turn = may_run(c);
    if (c.in_turn) turns_.push_back(&c);  // its next call waits behind the other clients' turns
    const bool more = job_ready();
    lock.unlock();
    if (more) ready_.notify_one();  // submit() wakes one thread per client put in turn, not per call: pass it on
    job();
    job = nullptr;  // its captures go before the lock is taken again
    lock.lock();
    ended(c);  // if its turn comes again, this thread takes the next turn itself: no other thread needs waking
  }
}

}  // namespace rpc::detail
