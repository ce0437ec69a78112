// stream-bench: streamed replies (rpc::sink -> rpc::source) against raw ZeroMQ PUSH/PULL moving the same sizes (the
// ceiling: no events, no credit, no heartbeats), over ipc; the same stream over a duct to a forked worker; and the
// zerorpc-node server's stream when it is installed. Small items (an int each) in items/s, and 64 KiB chunks in
// GB/s. Servers run in forked processes, consumers here; raw and ours alternate over three rounds, best of each.
// Prints a table; writes the rows as JSON with --json.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <duct/connection.hpp>
#include <duct/spawn.hpp>
#include <nlohmann/json.hpp>
#include <rpc/client.hpp>
#include <rpc/link.hpp>
#include <rpc/server.hpp>
#include <zmq.hpp>

#include "common.hpp"

using steady = std::chrono::steady_clock;

namespace {

constexpr int chunk_size = 64 * 1024;

void bind_methods(rpc::server& s) {
  s.bind("ints", [](rpc::sink& out, int n) {
    for (int i = 0; i < n; ++i) out.write(i);
  });
  s.bind("chunks", [](rpc::sink& out, int n) {
    std::vector<unsigned char> chunk(chunk_size, 0x5a);
    for (int i = 0; i < n; ++i) out.write(chunk);
  });
}

// The ceiling: a PUSH in a child process sends `n` messages of `size` bytes, a PULL here takes them.
double raw_push_pull(int n, std::size_t size) {
  std::string endpoint = private_ipc("raw.ipc");
  // Fork before this process makes a ZeroMQ context: a child forked from a process with ZeroMQ's threads running
  // inherits their locks and fds. The child stays until the parent has taken every message: ZeroMQ may drop
  // what the receiving side has not read yet when the sending process goes away.
  int bound[2], done[2];
  if (::pipe(bound) != 0 || ::pipe(done) != 0) throw std::runtime_error("pipe");
  pid_t pid = ::fork();
  if (pid == 0) {
    zmq::context_t child_ctx;
    zmq::socket_t push(child_ctx, zmq::socket_type::push);
    push.bind(endpoint);
    char c = 1;
    if (::write(bound[1], &c, 1) != 1) ::_exit(1);
    std::vector<char> payload(size, 'x');
    for (int i = 0; i <= n; ++i) push.send(zmq::buffer(payload));
    if (::read(done[0], &c, 1) != 1) ::_exit(1);
    ::_exit(0);
  }
  char c = 0;
  if (::read(bound[0], &c, 1) != 1) throw std::runtime_error("the raw PUSH process failed to bind");
  double rate = 0;
  {
    zmq::context_t ctx;
    zmq::socket_t pull(ctx, zmq::socket_type::pull);
    pull.connect(endpoint);
    zmq::message_t m;
    (void)pull.recv(m);  // the first message starts the clock, as the first item does for ours
    auto start = steady::now();
    for (int i = 0; i < n; ++i) (void)pull.recv(m);
    rate = n / std::chrono::duration<double>(steady::now() - start).count();
  }
  if (::write(done[1], &c, 1) != 1) throw std::runtime_error("pipe");
  for (int fd : {bound[0], bound[1], done[0], done[1]}) ::close(fd);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error("the raw PUSH process failed");
  return rate;
}

// Items per second through a source: the clock starts at the first item, as for the raw loop.
double drain(rpc::client& c, const char* method, int n) {
  rpc::source items = c.stream(method, n + 1);
  if (!items.next()) throw std::runtime_error("empty stream");
  auto start = steady::now();
  for (int i = 0; i < n; ++i)
    if (!items.next()) throw std::runtime_error("the stream ended early");
  double s = std::chrono::duration<double>(steady::now() - start).count();
  if (items.next()) throw std::runtime_error("the stream went on");
  return n / s;
}

struct row {
  std::string name;
  double items_per_s = 0, chunks_per_s = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const bench_options opts = parse_bench_options(argc, argv, "stream-bench");
  const bool quick = opts.quick;
  const int small_n = quick ? 20000 : 500000, chunk_n = quick ? 500 : 8192, rounds = quick ? 1 : 3;
  const served ours_server = fork_rpc_server(private_ipc("ours.ipc"), bind_methods);
  const std::string& ours_ep = ours_server.endpoint;
  const pid_t ours = ours_server.pid;
  row raw{"raw ZeroMQ PUSH/PULL"}, zmq_row{"ductrpc stream over ZeroMQ"}, duct_row{"ductrpc stream over a duct"};
  auto keep = [](row& r, double items, double chunks) {
    r.items_per_s = std::max(r.items_per_s, items);
    r.chunks_per_s = std::max(r.chunks_per_s, chunks);
  };
  // The raw PUSH sends the bytes our server sends per item: an int packs in one byte; a chunk as bin 32.
  for (int r = 0; r < rounds; ++r) {
    // (Named steps: the order in which a call's arguments are evaluated is unspecified.)
    double raw_ints = raw_push_pull(small_n, 1), raw_chunks = raw_push_pull(chunk_n, chunk_size + 5);
    keep(raw, raw_ints, raw_chunks);
    {
      rpc::client c(ours_ep);
      double ints = drain(c, "ints", small_n), chunks = drain(c, "chunks", chunk_n);
      keep(zmq_row, ints, chunks);
    }
    auto [parent_end, child_end] = duct::pair();
    rpc::link down(std::move(parent_end));
    pid_t worker = fork_link_server(down, std::move(child_end), bind_methods);
    {
      rpc::client c(down);
      double ints = drain(c, "ints", small_n), chunks = drain(c, "chunks", chunk_n);
      keep(duct_row, ints, chunks);
    }
    down.close();
    stop_child(worker);
  }
  stop_child(ours);
  std::vector<row> rows{raw, zmq_row, duct_row};

