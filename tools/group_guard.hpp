// The guard of served commands: a small process, forked by rpc-serve at start, that ends the process groups of
// the commands still running if rpc-serve itself dies without ending them (SIGKILL, a crash, the OOM killer).
// rpc-serve tells it of each group as a command starts and again once the group is ended; when its pipe from
// rpc-serve reaches end-of-file, it sends SIGTERM to every group it still knows, SIGKILL a moment later, and exits.
// A command that leaves its process group (setsid) is beyond it, as it is beyond --timeout.
#pragma once

#include <sys/types.h>

namespace tools {

/// Forks the guard. Call it while the process has one thread: it forks without exec. Later calls do nothing.
/// Throws: std::runtime_error (with the reason) if the pipe or the fork fails.
void start_group_guard();

/// Tells the guard that `pgid` is a running command's process group. Does nothing if no guard was started or the
/// guard is gone. Thread-safe; never blocks; never throws.
void guard_group(pid_t pgid) noexcept;

/// Tells the guard that the group `pgid` has been ended (call it before reaping the group's leader, so that its
/// number cannot have been reused). Thread-safe; never blocks; never throws.
void unguard_group(pid_t pgid) noexcept;

}  // namespace tools
