// Internal: per-transport listen and dial, used by listener.cpp and connect.cpp.
#pragma once

#include <sys/types.h>

#include <string>

#include "address.hpp"
#include "io.hpp"

namespace duct {

/// A listening socket and what is needed to clean up after it.
struct bound_socket {
  io::fd_owner fd;
  std::string address;      ///< canonical address with the real port or path
  std::string unix_path;    ///< socket file to remove on close (empty for TCP)
  std::string private_dir;  ///< directory to remove on close ("unix:" only)
  ino_t inode = 0;          ///< of the socket file, so we never remove one that replaced ours
  pid_t owner = 0;          ///< the process that bound it; only it removes the files
};

bound_socket unix_listen(const address& a, int backlog);
bound_socket tcp_listen(const address& a, int backlog);

/// The outcome of one connection attempt.
struct dial_result {
  int fd = -1;      ///< connected socket, or -1
  int error = 0;    ///< errno when fd is -1
  bool retry = false;  ///< nobody listens yet (no socket file, refused, backlog full): worth trying again
};

/// One attempt to connect. A Unix connect succeeds, is refused or finds the backlog full at once: no deadline.
dial_result unix_dial(const address& a);
/// One attempt to connect; blocks at most until `d`.
dial_result tcp_dial(const address& a, const io::deadline& d);

/// "unix:PATH" or "tcp://HOST:PORT" for messages.
std::string describe(const address& a);

/// Makes a connected TCP socket suitable for small messages (no Nagle delay).
void tune_tcp(int fd);

}  // namespace duct
