// duct::spawn and duct::from_env: a child process with a duct on an inherited descriptor.
#include <duct/spawn.hpp>

#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include "io.hpp"

extern char** environ;

namespace duct {
namespace {

int decode_status(int st) { return WIFSIGNALED(st) ? -WTERMSIG(st) : WEXITSTATUS(st); }

int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  long fd = ::syscall(SYS_pidfd_open, pid, 0);
  if (fd >= 0) {
    io::set_cloexec(static_cast<int>(fd), "pidfd");
    return static_cast<int>(fd);
  }
#endif
  return -1;
}

}  // namespace

child::child(child&& o) noexcept
    : duct_(std::move(o.duct_)), pid_(std::exchange(o.pid_, -1)), pidfd_(std::exchange(o.pidfd_, -1)),
      status_(o.status_) {}

child& child::operator=(child&& o) noexcept {
  if (this != &o) {
    release();
    duct_ = std::move(o.duct_);
    pid_ = std::exchange(o.pid_, -1);
    pidfd_ = std::exchange(o.pidfd_, -1);
    status_ = o.status_;
  }
  return *this;
}

child::~child() { release(); }

void child::release() noexcept {
  duct_.close();
  if (pid_ > 0 && !status_) {
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) status_ = decode_status(st);
  }
  io::close_fd(pidfd_);
  pidfd_ = -1;
}

int child::wait() {
  if (status_) return *status_;
  if (pid_ <= 0) throw usage_error("wait: no child process");
  int st = 0;
  for (;;) {
    if (::waitpid(pid_, &st, 0) == pid_) break;
    if (errno != EINTR) io::throw_errno(errno, "wait for child " + std::to_string(pid_));
  }
  status_ = decode_status(st);
  return *status_;
}

std::optional<int> child::wait(timeout t) {
  if (status_) return status_;
  if (pid_ <= 0) throw usage_error("wait: no child process");
  io::deadline d(t);
  auto backoff = std::chrono::milliseconds(1);
  for (;;) {
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = decode_status(st);
      return status_;
    }
    if (r < 0 && errno != EINTR) io::throw_errno(errno, "wait for child " + std::to_string(pid_));
    if (d.expired()) return std::nullopt;
    if (pidfd_ >= 0) {
      io::wait_for(pidfd_, POLLIN, d, "wait for child " + std::to_string(pid_));
    } else {
      ::poll(nullptr, 0, std::min(static_cast<int>(backoff.count()), d.infinite() ? 100 : d.poll_ms()));
      backoff = std::min(backoff * 2, std::chrono::milliseconds(100));
    }
  }
}

void child::kill(int signal) const {
  if (pid_ > 0 && !status_) ::kill(pid_, signal);
}

child spawn(const std::vector<std::string>& argv, const options& opts) {
  if (argv.empty()) throw usage_error("spawn: empty command line");
  auto [mine, theirs] = pair(true, opts);
  const int child_fd = theirs.fileno();

  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  std::string fd_var = std::string(fd_env) + "=" + std::to_string(child_fd);
  std::vector<char*> env;
  const std::string prefix = std::string(fd_env) + "=";
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, prefix.c_str(), prefix.size()) != 0) env.push_back(*e);
  env.push_back(fd_var.data());
  env.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 onto itself clears close-on-exec for this one descriptor in the child only (POSIX, glibc >= 2.29).
  posix_spawn_file_actions_adddup2(&actions, child_fd, child_fd);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) io::throw_errno(rc, "spawn: cannot start '" + argv[0] + "'");

  theirs.close();
  child c;
  c.duct_ = std::move(mine);
  c.pid_ = pid;
  c.pidfd_ = open_pidfd(pid);
  return c;
}

connection from_env(const options& opts) {
  const char* text = std::getenv(fd_env);
  if (!text || !*text) throw usage_error(std::string(fd_env) + " is not set: this process was not started by duct::spawn");
  int fd = -1;
  auto [end, ec] = std::from_chars(text, text + std::strlen(text), fd);
  if (ec != std::errc() || *end != '\0' || fd < 0)
    throw usage_error(std::string(fd_env) + "='" + text + "' is not a file descriptor number");
  struct stat st{};
  if (::fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
    throw usage_error(std::string(fd_env) + "=" + text + " does not name an open socket");
  io::set_cloexec(fd, "DUCT_FD");
  return connection::adopt(fd, opts, "DUCT_FD fd " + std::to_string(fd));
}

}  // namespace duct
