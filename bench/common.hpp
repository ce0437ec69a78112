// What the RPC benchmarks share: their command line ([--quick] [--json FILE] [--node-peer PATH/peer.js]), and
// servers forked into processes of their own.
#pragma once

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <string>
#include <utility>
#include <time.h>
#include <vector>

#include <duct/connection.hpp>
#include <rpc/link.hpp>
#include <rpc/server.hpp>

struct bench_options {
  bool quick = false;     ///< one short round: that the benchmark runs, not what it measures
  std::string json_path;  ///< where to write the rows as JSON, if anywhere
  std::string node_peer;  ///< the zerorpc-node peer script, if installed
};

/// Parses the command line; prints the usage and exits 2 on anything else.
inline bench_options parse_bench_options(int argc, char** argv, const char* name) {
  bench_options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") o.quick = true;
    else if (a == "--json" && i + 1 < argc) o.json_path = argv[++i];
    else if (a == "--node-peer" && i + 1 < argc) o.node_peer = argv[++i];
    else {
      std::cerr << "usage: " << name << " [--quick] [--json FILE] [--node-peer PATH/peer.js]\n";
      std::exit(2);
    }
  }
  return o;
}

/// In a forked server: end when the benchmark does, even if it crashes or is killed (else the server would wait
/// for calls for ever).
inline void die_with(pid_t parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(1);  // it ended before prctl() took effect
}

/// An ipc:// endpoint in a fresh private directory.
inline std::string private_ipc(const char* name) {
  // The directories, removed with their sockets when the benchmark exits; not by a forked child that exits
  // (a server of the benchmark's): the benchmark may still use them.
  struct made_dirs {
    pid_t by = ::getpid();
    std::vector<std::string> dirs;
    ~made_dirs() {
      if (::getpid() != by) return;
      for (const auto& d : dirs) {
        std::error_code ignored;
        std::filesystem::remove_all(d, ignored);
      }
    }
  };
  static made_dirs made;
  char dir[] = "/tmp/ductrpc-bench-XXXXXX";
  if (!::mkdtemp(dir)) throw std::runtime_error("mkdtemp");
  made.dirs.emplace_back(dir);
  return std::string("ipc://") + dir + "/" + name;
}

/// Binds a benchmark's methods on a server.
using binder = void (*)(rpc::server&);

/// A server in a child process: its pid, and the endpoint it listens on (a tcp:// port 0 resolved).
struct served {
  pid_t pid = -1;
  std::string endpoint;
};

/// Forks a child that runs `serve(endpoint, ready)` until killed; `serve` calls `ready(actual endpoint)` once it
/// listens. Returns once it has.
template <class Serve>
served fork_serving(const std::string& endpoint, Serve serve) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe");
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork");
  if (pid == 0) {
    die_with(parent);
    ::close(fds[0]);
    serve(endpoint, [fd = fds[1]](const std::string& actual) {
      const std::string line = actual + "\n";
      if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) ::_exit(1);
      ::close(fd);
    });
    ::_exit(0);
  }
  ::close(fds[1]);
  served s{pid, ""};
  char c;
  while (::read(fds[0], &c, 1) == 1 && c != '\n') s.endpoint += c;
  ::close(fds[0]);
  if (s.endpoint.empty()) throw std::runtime_error("a benchmark server did not start on " + endpoint);
  return s;
}

/// Runs our server in its default configuration (only a name given), its methods bound by `bind`, in a child
/// process on `endpoint` until killed.
inline served fork_rpc_server(const std::string& endpoint, binder bind) {
  return fork_serving(endpoint, [bind](const std::string& ep, auto ready) {
    rpc::server s({.name = "bench"});
    bind(s);
    ready(s.listen(ep));
    s.start();
    for (;;) ::pause();
  });
}

/// Runs our server (default configuration) in a child process serving the other end of a duct, until killed.
inline pid_t fork_link_server(rpc::link& parent_end, duct::connection child_end, binder bind) {
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    die_with(parent);
    parent_end.close();
    rpc::link up(std::move(child_end));
    rpc::server s({.name = "bench"});
    bind(s);
    s.listen(up);
    s.start();
    for (;;) ::pause();
  }
  child_end.close();
  return pid;
}

/// CPU time (user and system, all threads) of this process and of other processes (servers, brokers), since
/// construction or reset(). Far steadier than wall-clock rates on a shared VM, whose speed drifts: it counts the
/// work, not the waiting.
class cpu_meter {
 public:
  /// `others`: the processes whose CPU time counts with ours (-1 or a process we cannot read: none).
  explicit cpu_meter(std::vector<pid_t> others) {
    for (pid_t p : others) {
      clockid_t c{};
      if (p > 0 && ::clock_getcpuclockid(p, &c) == 0) clocks_.push_back(c);
    }
    reset();
  }
  explicit cpu_meter(pid_t server = -1) : cpu_meter(std::vector<pid_t>{server}) {}
  void reset() { start_ = now(); }
  /// Microseconds of CPU all the processes used since reset().
  [[nodiscard]] double us() const { return now() - start_; }

 private:
  [[nodiscard]] double now() const {
    double sum = read(CLOCK_PROCESS_CPUTIME_ID);
    for (clockid_t c : clocks_) sum += read(c);
    return sum;
  }
  static double read(clockid_t c) {
    timespec t{};
    ::clock_gettime(c, &t);
    return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_nsec) / 1e3;
  }
  std::vector<clockid_t> clocks_;
  double start_ = 0;
};

/// The `p` quantile of `v` (0 <= p <= 1; 0 if empty), interpolated between the two nearest of its sorted values.
inline double quantile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double at = p * static_cast<double>(v.size() - 1);
  const auto i = static_cast<std::size_t>(at);
  return i + 1 < v.size() ? v[i] + (v[i + 1] - v[i]) * (at - static_cast<double>(i)) : v[i];
}

/// The median of `v` (0 if empty): what each benchmark row reports over its rounds.
inline double median(std::vector<double> v) { return quantile(std::move(v), 0.5); }

/// Kills a child started here and reaps it.
inline void stop_child(pid_t pid) {
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}
