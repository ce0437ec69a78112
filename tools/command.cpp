// Running a command with pipes. See command.hpp.
#include "command.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <thread>

#include "fd_io.hpp"
#include "group_guard.hpp"

extern char** environ;

namespace tools {
namespace {

constexpr std::size_t err_keep = 4096;

struct pipe_pair {
  int read = -1, write = -1;
  pipe_pair() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    read = fds[0];
    write = fds[1];
  }
  ~pipe_pair() {
    close_read();
    close_write();
  }
  void close_read() {
    if (read >= 0) ::close(read);
    read = -1;
  }
  void close_write() {
    if (write >= 0) ::close(write);
    write = -1;
  }
};

// An item of the chunked request as the bytes it stands for on stdin: a string's or bytes' own, anything else as
// a JSON line.
void write_item(int fd, const duct::value& item, bool& open) {
  const msgpack::object& o = item.get();
  if (o.type == msgpack::type::STR) open = write_all(fd, o.via.str.ptr, o.via.str.size);
  else if (o.type == msgpack::type::BIN) open = write_all(fd, o.via.bin.ptr, o.via.bin.size);
  else {
    std::string line = item.to_json() + "\n";
    open = write_all(fd, line.data(), line.size());
  }
}

}  // namespace

command_result run_command(const std::vector<std::string>& argv, const command_options& opts) {
  if (argv.empty()) throw std::runtime_error("an empty command");
  pipe_pair in, out, err;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.read, 0);
  posix_spawn_file_actions_adddup2(&actions, out.write, 1);
  posix_spawn_file_actions_adddup2(&actions, err.write, 2);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // The command starts in a process group of its own (so that a limit or a cancellation ends all of it, the
  // children of a shell script included) with no signal blocked and every signal at its default: rpc-serve blocks
  // SIGINT and SIGTERM and ignores SIGPIPE for itself, which a command must not inherit.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(rc));
  guard_group(pid);  // if rpc-serve dies now, its guard ends the group
  // Ends what is left of the group (children that outlived the command and hold none of its pipes, too) and
  // reaps the command. The group is killed before its leader is reaped, while its number cannot be reused.
  auto end_group = [pid](int* status) {
    ::kill(-pid, SIGKILL);
    unguard_group(pid);
    while (::waitpid(pid, status, 0) < 0 && errno == EINTR) {
    }
  };
  // Readable once the command itself has exited: a command that closes its stdout and stderr and runs on is still
  // held to its limit and to a cancellation.
  // (a syscall: glibc 2.36's <sys/pidfd.h> declares pidfd_open without C linkage)
  const int leader = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (leader < 0) {
    const int e = errno;
    end_group(nullptr);
    throw std::runtime_error("cannot watch " + argv[0] + ": pidfd_open: " + std::strerror(e));
  }
  struct fd_closer {
    int fd;
    ~fd_closer() { ::close(fd); }
  } leader_closer{leader};
  in.close_read();
  out.close_write();
  err.close_write();

  // stdin: fed from the request by a thread of its own (a write may block while the command is busy). Once the
  // command is over, the rest of the request is not wanted: cancelling the source ends the feeder's wait.
  std::thread feeder;
  if (opts.input) {
    feeder = std::thread([&] {
      bool open = true;
      try {
        while (open) {
          auto item = opts.input->next();
          if (!item) break;
          write_item(in.write, *item, open);
        }
      } catch (const std::exception&) {
        // the request ended with an error (or the command is over): the command gets what came before it
      }
      in.close_write();
    });
  } else {
    in.close_write();
  }
  auto stop_feeding = [&] {
    if (!feeder.joinable()) return;
    opts.input->cancel();
    feeder.join();
  };

  command_result r;
  // A cancellation wakes the loop at once, through a pipe, instead of waiting for its next look.
  pipe_pair woken;
  std::stop_callback on_stop(opts.stop, [&woken] {
    const char byte = 1;
    (void)!::write(woken.write, &byte, 1);
  });
  try {
    using clock = std::chrono::steady_clock;
    const auto started = clock::now();
    std::string partial;  // a streamed stdout's line so far
    // TERM to the whole group at the limit (or on cancellation); KILL to it a moment later if anything is left;
    // and the call ends a moment after that even if something outside the group still holds the pipes open.
    constexpr auto kill_grace = std::chrono::milliseconds(50), pipe_grace = std::chrono::milliseconds(50);
    std::optional<clock::time_point> hard_kill_at, give_up_at;
    auto kill_it = [&](bool& flag, clock::time_point now) {
      flag = true;
      ::kill(-pid, SIGTERM);
      hard_kill_at = now + kill_grace;
    };
    bool exited = false;
    while (out.read >= 0 || err.read >= 0 || !exited) {
      auto now = clock::now();
      if (!hard_kill_at && opts.limit && now - started >= *opts.limit) kill_it(r.timed_out, now);
      if (!hard_kill_at && opts.stop.stop_requested()) kill_it(r.cancelled, now);
      if (hard_kill_at && now >= *hard_kill_at && !give_up_at) {
        ::kill(-pid, SIGKILL);  // it ignored SIGTERM
        give_up_at = now + pipe_grace;
      }
      if (give_up_at && now >= *give_up_at) break;  // a process that left the group holds the pipes: not ours
      // Sleep until output comes, a cancellation, or the next deadline.
      std::optional<clock::time_point> next = give_up_at ? give_up_at : hard_kill_at;
      if (!next && opts.limit) next = started + *opts.limit;
      int wait_ms = -1;
      if (next)
        wait_ms = static_cast<int>(std::max<std::int64_t>(
            0, std::chrono::ceil<std::chrono::milliseconds>(*next - now).count()));
      pollfd fds[4] = {{out.read, POLLIN, 0}, {err.read, POLLIN, 0}, {woken.read, POLLIN, 0},
                       {exited ? -1 : leader, POLLIN, 0}};
      ::poll(fds, 4, wait_ms);
      if (fds[3].revents & POLLIN) exited = true;
      char buf[65536];
      for (int i = 0; i < 2; ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        int fd = i == 0 ? out.read : err.read;
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          (i == 0 ? out : err).close_read();
          continue;
        }
        if (i == 1) {
          r.err_tail.append(buf, static_cast<std::size_t>(n));
          if (r.err_tail.size() > 2 * err_keep) r.err_tail.erase(0, r.err_tail.size() - err_keep);
        } else if (opts.on_bytes) {
          opts.on_bytes(std::string(buf, static_cast<std::size_t>(n)));
        } else if (opts.on_line) {
          partial.append(buf, static_cast<std::size_t>(n));
          for (std::size_t nl; (nl = partial.find('\n')) != std::string::npos;) {
            opts.on_line(partial.substr(0, nl));
            partial.erase(0, nl + 1);
          }
        } else {
          if (r.out.size() + static_cast<std::size_t>(n) > opts.max_output) {
            throw std::runtime_error(argv[0] + " wrote more than " + std::to_string(opts.max_output) + " bytes");
          }
          r.out.append(buf, static_cast<std::size_t>(n));
        }
      }
    }
    if (opts.on_line && !partial.empty()) opts.on_line(partial);
  } catch (...) {  // the output outgrew its limit, or the stream it went to failed: the command goes too
    ::kill(-pid, SIGKILL);
    stop_feeding();
    end_group(nullptr);
    throw;
  }
  stop_feeding();
  int status = 0;
  end_group(&status);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  if (r.err_tail.size() > err_keep) r.err_tail.erase(0, r.err_tail.size() - err_keep);
  return r;
}

}  // namespace tools
