// Internal, sans-I/O: deferred calls ("jobs") by token, for the _ductrpc_* built-ins. Owned by the server's I/O
// thread; time comes in as arguments.
//
// A job runs like any call, but nobody waits on its channel: its outcome is kept under a token until keep_results
// after it finished, and any client (another process too) may poll it, wait for it (the server holds the request
// until the outcome or the wait's limit) or cancel it. Fetching is repeatable until the outcome expires.
//
// The store is bounded, and what one client keeps never displaces what another has not fetched yet: it counts each
// client's jobs and the bytes of their kept outcomes; to make room it drops only outcomes that have been fetched at
// least once (the client's own first, for a client's budget), and otherwise says no, for the server to refuse the
// new work with Overloaded.
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
  std::string client;  ///< whose budget it counts against: the owner's key, or the connection without CURVE
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
  job& create(std::string method, std::string owner = {}, std::string client = {});
  /// Tokens made from now on begin with `prefix` (a broker's worker names itself so: broker_wire.hpp).
  void set_prefix(std::string prefix) { prefix_ = std::move(prefix); }
  [[nodiscard]] const std::string& prefix() const noexcept { return prefix_; }
  /// Returns: the job with that token, or nullptr (never existed, or expired).
  job* find(const std::string& token) noexcept;
  [[nodiscard]] std::size_t size() const noexcept { return jobs_.size(); }
  /// Jobs of `client` kept now (running or finished), and the bytes of its kept outcomes.
  [[nodiscard]] std::size_t jobs_of(const std::string& client) const noexcept;
  [[nodiscard]] std::size_t bytes_of(const std::string& client) const noexcept;
  [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }
  /// Whether `client` may start one more job: fewer than `max_jobs` in all and `client_jobs` of its own, and its
  /// kept outcomes under `client_bytes` (and everyone's under `total_bytes`). Makes room by dropping outcomes
  /// already fetched: the client's own first, then (for the totals) anyone's.
  bool room_for(const std::string& client, std::size_t max_jobs, std::size_t client_jobs, std::size_t client_bytes,
                std::size_t total_bytes);
  /// Keeps `outcome` ("OK" or "ERR" args) as the finished outcome of running job `j`, if it fits the budgets
  /// (after dropping fetched outcomes as room_for() does); `force` keeps it regardless (a small cancellation).
  /// Returns: whether it was kept; if not, `j` is unchanged.
  bool keep(job& j, std::string name, duct::buffer outcome, std::size_t client_bytes, std::size_t total_bytes,
            bool force = false);
  /// Forgets job `token` (one whose start was refused).
  void erase(const std::string& token) noexcept;
  /// Drops finished jobs older than `keep`. Returns: how many of them had never been collected.
  std::size_t expire(clock::time_point now, clock::duration keep);
  /// Every job, for _ductrpc_list and for cancelling on shutdown.
  std::vector<job*> all();
  /// The waiters whose limit has passed, removed from their jobs, with the job they waited for.
  std::vector<std::pair<job*, job_waiter>> overdue_waiters(clock::time_point now);
  /// When the earliest waiter's limit passes or, with `keep`, the earliest finished job expires (expire()), if any.
  [[nodiscard]] std::optional<clock::time_point> next_deadline(
      std::optional<clock::duration> keep = std::nullopt) const noexcept;

 private:
  struct usage {
    std::size_t jobs = 0;
    std::size_t bytes = 0;
  };
  /// Drops fetched outcomes, `client`'s own (or, empty, anyone's) oldest first, until `fits()`. Returns: fits().
  template <class Fits>
  bool drop_fetched(const std::string& client, Fits fits);
  void forget(std::unordered_map<std::string, job>::iterator it) noexcept;

  std::unordered_map<std::string, job> jobs_;
  std::unordered_map<std::string, usage> usage_;  // by client
  std::size_t bytes_ = 0;
  std::string prefix_;
};

}  // namespace rpc::detail
