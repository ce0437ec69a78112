// Writing to a file descriptor, for the tools (a command's stdin, stdout).
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstddef>

namespace tools {

/// Writes all `n` bytes at `p` to `fd`, retrying after interruptions and short writes.
/// Returns: false if `fd` refused them (EPIPE: nobody reads it any more; other errors alike).
inline bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace tools
