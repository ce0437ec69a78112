// rpc-bench: our zerorpc client and server against a raw cppzmq DEALER/ROUTER + msgpack echo loop (the ceiling)
// and against the zerorpc-node server when it is installed, side by side in one run; and the same client and server
// over a duct to a forked worker (rpc::link). Our server runs add on its pool (the default) and, as a second row,
// on the receiving thread (run_on::receiver); two mixed rows (raw client with our server, ours with the raw server)
// show which side a gap comes from, and a minimal client with futures (a yardstick, see minimal_client) how close
// to the raw loop any such client comes. Servers run in forked processes (node in its own), clients here; the
// clients alternate round by round, and each row is the median of its rounds. Prints a table; writes the rows as
// JSON with --json.
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <future>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <duct/connection.hpp>
#include <duct/spawn.hpp>
#include <nlohmann/json.hpp>
#include <rpc/client.hpp>
#include <rpc/event.hpp>
#include <rpc/link.hpp>
#include <rpc/server.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common.hpp"

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

// Runs `serve(endpoint)` in a child process until killed.
pid_t fork_server(const std::string& endpoint, void (*serve)(const std::string&)) {
  pid_t pid = ::fork();
  if (pid == 0) {
    serve(endpoint);
    ::_exit(0);
  }
  return pid;
}

void bind_add(rpc::server& s) { s.bind("add", [](int a, int b) { return a + b; }); }
void bind_add_inline(rpc::server& s) {
  s.bind("add", [](int a, int b) { return a + b; }, {.where = rpc::run_on::receiver});
}

// The ceiling: a ROUTER that decodes each request and answers OK [a + b], all on one thread.
void serve_raw(const std::string& endpoint) {
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.bind(endpoint);
  rpc::id_generator ids;
  std::vector<zmq::message_t> frames;
  for (;;) {
    frames.clear();
    if (!zmq::recv_multipart(router, std::back_inserter(frames))) continue;
    rpc::event e = rpc::decode_event(std::as_bytes(std::span(static_cast<const char*>(frames.back().data()), frames.back().size())));
    if (e.name != "add") continue;  // a heartbeat: this loop answers add alone
    int sum = e.args().via.array.ptr[0].as<int>() + e.args().via.array.ptr[1].as<int>();
    duct::buffer reply = rpc::encode_event({ids.next(), e.header.id}, "OK", std::make_tuple(sum));
    router.send(frames[0], zmq::send_flags::sndmore);
    router.send(zmq::message_t(), zmq::send_flags::sndmore);
    router.send(zmq::buffer(reply.data(), reply.size()));
  }
}

struct result {
  double calls_per_s = 0, p50_us = 0, p99_us = 0, inflight_calls_per_s = 0;
};

double pct(std::vector<double>& v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(static_cast<double>(v.size() - 1) * p)];
}

// The raw client: one DEALER, encode, send, wait, decode.
result run_raw_client(const std::string& endpoint, int n, int inflight_n) {
  zmq::context_t ctx;
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.connect(endpoint);
  rpc::id_generator ids;
  std::vector<zmq::message_t> frames;
  auto send = [&] {
    duct::buffer req = rpc::encode_event({ids.next()}, "add", std::make_tuple(1, 2));
    dealer.send(zmq::message_t(), zmq::send_flags::sndmore);
    dealer.send(zmq::buffer(req.data(), req.size()));
  };
  auto receive = [&] {  // every reply is read as a client must, to learn which call it answers and its result
    frames.clear();
    (void)zmq::recv_multipart(dealer, std::back_inserter(frames));
    rpc::event reply = rpc::decode_event(
        std::as_bytes(std::span(static_cast<const char*>(frames.back().data()), frames.back().size())));
    const msgpack::object& args = reply.args();
    if (!reply.header.response_to || args.type != msgpack::type::ARRAY || args.via.array.size != 1 ||
        args.via.array.ptr[0].as<int>() != 3)
      throw std::runtime_error("raw client: not a reply of add(1, 2)");
  };
  auto one = [&] {
    send();
    receive();
  };
  for (int i = 0; i < 200; ++i) one();  // warm up and make sure the server is there
  result r;
  std::vector<double> lat;
  auto start = steady::now();
  for (int i = 0; i < n; ++i) {
    auto t = steady::now();
    one();
    lat.push_back(std::chrono::duration<double, std::micro>(steady::now() - t).count());
  }
  if (n > 0) {
    r.calls_per_s = n / std::chrono::duration<double>(steady::now() - start).count();
    r.p50_us = pct(lat, 0.5);
    r.p99_us = pct(lat, 0.99);
  }
  if (inflight_n == 0) return r;
  start = steady::now();
  int sent = 0, got = 0;
  while (got < inflight_n) {
    while (sent < inflight_n && sent - got < 16) {
      send();
      ++sent;
    }
    receive();
    ++got;
  }
  r.inflight_calls_per_s = inflight_n / std::chrono::duration<double>(steady::now() - start).count();
  return r;
}

