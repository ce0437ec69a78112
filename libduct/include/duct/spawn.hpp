// Starting a child process with a duct to it.
//
//   duct::child worker = duct::spawn({"./worker", "--fast"});
//   worker.duct().send(task);
//   auto result = worker.duct().recv();
//   int status = worker.wait();                       // exit code, or -signal
//
//   // in ./worker:
//   duct::connection parent = duct::from_env();       // the end named by DUCT_FD
//
// The child's end is the only descriptor the child inherits besides stdin, stdout and stderr: everything libduct
// opens is close-on-exec. A plain fork() works too: both ends of a pair() survive it; each process closes the end
// it does not use.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include <duct/connection.hpp>

namespace duct {

/// The environment variable that names the child's duct descriptor.
inline constexpr const char* fd_env = "DUCT_FD";

/// A child process started by spawn(), with the parent's end of its duct.
class child {
 public:
  child() = default;
  child(child&&) noexcept;
  child& operator=(child&&) noexcept;
  /// Closes the duct (which tells a well-behaved child to finish) and reaps the child if it has already exited.
  ~child();

  [[nodiscard]] connection& duct() noexcept { return duct_; }
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

  /// Waits for the child to exit.
  /// Returns: its exit code, or minus the signal that ended it (as Python's returncode).
  /// Throws: error if the child was already waited for.
  int wait();
  /// As wait(), but gives up after `t`. Returns: the status, or an empty optional if the child is still running.
  std::optional<int> wait(timeout t);
  /// Sends `signal` to the child, unless it has already been waited for.
  void kill(int signal) const;

 private:
  friend child spawn(const std::vector<std::string>& argv, const options& opts);
  void release() noexcept;
  connection duct_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::optional<int> status_;
};

/// Starts `argv` (searched in PATH) with one end of a new duct on an inherited descriptor whose number is in the
/// child's DUCT_FD environment variable.
/// Throws: error naming the program if it cannot be started (not found, not executable).
child spawn(const std::vector<std::string>& argv, const options& opts = {});

/// In a child started by spawn(): the duct to the parent. The descriptor is made close-on-exec so it is not passed
/// on further.
/// Throws: usage_error if DUCT_FD is unset, malformed or not an open socket.
connection from_env(const options& opts = {});

}  // namespace duct
