// What the RPC benchmarks share: their command line ([--quick] [--json FILE] [--node-peer PATH/peer.js]), and
// servers forked into processes of their own.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <string>

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

/// An ipc:// endpoint in a fresh private directory.
inline std::string private_ipc(const char* name) {
  char dir[] = "/tmp/ductrpc-bench-XXXXXX";
  if (!::mkdtemp(dir)) throw std::runtime_error("mkdtemp");
  return std::string("ipc://") + dir + "/" + name;
}

/// Binds a benchmark's methods on a server.
using binder = void (*)(rpc::server&);

/// Runs our server, its methods bound by `bind`, in a child process on `endpoint` until killed.
inline pid_t fork_rpc_server(const std::string& endpoint, binder bind) {
  pid_t pid = ::fork();
  if (pid == 0) {
    rpc::server s({.name = "bench", .threads = 2});
    bind(s);
    s.listen(endpoint);
    s.start();
    for (;;) ::pause();
  }
  return pid;
}

/// Runs our server in a child process serving the other end of a duct, until killed.
inline pid_t fork_link_server(rpc::link& parent_end, duct::connection child_end, binder bind) {
  pid_t pid = ::fork();
  if (pid == 0) {
    parent_end.close();
    rpc::link up(std::move(child_end));
    rpc::server s({.name = "bench", .threads = 2});
    bind(s);
    s.listen(up);
    s.start();
    for (;;) ::pause();
  }
  child_end.close();
  return pid;
}

/// Kills a child started here and reaps it.
inline void stop_child(pid_t pid) {
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}
