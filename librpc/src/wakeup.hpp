// Internal: an eventfd that other threads signal to wake a thread blocked in poll() or zmq_poll().
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include <rpc/error.hpp>

namespace rpc::detail {

class wakeup {
 public:
  wakeup() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (fd_ < 0) throw error(std::string("eventfd: ") + std::strerror(errno));
  }
  ~wakeup() { ::close(fd_); }
  wakeup(const wakeup&) = delete;
  wakeup& operator=(const wakeup&) = delete;

  [[nodiscard]] int fd() const noexcept { return fd_; }
  void signal() noexcept {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(fd_, &one, sizeof one);
  }
  void drain() noexcept {
    std::uint64_t count;
    [[maybe_unused]] auto n = ::read(fd_, &count, sizeof count);
  }

 private:
  int fd_;
};

}  // namespace rpc::detail
