// duct::pair(): two connected ducts over a socketpair, as multiprocessing.Pipe().
#include <sys/socket.h>

#include <cerrno>

#include <duct/connection.hpp>

#include "io.hpp"

namespace duct {

std::pair<connection, connection> pair(bool duplex, const options& opts) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) io::throw_errno(errno, "socketpair");
  io::fd_owner a(fds[0]), b(fds[1]);
  std::string name_a = "socketpair fd " + std::to_string(fds[0]);
  std::string name_b = "socketpair fd " + std::to_string(fds[1]);
  if (duplex) {
    return {connection::adopt(a.release(), opts, std::move(name_a)),
            connection::adopt(b.release(), opts, std::move(name_b))};
  }
  // The kernel enforces the direction too, so a forked or exec'd holder of an end cannot misuse it either.
  ::shutdown(a.get(), SHUT_WR);
  ::shutdown(b.get(), SHUT_RD);
  return {connection::adopt(a.release(), opts, std::move(name_a), direction::receive_only),
          connection::adopt(b.release(), opts, std::move(name_b), direction::send_only)};
}

}  // namespace duct