result run_our_client(rpc::client&& c, int n, int inflight_n) {
  for (int i = 0; i < 200; ++i) (void)c.call("add", 1, 2);
  result r;
  std::vector<double> lat;
  auto start = steady::now();
  for (int i = 0; i < n; ++i) {
    auto t = steady::now();
    (void)c.call("add", 1, 2);
    lat.push_back(std::chrono::duration<double, std::micro>(steady::now() - t).count());
  }
  if (n > 0) {
    r.calls_per_s = n / std::chrono::duration<double>(steady::now() - start).count();
    r.p50_us = pct(lat, 0.5);
    r.p99_us = pct(lat, 0.99);
  }
  if (inflight_n == 0) return r;
  std::array<rpc::future, 16> window;  // a ring: the oldest call's slot takes the next one once it is answered
  start = steady::now();
  for (int i = 0; i < inflight_n; ++i) {
    rpc::future& slot = window[static_cast<std::size_t>(i % 16)];
    if (i >= 16) (void)slot.get();
    slot = c.async_call("add", 1, 2);
  }
  for (int i = std::max(0, inflight_n - 16); i < inflight_n; ++i) (void)window[static_cast<std::size_t>(i % 16)].get();
  r.inflight_calls_per_s = inflight_n / std::chrono::duration<double>(steady::now() - start).count();
  return r;
}

// A yardstick, not a client: the least that any thread-safe client with futures does beyond the raw loop. A call
// takes a lock to enter a table of open calls and gets a shared state that a waiting thread could sleep on; sending
// and reading take the socket's lock; a reply is found in the table under the lock and its result moved into the
// state. No heartbeats, time limits, errors, streams, tokens or other threads reading. Its row shows how close to the
// raw loop a client can come at all; what lies between it and ours is what our client's features cost.
class minimal_client {
 public:
  struct state {
    std::mutex mu;
    std::condition_variable cv;
    std::atomic<bool> done{false};
    duct::value value;
  };

  explicit minimal_client(const std::string& endpoint) : dealer_(ctx_, zmq::socket_type::dealer) {
    dealer_.connect(endpoint);
    fd_ = dealer_.get(zmq::sockopt::fd);
  }

  std::shared_ptr<state> async_call(std::string_view method, const duct::buffer& packed_args) {
    auto st = std::make_shared<state>();
    rpc::event_header h;
    h.accepts_deferred = true;  // the same request as ours
    {
      std::lock_guard lock(mu_);
      h.id = ids_.next();
      calls_.emplace(h.id, st);
    }
    duct::buffer body = rpc::encode_event_packed(h, method, packed_args.span());
    std::lock_guard lock(socket_mu_);
    dealer_.send(zmq::message_t(), zmq::send_flags::sndmore);
    dealer_.send(zmq::buffer(body.data(), body.size()));
    return st;
  }

  duct::value get(const std::shared_ptr<state>& st) {
    while (!st->done.load()) {
      bool got = false;
      {
        std::lock_guard lock(socket_mu_);
        frames_.clear();
        got = zmq::recv_multipart(dealer_, std::back_inserter(frames_), zmq::recv_flags::dontwait).has_value();
      }
      if (!got) {  // ZeroMQ signals its descriptor once a read has found nothing
        pollfd p{fd_, POLLIN, 0};
        (void)::poll(&p, 1, -1);
        continue;
      }
      rpc::event ev = rpc::decode_event(
          std::as_bytes(std::span(static_cast<const char*>(frames_.back().data()), frames_.back().size())));
      if (!ev.header.response_to) continue;
      std::shared_ptr<state> to;
      {
        std::lock_guard lock(mu_);
        auto it = calls_.find(*ev.header.response_to);
        if (it == calls_.end()) continue;  // not one of ours
        to = std::move(it->second);
        calls_.erase(it);
      }
      to->value = std::move(ev).take_args();
      to->done.store(true);
    }
    return std::move(st->value);
  }

 private:
  zmq::context_t ctx_;
  zmq::socket_t dealer_;
  int fd_;
  std::mutex socket_mu_, mu_;
  rpc::id_generator ids_;
  std::unordered_map<rpc::message_id, std::shared_ptr<state>, rpc::message_id_hash> calls_;
  std::vector<zmq::message_t> frames_;
};

