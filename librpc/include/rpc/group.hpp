// rpc::group: one call made on several servers at once (junction's broadcast RPC), with every server's own result
// or error in the answer, in the order the servers were added.
//
//   rpc::group replicas;
//   replicas.add("tcp://10.0.0.1:4242");
//   replicas.add("tcp://10.0.0.2:4242");
//   for (const rpc::outcome& o : replicas.call_all_for(std::chrono::seconds(2), "reload", "config.json"))
//     if (!o.ok()) std::cerr << o.endpoint << ": " << o.message() << "\n";
//
// Each member has its own rpc::client, so a slow or dead server delays only its own outcome (bounded by the time
// limit, or by two heartbeat periods of silence), never the others'.
#pragma once

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rpc/client.hpp>

namespace rpc {

/// What one member of a group answered.
struct outcome {
  std::string endpoint;               ///< the member, as its client names it
  std::optional<duct::value> result;  ///< set if the call succeeded
  std::exception_ptr error;           ///< set if it failed: remote_error, timeout_error, lost_remote_error, ...

  [[nodiscard]] bool ok() const noexcept { return !error; }
  /// Returns: the result. Throws: the error, if the call failed.
  [[nodiscard]] const duct::value& value() const {
    if (error) std::rethrow_exception(error);
    return *result;
  }
  /// The error's message, or empty if the call succeeded.
  [[nodiscard]] std::string message() const;
};

class group {
 public:
  /// `opts` is used for every member's client (its timeout is call_all()'s default limit).
  explicit group(client_options opts = {}) : opts_(opts) {}

  /// Adds a ZeroMQ server (tcp://HOST:PORT or ipc://PATH). Throws: error for an endpoint ZeroMQ cannot parse.
  void add(std::string_view endpoint) { members_.push_back(std::make_unique<client>(endpoint, opts_)); }
  /// Adds the server at the other end of a duct. Throws: closed_error if the link is closed.
  void add(const link& over) { members_.push_back(std::make_unique<client>(over, opts_)); }
  [[nodiscard]] std::size_t size() const noexcept { return members_.size(); }

  /// Calls `method` on every member at once and waits for all of them (each within the members' default limit).
  /// Returns: one outcome per member, in the order they were added. Never throws for a member's failure.
  template <class... Args>
  std::vector<outcome> call_all(std::string_view method, const Args&... args) {
    std::vector<future> pending;
    for (auto& m : members_) pending.push_back(start(*m, [&](client& c) { return c.async_call(method, args...); }));
    return collect(pending);
  }
  /// As call_all(), each member's call limited to `limit`.
  template <class... Args>
  std::vector<outcome> call_all_for(std::chrono::milliseconds limit, std::string_view method, const Args&... args) {
    std::vector<future> pending;
    for (auto& m : members_)
      pending.push_back(start(*m, [&](client& c) { return c.async_call_for(limit, method, args...); }));
    return collect(pending);
  }

 private:
  // A call that cannot even start (a closed link) becomes that member's error, not the group's.
  template <class Start>
  static future start(client& c, Start how) {
    try {
      return how(c);
    } catch (...) {
      return future::failed(std::current_exception());
    }
  }
  std::vector<outcome> collect(std::vector<future>& pending);

  client_options opts_;
  std::vector<std::unique_ptr<client>> members_;
};

}  // namespace rpc
