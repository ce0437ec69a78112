// Internal: system-call helpers shared by the transports. errno becomes a duct error in exactly one place.
#pragma once

#include <poll.h>

#include <chrono>
#include <string>

#include <duct/connection.hpp>
#include <duct/error.hpp>

namespace duct::io {

using clock = std::chrono::steady_clock;

/// An absolute time limit derived from a duct::timeout (negative: none).
class deadline {
 public:
  explicit deadline(timeout t) : infinite_(t.count() < 0), at_(infinite_ ? clock::time_point::max() : clock::now() + t) {}
  /// The earlier of this deadline and `t` from now (`t` forever: this one).
  [[nodiscard]] deadline within(timeout t) const {
    deadline d(t);
    return d.infinite_ || (!infinite_ && at_ <= d.at_) ? *this : d;
  }
  [[nodiscard]] bool infinite() const noexcept { return infinite_; }
  [[nodiscard]] bool expired() const noexcept { return !infinite_ && clock::now() >= at_; }
  /// What is left as a duct::timeout (forever when infinite, zero when expired).
  [[nodiscard]] timeout left() const noexcept;
  /// Milliseconds left, rounded up, for poll(): -1 when infinite, 0 when expired.
  [[nodiscard]] int poll_ms() const noexcept;

 private:
  bool infinite_;
  clock::time_point at_;
};

/// Throws the duct error that `err` (an errno value) means for operation `what`; the message is
/// "<what>: <strerror>". The mapping table lives in io.cpp.
[[noreturn]] void throw_errno(int err, const std::string& what);

/// Waits for `events` on `fd` until the deadline. Returns: false if the time ran out. Retries EINTR.
/// Throws: error if poll itself fails.
bool wait_for(int fd, short events, const deadline& d, const std::string& what);

/// Sets FD_CLOEXEC on `fd`. Throws: error.
void set_cloexec(int fd, const std::string& what);

/// Closes `fd` if it is not negative, keeping errno.
void close_fd(int fd) noexcept;

/// An owned descriptor.
class fd_owner {
 public:
  fd_owner() = default;
  explicit fd_owner(int fd) noexcept : fd_(fd) {}
  fd_owner(fd_owner&& o) noexcept : fd_(o.release()) {}
  fd_owner& operator=(fd_owner&& o) noexcept {
    if (this != &o) {
      close_fd(fd_);
      fd_ = o.release();
    }
    return *this;
  }
  fd_owner(const fd_owner&) = delete;
  fd_owner& operator=(const fd_owner&) = delete;
  ~fd_owner() { close_fd(fd_); }
  [[nodiscard]] int get() const noexcept { return fd_; }
  int release() noexcept {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace duct::io
