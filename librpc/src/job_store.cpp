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

job& job_store::create(std::string method, std::string owner) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string token;
  do {
    std::array<unsigned char, 16> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1)
      throw error("cannot make a token: OpenSSL's random generator failed");
    token.clear();
    for (unsigned char b : bytes) {
      token += hex[b >> 4];
      token += hex[b & 15];
    }
  } while (jobs_.count(token));
  job& j = jobs_[token];
  j.token = token;
  j.method = std::move(method);
  j.owner = std::move(owner);
  return j;
}

job* job_store::find(const std::string& token) noexcept {
  auto it = jobs_.find(token);
  return it == jobs_.end() ? nullptr : &it->second;
}

std::size_t job_store::expire(clock::time_point now, clock::duration keep) {
  std::size_t uncollected = 0;
  std::erase_if(jobs_, [&](const auto& entry) {
    const job& j = entry.second;
    bool old = j.state != job_state::running && now - j.finished > keep;
    if (old && !j.collected) ++uncollected;
    return old;
  });
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

std::optional<clock::time_point> job_store::next_deadline() const noexcept {
  std::optional<clock::time_point> earliest;
  for (const auto& [token, j] : jobs_)
    for (const auto& w : j.waiters)
      if (!earliest || w.deadline < *earliest) earliest = w.deadline;
  return earliest;
}

}  // namespace rpc::detail
