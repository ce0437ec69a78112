#include "job_store.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <array>

#include <rpc/error.hpp>

namespace rpc::detail {

const char* to_string(job_state s) noexcept {
  switch (s) {
    case job_state::running: return "running";
    case job_state::done: return "done";
    case job_state::failed: return "failed";
    case job_state::cancelled: return "cancelled";
  }
  return "?";
}

job& job_store::create(std::string method, std::string owner, std::string client) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string token;
  do {
    std::array<unsigned char, 16> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1)
      throw error("cannot make a token: OpenSSL's random generator failed");
    token = prefix_;
    for (unsigned char b : bytes) {
      token += hex[b >> 4];
      token += hex[b & 15];
    }
  } while (jobs_.count(token));
  job& j = jobs_[token];
  j.token = token;
  j.method = std::move(method);
  j.owner = std::move(owner);
  j.client = std::move(client);
  ++usage_[j.client].jobs;
  return j;
}

std::size_t job_store::jobs_of(const std::string& client) const noexcept {
  auto it = usage_.find(client);
  return it == usage_.end() ? 0 : it->second.jobs;
}

std::size_t job_store::bytes_of(const std::string& client) const noexcept {
  auto it = usage_.find(client);
  return it == usage_.end() ? 0 : it->second.bytes;
}

void job_store::forget(std::unordered_map<std::string, job>::iterator it) noexcept {
  auto u = usage_.find(it->second.client);
  if (u != usage_.end()) {
    u->second.bytes -= it->second.outcome.size();
    if (--u->second.jobs == 0) usage_.erase(u);
  }
  bytes_ -= it->second.outcome.size();
  jobs_.erase(it);
}

void job_store::erase(const std::string& token) noexcept {
  if (auto it = jobs_.find(token); it != jobs_.end()) forget(it);
}

template <class Fits>
bool job_store::drop_fetched(const std::string& client, Fits fits) {
  if (fits()) return true;
  std::vector<std::unordered_map<std::string, job>::iterator> fetched;
  for (auto it = jobs_.begin(); it != jobs_.end(); ++it)
    if (it->second.collected && it->second.state != job_state::running && (client.empty() || it->second.client == client))
      fetched.push_back(it);
  std::sort(fetched.begin(), fetched.end(), [](auto a, auto b) { return a->second.finished < b->second.finished; });
  for (auto it : fetched) {
    forget(it);
    if (fits()) return true;
  }
  return false;
}

bool job_store::room_for(const std::string& client, std::size_t max_jobs, std::size_t client_jobs,
                         std::size_t client_bytes, std::size_t total_bytes) {
  return drop_fetched(client, [&] { return jobs_of(client) < client_jobs && bytes_of(client) < client_bytes; }) &&
         drop_fetched({}, [&] { return jobs_.size() < max_jobs && bytes_ < total_bytes; });
}

bool job_store::keep(job& j, std::string name, duct::buffer outcome, std::size_t client_bytes, std::size_t total_bytes,
                     bool force) {
  const std::size_t n = outcome.size();
  const std::string client = j.client;  // `j` stays: only finished jobs are dropped, and it is running
  if (!force && !(drop_fetched(client, [&] { return bytes_of(client) + n <= client_bytes; }) &&
                  drop_fetched({}, [&] { return bytes_ + n <= total_bytes; })))
    return false;
  usage_[client].bytes += n;
  bytes_ += n;
  j.outcome_name = std::move(name);
  j.outcome = std::move(outcome);
  return true;
}

job* job_store::find(const std::string& token) noexcept {
  auto it = jobs_.find(token);
  return it == jobs_.end() ? nullptr : &it->second;
}

std::size_t job_store::expire(clock::time_point now, clock::duration keep) {
  std::size_t uncollected = 0;
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    const job& j = it->second;
    if (j.state != job_state::running && now - j.finished > keep) {
      if (!j.collected) ++uncollected;
      forget(it++);
    } else {
      ++it;
    }
  }
  return uncollected;
}

std::vector<job*> job_store::all() {
  std::vector<job*> out;
  for (auto& [token, j] : jobs_) out.push_back(&j);
  return out;
}

std::vector<std::pair<job*, job_waiter>> job_store::overdue_waiters(clock::time_point now) {
  std::vector<std::pair<job*, job_waiter>> out;
  for (auto& [token, j] : jobs_) {
    auto late = std::partition(j.waiters.begin(), j.waiters.end(), [&](const job_waiter& w) { return w.deadline > now; });
    for (auto it = late; it != j.waiters.end(); ++it) out.emplace_back(&j, *it);
    j.waiters.erase(late, j.waiters.end());
  }
  return out;
}

std::optional<clock::time_point> job_store::next_deadline(std::optional<clock::duration> keep) const noexcept {
  std::optional<clock::time_point> earliest;
  auto consider = [&](clock::time_point t) {
    if (!earliest || t < *earliest) earliest = t;
  };
  for (const auto& [token, j] : jobs_) {
    for (const auto& w : j.waiters) consider(w.deadline);
    // expire() drops a job once strictly more than `keep` has passed
    if (keep && j.state != job_state::running) consider(j.finished + *keep + clock::duration(1));
  }
  return earliest;
}

}  // namespace rpc::detail
