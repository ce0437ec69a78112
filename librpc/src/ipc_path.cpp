// Claiming the file behind an ipc:// endpoint. See ipc_path.hpp.
#include "ipc_path.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <rpc/error.hpp>

namespace rpc::detail {
namespace {

[[noreturn]] void refuse(const std::string& endpoint, const std::string& why) {
  throw error("cannot listen on " + endpoint + ": " + why);
}

// Whether a server accepts connections on the socket at `path`.
bool live(const std::string& path) {
  sockaddr_un sa{};
  if (path.size() >= sizeof sa.sun_path) return false;  // ZeroMQ refuses it anyway
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool connected = ::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0;
  ::close(fd);
  return connected;
}

}  // namespace

ipc_claim claim_ipc_path(std::string_view endpoint) {
  ipc_claim c;
  c.endpoint = std::string(endpoint);
  c.path = std::string(endpoint.substr(6));  // after "ipc://"
  if (c.path.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/ductrpc-XXXXXX";
    if (::mkdtemp(dir.data()) == nullptr)  // mode 0700
      refuse(c.endpoint, "cannot create a private directory " + dir + ": " + std::strerror(errno));
    c.private_dir = dir;
    c.path = dir + "/rpc.sock";
    c.endpoint = "ipc://" + c.path;
    return c;
  }
  struct stat st {};
  if (::lstat(c.path.c_str(), &st) != 0) {
    if (errno == ENOENT) return c;
    refuse(c.endpoint, c.path + ": " + std::strerror(errno));
  }
  if (!S_ISSOCK(st.st_mode)) refuse(c.endpoint, c.path + " exists and is not a socket: it is left as it is");
  if (live(c.path)) refuse(c.endpoint, "another server listens on " + c.path);
  if (::unlink(c.path.c_str()) != 0 && errno != ENOENT)  // a stale socket, whose server died
    refuse(c.endpoint, "cannot remove the stale socket " + c.path + ": " + std::strerror(errno));
  return c;
}

void note_bound(ipc_claim& claim) noexcept {
  struct stat st {};
  if (::lstat(claim.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) claim.inode = st.st_ino;
}

void release(const ipc_claim& claim) noexcept {
  struct stat st {};
  if (claim.inode != 0 && ::lstat(claim.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == claim.inode)
    ::unlink(claim.path.c_str());
  if (!claim.private_dir.empty()) ::rmdir(claim.private_dir.c_str());
}

}  // namespace rpc::detail
