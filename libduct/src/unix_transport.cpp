// Unix-domain sockets: listen on a path or in a private directory, dial a path.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <duct/error.hpp>

#include "transport.hpp"

namespace duct {
namespace {

sockaddr_un make_sockaddr(const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path)
    throw address_error("unix:" + path + ": socket path longer than " + std::to_string(sizeof sa.sun_path - 1) +
                        " bytes");
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  return sa;
}

// Whether a socket bound at `path` is listening right now. Asked of /proc/net/unix rather than by connecting, since
// a probe connection would land in the live listener's queue as a phantom child. If we cannot tell, assume it is.
bool someone_listens(const std::string& path) {
  std::ifstream table("/proc/net/unix");
  if (!table) return true;
  std::string absolute = path;
  if (!path.starts_with('/')) {
    std::error_code ec;
    absolute = (std::filesystem::current_path(ec) / path).string();
  }
  constexpr unsigned long accepting = 0x10000;  // __SO_ACCEPTCON: the socket listens
  std::string line;
  std::getline(table, line);  // header
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string num, refcount, protocol, flags, type, state, inode, bound;
    if (!(fields >> num >> refcount >> protocol >> flags >> type >> state >> inode >> bound)) continue;
    if ((bound == path || bound == absolute) && (std::stoul(flags, nullptr, 16) & accepting)) return true;
  }
  return false;
}

std::string make_private_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/duct-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) io::throw_errno(errno, "unix: cannot create a private directory " + pattern);
  return pattern;  // mkdtemp makes it mode 0700
}

}  // namespace

bound_socket unix_listen(const address& a, int backlog) {
  bound_socket b;
  std::string path = a.path;
  if (a.scheme == address::kind::unix_private) {
    b.private_dir = make_private_dir();
    path = b.private_dir + "/duct.sock";
  }
  auto cleanup_dir = [&] {
    if (!b.private_dir.empty()) ::rmdir(b.private_dir.c_str());
  };
  try {
    sockaddr_un sa = make_sockaddr(path);
    b.fd = io::fd_owner(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (b.fd.get() < 0) io::throw_errno(errno, "unix:" + path + ": socket");
    if (::bind(b.fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) < 0) {
      int err = errno;
      // A socket file left by a listener that died is replaced; a live one is an error.
      struct stat st{};
      if (err == EADDRINUSE && ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && !someone_listens(path)) {
        ::unlink(path.c_str());
        if (::bind(b.fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) < 0) err = errno;
        else err = 0;
      }
      if (err != 0) io::throw_errno(err, "cannot listen on unix:" + path);
    }
    if (::listen(b.fd.get(), backlog) < 0) io::throw_errno(errno, "cannot listen on unix:" + path);
    struct stat st{};
    if (::lstat(path.c_str(), &st) == 0) b.inode = st.st_ino;
  } catch (...) {
    cleanup_dir();
    throw;
  }
  b.unix_path = path;
  b.address = "unix:" + path;
  b.owner = ::getpid();
  return b;
}

dial_result unix_dial(const address& a) {
  sockaddr_un sa = make_sockaddr(a.path);
  io::fd_owner fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return {-1, errno, false};
  for (;;) {
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) return {fd.release(), 0, false};
    int err = errno;
    if (err == EINTR) continue;
    bool retry = err == ENOENT || err == ECONNREFUSED || err == EAGAIN;
    return {-1, err, retry};
  }
}

std::string describe(const address& a) {
  if (a.scheme == address::kind::tcp) {
    bool v6 = a.host.find(':') != std::string::npos;
    return "tcp://" + (v6 ? "[" + a.host + "]" : a.host) + ":" + a.port;
  }
  return "unix:" + a.path;
}

}  // namespace duct
