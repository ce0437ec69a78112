// duct::listener: bind, accept, authenticate. Per-transport work is in unix_transport.cpp and tcp_transport.cpp.
#include <duct/listener.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <duct/auth.hpp>

#include "transport.hpp"

namespace duct {

struct listener::state {
  bound_socket sock;
  options opts;
  bool tcp = false;
};

listener::listener() noexcept = default;
listener::listener(listener&&) noexcept = default;
listener& listener::operator=(listener&& other) noexcept {
  if (this != &other) {
    close();
    state_ = std::move(other.state_);
  }
  return *this;
}
listener::~listener() { close(); }

listener::listener(std::string_view address_text, const options& opts, int backlog) {
  duct::address a = parse_address(address_text);
  auto s = std::make_unique<state>();
  s->opts = opts;
  s->tcp = a.scheme == duct::address::kind::tcp;
  s->sock = s->tcp ? tcp_listen(a, backlog) : unix_listen(a, backlog);
  // Non-blocking, so that accept() cannot hang when a connection vanishes between poll and accept. Accepted sockets
  // do not inherit this on Linux: ducts are blocking sockets.
  int flags = ::fcntl(s->sock.fd.get(), F_GETFL);
  ::fcntl(s->sock.fd.get(), F_SETFL, flags | O_NONBLOCK);
  state_ = std::move(s);
}

connection listener::accept(timeout t) {
  if (!state_ || state_->sock.fd.get() < 0) throw closed_error("listener is closed", false);
  state& s = *state_;
  io::deadline d(t);
  for (;;) {
    if (!io::wait_for(s.sock.fd.get(), POLLIN, d, s.sock.address + ": accept"))
      throw timeout_error(s.sock.address + ": no connection accepted within the time limit");
    int fd = ::accept4(s.sock.fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      // The connection may have gone again before we took it; keep waiting for the next one.
      if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
      io::throw_errno(err, s.sock.address + ": accept");
    }
    if (s.tcp) tune_tcp(fd);
    connection c = connection::adopt(fd, s.opts, s.sock.address + " (accepted fd " + std::to_string(fd) + ")");
    if (s.opts.authkey) {
      io::deadline hd(s.opts.handshake_timeout);
      auth::deliver_challenge(c, *s.opts.authkey, hd.left());
      auth::answer_challenge(c, *s.opts.authkey, hd.left());
    }
    return c;
  }
}

const std::string& listener::address() const noexcept {
  static const std::string none;
  return state_ ? state_->sock.address : none;
}

int listener::fileno() const noexcept { return state_ ? state_->sock.fd.get() : -1; }

void listener::close() noexcept {
  if (!state_) return;
  bound_socket& b = state_->sock;
  if (b.fd.get() < 0) return;
  b.fd = io::fd_owner();
  if (b.owner == ::getpid()) {
    struct stat st{};
    if (!b.unix_path.empty() && ::lstat(b.unix_path.c_str(), &st) == 0 && st.st_ino == b.inode)
      ::unlink(b.unix_path.c_str());
    if (!b.private_dir.empty()) ::rmdir(b.private_dir.c_str());
  }
}

}  // namespace duct