  if (!opts.node_peer.empty() && ::access(opts.node_peer.c_str(), R_OK) == 0) {
    std::string node_ep = private_ipc("node.ipc");
    duct::child node = duct::spawn({"node", opts.node_peer, "server", node_ep});
    rpc::client c(node_ep);
    (void)c.call_for(std::chrono::seconds(30), "add", 1, 1);  // node is up
    row n{"zerorpc-node stream, our client"};
    n.items_per_s = drain(c, "count", quick ? 2000 : 50000);
    rows.push_back(n);
    node.kill(SIGKILL);
    node.wait();
  }

  std::printf("%-34s %14s %8s %16s %8s\n", "case (over ipc unless said)", "ints/s", "vs raw", "64 KiB chunks", "vs raw");
  nlohmann::json out = nlohmann::json::array();
  for (const row& r : rows) {
    double gbs = r.chunks_per_s * chunk_size / 1e9;
    std::printf("%-34s %14.0f %7.2fx", r.name.c_str(), r.items_per_s, r.items_per_s / raw.items_per_s);
    if (r.chunks_per_s > 0) std::printf(" %11.2f GB/s %7.2fx\n", gbs, r.chunks_per_s / raw.chunks_per_s);
    else std::printf(" %16s %8s\n", "-", "-");
    out.push_back({{"case", r.name}, {"items_per_s", r.items_per_s}, {"chunk_GB_per_s", gbs}});
  }
  std::printf("\ntargets: >= 500000 small items/s (ours over ZeroMQ: %.0f), >= 0.8x raw for 64 KiB chunks (%.2fx)\n",
              zmq_row.items_per_s, zmq_row.chunks_per_s / raw.chunks_per_s);
  if (!opts.json_path.empty()) std::ofstream(opts.json_path) << nlohmann::json{{"bench", "stream"}, {"rows", out}}.dump(2) << "\n";
  return 0;
}
