// Internal: the file behind an ipc:// endpoint. ZeroMQ, asked to bind ipc://PATH, unlinks whatever PATH is (a
// regular file, another server's live socket) and leaves its socket behind at exit. A server claims the path
// first instead: a live socket or a file that is not a socket is refused, a stale socket (its server died) is
// replaced, and the server removes its socket when it stops. "ipc://" with no path gets a socket in a fresh
// private directory (mode 0700), as duct's "unix:" does.
#pragma once

#include <string>
#include <string_view>

#include <sys/types.h>

namespace rpc::detail {

struct ipc_claim {
  std::string endpoint;     ///< what to bind: the endpoint as given, or ipc://DIR/rpc.sock for a private one
  std::string path;         ///< the socket file
  std::string private_dir;  ///< the directory made for it, if any
  ino_t inode = 0;          ///< the socket file's, once bound (release() removes only that file)
};

/// Claims the file of `endpoint` (ipc://PATH, or ipc:// for a private directory). Returns: the claim.
/// Throws: rpc::error naming the path when another server listens there, when it is not a socket, or when it
/// cannot be looked at.
ipc_claim claim_ipc_path(std::string_view endpoint);

/// Notes the inode of the socket bound at the claimed path, so that release() removes that socket and no other.
void note_bound(ipc_claim& claim) noexcept;

/// Removes the claimed socket (if it is still ours) and the private directory. Throws: nothing.
void release(const ipc_claim& claim) noexcept;

}  // namespace rpc::detail