result run_minimal_client(const std::string& endpoint, int inflight_n) {
  minimal_client c(endpoint);
  auto args = [] {
    duct::pack_buffer out;
    msgpack::pack(out, std::make_tuple(1, 2));
    return out.take();
  };
  for (int i = 0; i < 200; ++i) (void)c.get(c.async_call("add", args()));
  std::array<std::shared_ptr<minimal_client::state>, 16> window;
  const auto start = steady::now();
  for (int i = 0; i < inflight_n; ++i) {
    auto& slot = window[static_cast<std::size_t>(i % 16)];
    if (i >= 16) (void)c.get(slot);
    slot = c.async_call("add", args());
  }
  for (int i = std::max(0, inflight_n - 16); i < inflight_n; ++i) (void)c.get(window[static_cast<std::size_t>(i % 16)]);
  result r;
  r.inflight_calls_per_s = inflight_n / std::chrono::duration<double>(steady::now() - start).count();
  return r;
}

// One case's rounds, kept apart: sequential rounds (rate, p50, p99) and rounds of calls in flight (rate).
class rounds_of {
 public:
  void sequential(const result& r) {
    rate_.push_back(r.calls_per_s);
    p50_.push_back(r.p50_us);
    p99_.push_back(r.p99_us);
  }
  void inflight(const result& r) { inflight_.push_back(r.inflight_calls_per_s); }

  /// The median of each figure over its rounds (0 for a figure no round measured).
  [[nodiscard]] result median() const {
    return {middle(rate_), middle(p50_), middle(p99_), middle(inflight_)};
  }

 private:
  static double middle(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t m = v.size() / 2;
    return v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
  }

  std::vector<double> rate_, p50_, p99_, inflight_;
};

}  // namespace

