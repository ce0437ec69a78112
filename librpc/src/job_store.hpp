// Internal, sans-I/O: deferred calls ("jobs") by token, for the _ductrpc_* built-ins. Owned by the server's I/O
// thread; time comes in as arguments.
//
// A job runs like any call, but nobody waits on its channel: its outcome is kept under a token until keep_results
// after it finished, and any client (another process too) may poll it, wait for it (the server holds the request
// until the outcome or the wait's limit) or cancel it. Fetching is repeatable until the outcome expires.
#pragma once

#include <chrono>
#include <optional>
#include <stop_token>
#include <string>
#include <unordered_map>
#include <vector>

#include <duct/buffer.hpp>
#include <rpc/event.hpp>

#include "channel.hpp"

namespace rpc::detail {

enum class job_state { running, done, failed, cancelled };

/// "running", "done", "failed" or "cancelled".
const char* to_string(job_state s) noexcept;

/// A client holding a _ductrpc_wait request open.
struct job_waiter {
  std::string identity;
  message_id channel;
  clock::time_point deadline;
};

struct job {
  std::string token;
  std::string method;
  std::string owner;  ///< the CURVE public key (Z85) of the client that started it; empty without CURVE
  job_state state = job_state::running;
  std::stop_source stop;
  std::string outcome_name;  ///< "OK" or "ERR" once finished
  duct::buffer outcome;      ///< the packed args of that OK or ERR
  clock::time_point finished{};
  std::vector<job_waiter> waiters;
  bool collected = false;  ///< its outcome has been handed to a client at least once
};

class job_store {
 public:
  /// Starts a job for `method`, owned by `owner` (a CURVE key, or empty). Returns: it, with a fresh token of 128
  /// bits from OpenSSL's CSPRNG: a token is a bearer secret.
  /// Throws: rpc::error if the CSPRNG fails.
  job& create(std::string method, std::string owner = {});
  /// Returns: the job with that token, or nullptr (never existed, or expired).
  job* find(const std::string& token) noexcept;
  [[nodiscard]] std::size_t size() const noexcept { return jobs_.size(); }
  /// Drops finished jobs older than `keep`. Returns: how many of them had never been collected.
  std::size_t expire(clock::time_point now, clock::duration keep);
  /// Every job, for _ductrpc_list and for cancelling on shutdown.
  std::vector<job*> all();
  /// The waiters whose limit has passed, removed from their jobs, with the job they waited for.
  std::vector<std::pair<job*, job_waiter>> overdue_waiters(clock::time_point now);
  /// When the earliest waiter's limit passes, if any.
  [[nodiscard]] std::optional<clock::time_point> next_deadline() const noexcept;

 private:
  std::unordered_map<std::string, job> jobs_;
};

}  // namespace rpc::detail
