// The guard of served commands' process groups. See group_guard.hpp.
#include "group_guard.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace tools {
namespace {

// What rpc-serve writes: a group, and whether it starts (1) or has been ended (0). Eight bytes, well under
// PIPE_BUF, so writes from several threads never interleave.
struct record {
  std::int32_t pgid;
  std::int32_t running;
};

int guard_fd = -1;  // the write end of the pipe to the guard; -1 without a guard

void tell(pid_t pgid, bool running) noexcept {
  if (guard_fd < 0 || pgid <= 0) return;
  const record r{static_cast<std::int32_t>(pgid), running ? 1 : 0};
  // Non-blocking: the guard reads as fast as records come, so a full pipe means it is gone or stuck, and then a
  // command must not wait for it. EPIPE (the guard is gone) arrives as an error: rpc-serve ignores SIGPIPE.
  while (::write(guard_fd, &r, sizeof r) < 0 && errno == EINTR) {
  }
}

void sleep_ms(long ms) {
  timespec t{ms / 1000, (ms % 1000) * 1'000'000};
  while (::nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
}

// The guard's whole life: keep the set of running groups until the pipe ends, then end what is left.
[[noreturn]] void guard(int from) {
  ::prctl(PR_SET_NAME, "rpc-serve-guard");
  // Only the end of the pipe ends it: a Ctrl-C or a SIGTERM to rpc-serve's process group must leave it to clean up
  // after rpc-serve.
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) ::signal(sig, SIG_IGN);
  // It holds nothing of rpc-serve's: no socket, and no stdout or stderr that a caller might be waiting on to close.
  if (from != 3) {
    ::dup2(from, 3);
    ::close(from);
  }
  ::close_range(4, ~0U, 0);
  const int null = ::open("/dev/null", O_RDWR);
  for (int fd = 0; fd < 3; ++fd) ::dup2(null, fd);
  if (null > 2) ::close(null);

  std::vector<pid_t> groups;
  record r{};
  for (;;) {
    const ssize_t n = ::read(3, &r, sizeof r);
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof r)) break;  // end of file: rpc-serve is gone (records are never split)
    if (r.running) {
      groups.push_back(r.pgid);
    } else {
      for (auto it = groups.begin(); it != groups.end(); ++it) {
        if (*it == r.pgid) {
          groups.erase(it);
          break;
        }
      }
    }
  }
  if (!groups.empty()) {
    for (pid_t g : groups) ::kill(-g, SIGTERM);
    sleep_ms(100);
    for (pid_t g : groups) ::kill(-g, SIGKILL);
  }
  ::_exit(0);
}

}  // namespace

void start_group_guard() {
  if (guard_fd >= 0) return;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("cannot start the command guard: pipe: ") + std::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    throw std::runtime_error(std::string("cannot start the command guard: fork: ") + std::strerror(e));
  }
  if (pid == 0) {
    ::close(fds[1]);
    guard(fds[0]);
  }
  ::close(fds[0]);
  ::fcntl(fds[1], F_SETFL, O_NONBLOCK);
  guard_fd = fds[1];  // close-on-exec: a command never holds it, so only rpc-serve's end ends the guard
}

void guard_group(pid_t pgid) noexcept { tell(pgid, true); }
void unguard_group(pid_t pgid) noexcept { tell(pgid, false); }

}  // namespace tools