int main(int argc, char** argv) {
  const bench_options opts = parse_bench_options(argc, argv, "rpc-bench");
  const bool quick = opts.quick;
  // Sequential calls take about 100 us each, so three rounds of 10,000; 16 in flight, seven rounds of 30,000 (about
  // 0.3 s each on the raw loop): a round of 10,000 in flight lasted 0.1 s, short enough for one hiccup of this VM
  // to move a row by 10% or more.
  const int n = quick ? 500 : 10000, rounds = quick ? 1 : 3;
  const int inflight = quick ? 500 : 30000, inflight_rounds = quick ? 1 : 7;
  std::vector<std::pair<std::string, result>> rows;

  // The servers stay up for the whole run; client rounds alternate (raw, ours, raw, ours, ...), so that a passing
  // slowdown of the machine hits all alike, and each row reports the median of its rounds. Not the best: with calls
  // in flight, now and then one round of one case runs half again as fast as the others (the four busy threads
  // happen to fall into step on the two vCPUs), and the best of each row then compared one case's lucky round with
  // another's ordinary one. Rounds of calls in flight come first, then rounds of sequential calls.
  std::string raw_ep = private_ipc("raw.ipc"), ours_ep = private_ipc("ours.ipc"), inline_ep = private_ipc("inline.ipc");
  pid_t raw = fork_server(raw_ep, serve_raw);
  pid_t ours = fork_rpc_server(ours_ep, bind_add);
  pid_t ours_inline = fork_rpc_server(inline_ep, bind_add_inline);
  // zerorpc-node, when installed, takes its turn in every round like the others: node's own rate moves a lot from
  // run to run, so one run of it against the median of ours compared a moment with a middle. Fewer calls a round:
  // it answers a few thousand a second.
  std::optional<duct::child> node;
  const std::string node_ep = private_ipc("node.ipc");
  if (!opts.node_peer.empty() && ::access(opts.node_peer.c_str(), R_OK) == 0)
    node.emplace(duct::spawn({"node", opts.node_peer, "server", node_ep}));
  const int node_n = quick ? 200 : 3000, node_inflight = quick ? 200 : 10000;
  // The two mixed rows split the gap to the raw loop into the server's share and the client's.
  rounds_of raw_rounds, ours_rounds, inline_rounds, raw_to_ours_rounds, ours_to_raw_rounds, minimal_rounds, duct_rounds,
      node_rounds;
  for (int r = 0; r < inflight_rounds; ++r) {
    if (node) node_rounds.inflight(run_our_client(rpc::client(node_ep), 0, node_inflight));
    raw_rounds.inflight(run_raw_client(raw_ep, 0, inflight));
    minimal_rounds.inflight(run_minimal_client(raw_ep, inflight));
    ours_rounds.inflight(run_our_client(rpc::client(ours_ep), 0, inflight));
    inline_rounds.inflight(run_our_client(rpc::client(inline_ep), 0, inflight));
    raw_to_ours_rounds.inflight(run_raw_client(inline_ep, 0, inflight));
    ours_to_raw_rounds.inflight(run_our_client(rpc::client(raw_ep), 0, inflight));
  }
  for (int r = 0; r < rounds; ++r) {
    if (node) node_rounds.sequential(run_our_client(rpc::client(node_ep), node_n, 0));
    raw_rounds.sequential(run_raw_client(raw_ep, n, 0));
    ours_rounds.sequential(run_our_client(rpc::client(ours_ep), n, 0));
    inline_rounds.sequential(run_our_client(rpc::client(inline_ep), n, 0));
    raw_to_ours_rounds.sequential(run_raw_client(inline_ep, n, 0));
    ours_to_raw_rounds.sequential(run_our_client(rpc::client(raw_ep), n, 0));
    // A fresh worker each round: its parent makes only blocking calls at first (reading replies itself), then the
    // calls in flight start the link's reader thread, as they would in a real program.
    auto [parent_end, child_end] = duct::pair();
    rpc::link down(std::move(parent_end));
    pid_t worker = fork_link_server(down, std::move(child_end), bind_add);
    const result both = run_our_client(rpc::client(down), n, inflight);
    duct_rounds.sequential(both);
    duct_rounds.inflight(both);
    down.close();
    stop_child(worker);
  }
  stop_child(raw);
  stop_child(ours);
  stop_child(ours_inline);
  if (node) {
    node->kill(SIGKILL);
    node->wait();
  }
  rows.emplace_back("raw DEALER/ROUTER loop", raw_rounds.median());
  rows.emplace_back("ductrpc client+server", ours_rounds.median());
  rows.emplace_back("ductrpc, add on run_on::receiver", inline_rounds.median());
  rows.emplace_back("raw client, ductrpc server (receiver)", raw_to_ours_rounds.median());
  rows.emplace_back("ductrpc client, raw server", ours_to_raw_rounds.median());
  rows.emplace_back("minimal futures client, raw server", minimal_rounds.median());
  rows.emplace_back("ductrpc over a duct (forked worker)", duct_rounds.median());
  const result ours_row = rows[1].second, duct_row = rows.back().second;
  if (node) rows.emplace_back("ductrpc client, zerorpc-node server", node_rounds.median());


  const result& ceiling = rows[0].second;
  std::printf("%-38s %12s %9s %9s %14s %7s %7s\n", "case (add(1,2) over ipc)", "calls/s", "p50 us", "p99 us",
              "16 in flight/s", "seq", "16 fl");
  nlohmann::json out = nlohmann::json::array();
  for (auto& [name, r] : rows) {
    if (r.calls_per_s > 0) {
      std::printf("%-38s %12.0f %9.1f %9.1f %14.0f %6.2fx %6.2fx\n", name.c_str(), r.calls_per_s, r.p50_us, r.p99_us,
                  r.inflight_calls_per_s, r.calls_per_s / ceiling.calls_per_s,
                  r.inflight_calls_per_s / ceiling.inflight_calls_per_s);
      out.push_back({{"case", name}, {"calls_per_s", r.calls_per_s}, {"p50_us", r.p50_us}, {"p99_us", r.p99_us},
                     {"inflight16_calls_per_s", r.inflight_calls_per_s}});
    } else {  // calls in flight only
      std::printf("%-38s %12s %9s %9s %14.0f %7s %6.2fx\n", name.c_str(), "-", "-", "-", r.inflight_calls_per_s, "-",
                  r.inflight_calls_per_s / ceiling.inflight_calls_per_s);
      out.push_back({{"case", name}, {"inflight16_calls_per_s", r.inflight_calls_per_s}});
    }
  }
  std::printf("\nRPC over a duct vs over ZeroMQ (ours): %.2fx sequential, %.2fx with 16 in flight\n",
              duct_row.calls_per_s / ours_row.calls_per_s, duct_row.inflight_calls_per_s / ours_row.inflight_calls_per_s);
  if (node) {
    const result& node_row = rows.back().second;
    std::printf("Our server vs zerorpc-node's (our client): %.2fx sequential, %.2fx with 16 in flight on the pool; "
                "%.2fx and %.2fx with run_on::receiver\n",
                ours_row.calls_per_s / node_row.calls_per_s, ours_row.inflight_calls_per_s / node_row.inflight_calls_per_s,
                rows[2].second.calls_per_s / node_row.calls_per_s,
                rows[2].second.inflight_calls_per_s / node_row.inflight_calls_per_s);
  }
  if (!opts.json_path.empty()) std::ofstream(opts.json_path) << nlohmann::json{{"bench", "rpc"}, {"rows", out}}.dump(2) << "\n";
  return 0;
}
