// System-call helpers and the one errno-to-error table.
#include "io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace duct::io {

int deadline::poll_ms() const noexcept {
  if (infinite_) return -1;
  auto left = at_ - clock::now();
  if (left <= clock::duration::zero()) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return ms > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(ms);
}

timeout deadline::left() const noexcept {
  if (infinite_) return forever;
  return timeout{poll_ms()};
}

void throw_errno(int err, const std::string& what) {
  std::error_code code(err, std::generic_category());
  std::string msg = what + ": " + std::strerror(err);
  switch (err) {
    case EPIPE:
    case ECONNRESET:
    case ENOTCONN:
    case ESHUTDOWN: throw closed_error(msg, false, code);
    case ETIMEDOUT: throw timeout_error(msg);
    case EADDRINUSE:
    case EADDRNOTAVAIL:
    case EAFNOSUPPORT:
    case ENAMETOOLONG:
    case ENOENT:
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EACCES: throw address_error(msg, code);
    case EBADF:
    case ENOTSOCK: throw usage_error(msg, code);
    default: throw error(msg, code);
  }
}

bool wait_for(int fd, short events, const deadline& d, const std::string& what) {
  for (;;) {
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, d.poll_ms());
    if (r > 0) return true;
    if (r == 0) {
      if (d.expired()) return false;
      continue;  // woke a little early: ceil rounding makes this rare
    }
    if (errno != EINTR) throw_errno(errno, what + ": poll");
  }
}

void set_cloexec(int fd, const std::string& what) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0 || ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) throw_errno(errno, what + ": fcntl");
}

void close_fd(int fd) noexcept {
  if (fd >= 0) {
    int saved = errno;
    ::close(fd);
    errno = saved;
  }
}

}  // namespace duct::io
