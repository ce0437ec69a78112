// TCP: listen (port 0 picks one), dial with a bounded connect.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include <duct/error.hpp>

#include "transport.hpp"

namespace duct {
namespace {

using addrinfo_ptr = std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)>;

addrinfo_ptr resolve(const address& a, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(a.host.c_str(), a.port.c_str(), &hints, &res);
  if (rc != 0) {
    throw address_error(describe(a) + ": cannot resolve host: " +
                        (rc == EAI_SYSTEM ? std::string(std::strerror(errno)) : ::gai_strerror(rc)));
  }
  return {res, &::freeaddrinfo};
}

std::string numeric(const sockaddr* sa, socklen_t len) {
  char host[NI_MAXHOST], port[NI_MAXSERV];
  if (::getnameinfo(sa, len, host, sizeof host, port, sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) != 0) return "?";
  std::string h = host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";
  return "tcp://" + h + ":" + port;
}

}  // namespace

void tune_tcp(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

bound_socket tcp_listen(const address& a, int backlog) {
  addrinfo_ptr list = resolve(a, true);
  int last_err = EADDRNOTAVAIL;
  for (addrinfo* ai = list.get(); ai; ai = ai->ai_next) {
    io::fd_owner fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (fd.get() < 0) {
      last_err = errno;
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) < 0 || ::listen(fd.get(), backlog) < 0) {
      last_err = errno;
      continue;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
    bound_socket b;
    b.address = numeric(reinterpret_cast<sockaddr*>(&ss), len);
    b.fd = std::move(fd);
    b.owner = ::getpid();
    return b;
  }
  io::throw_errno(last_err, "cannot listen on " + describe(a));
}

dial_result tcp_dial(const address& a, const io::deadline& d) {
  addrinfo_ptr list = resolve(a, false);
  dial_result last{-1, ECONNREFUSED, true};
  for (addrinfo* ai = list.get(); ai; ai = ai->ai_next) {
    io::fd_owner fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
    if (fd.get() < 0) return {-1, errno, false};
    int rc = ::connect(fd.get(), ai->ai_addr, ai->ai_addrlen);
    int err = rc == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      if (!io::wait_for(fd.get(), POLLOUT, d, describe(a) + ": connect")) return {-1, ETIMEDOUT, true};
      socklen_t len = sizeof err;
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    }
    if (err == 0) {
      int flags = ::fcntl(fd.get(), F_GETFL);
      ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
      tune_tcp(fd.get());
      return {fd.release(), 0, false};
    }
    last = {-1, err, err == ECONNREFUSED || err == ETIMEDOUT || err == EAGAIN};
  }
  return last;
}

}  // namespace duct
