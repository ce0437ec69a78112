// rpc-bench: our zerorpc client and server in their default configuration against a raw cppzmq DEALER/ROUTER +
// msgpack loop (the ceiling), over ipc and over tcp, side by side in one run: calls per second one at a time and
// with 16 in flight, and the CPU time per call of both processes (client and server), which drifts far less than
// wall-clock rates on a shared VM. Then rows that locate a gap (add on the receiving thread; a raw client with our
// server, default and run_on::receiver; ours with the raw server; a minimal client with futures), our RPC over a
// duct to a forked worker, and zerorpc-node's server when installed. Servers run in forked processes (node in its
// own), clients here; every case takes its turn in every round, and each row is the median of its rounds. Last,
// the hog row: add's p99 while another client keeps a handler spinning (300 ms calls back to back), against its p99
// without, alternating. Prints a table; writes the rows as JSON with --json.
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
#include <functional>
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
#include "raw_codec.hpp"

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

void bind_add(rpc::server& s) { s.bind("add", [](int a, int b) { return a + b; }); }
void bind_add_inline(rpc::server& s) {
  s.bind("add", [](int a, int b) { return a + b; }, {.where = rpc::run_on::receiver});
}
// add, and spin(ms): a handler that keeps its thread busy (not asleep) for `ms`.
void bind_add_spin(rpc::server& s) {
  bind_add(s);
  s.bind("spin", [](int ms) {
    const auto until = steady::now() + std::chrono::milliseconds(ms);
    while (steady::now() < until) {
    }
    return ms;
  });
}

// The ceiling: a ROUTER that decodes each request and answers OK [a + b], all on one thread.
template <class Ready>
void serve_raw(const std::string& endpoint, Ready ready) {
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.bind(endpoint);
  ready(router.get(zmq::sockopt::last_endpoint));
  rpc::id_generator ids;
  std::vector<zmq::message_t> frames;
  for (;;) {
    frames.clear();
    if (!zmq::recv_multipart(router, std::back_inserter(frames))) continue;
    raw::event e = raw::decode(frames.back());
    if (e.name != "add") continue;  // a heartbeat: this loop answers add alone
    int sum = e.args->via.array.ptr[0].as<int>() + e.args->via.array.ptr[1].as<int>();
    const rpc::message_id id = ids.next();
    msgpack::sbuffer reply = raw::encode({id.bytes()}, e.message_id, "OK", std::make_tuple(sum));
    router.send(frames[0], zmq::send_flags::sndmore);
    router.send(zmq::message_t(), zmq::send_flags::sndmore);
    router.send(zmq::buffer(reply.data(), reply.size()));
  }
}

struct result {
  double calls_per_s = 0, p50_us = 0, p99_us = 0, seq_cpu_us = 0;  // one call at a time
  double inflight_calls_per_s = 0, inflight_cpu_us = 0;           // 16 in flight
};

double pct(std::vector<double>& v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(static_cast<double>(v.size() - 1) * p)];
}

// The raw client: one DEALER, encode, send, wait, decode.
result run_raw_client(const served& server, int n, int inflight_n) {
  const std::string& endpoint = server.endpoint;
  zmq::context_t ctx;
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.connect(endpoint);
  rpc::id_generator ids;
  std::vector<zmq::message_t> frames;
  auto send = [&] {
    const rpc::message_id id = ids.next();
    msgpack::sbuffer req = raw::encode({id.bytes()}, {}, "add", std::make_tuple(1, 2));
    dealer.send(zmq::message_t(), zmq::send_flags::sndmore);
    dealer.send(zmq::buffer(req.data(), req.size()));
  };
  auto receive = [&] {  // every reply is read as a client must, to learn which call it answers and its result
    frames.clear();
    (void)zmq::recv_multipart(dealer, std::back_inserter(frames));
    raw::event reply = raw::decode(frames.back());
    const msgpack::object& args = *reply.args;
    if (reply.response_to.bytes.empty() || args.type != msgpack::type::ARRAY || args.via.array.size != 1 ||
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
  cpu_meter cpu(server.pid);
  auto start = steady::now();
  for (int i = 0; i < n; ++i) {
    auto t = steady::now();
    one();
    lat.push_back(std::chrono::duration<double, std::micro>(steady::now() - t).count());
  }
  if (n > 0) {
    r.calls_per_s = n / std::chrono::duration<double>(steady::now() - start).count();
    r.seq_cpu_us = cpu.us() / n;
    r.p50_us = pct(lat, 0.5);
    r.p99_us = pct(lat, 0.99);
  }
  if (inflight_n == 0) return r;
  cpu.reset();
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
  r.inflight_cpu_us = cpu.us() / inflight_n;
  return r;
}

// `server`: the process whose CPU time counts with ours (none: -1).
result run_our_client(rpc::client&& c, pid_t server, int n, int inflight_n) {
  for (int i = 0; i < 200; ++i) (void)c.call("add", 1, 2);
  result r;
  std::vector<double> lat;
  cpu_meter cpu(server);
  auto start = steady::now();
  for (int i = 0; i < n; ++i) {
    auto t = steady::now();
    (void)c.call("add", 1, 2);
    lat.push_back(std::chrono::duration<double, std::micro>(steady::now() - t).count());
  }
  if (n > 0) {
    r.calls_per_s = n / std::chrono::duration<double>(steady::now() - start).count();
    r.seq_cpu_us = cpu.us() / n;
    r.p50_us = pct(lat, 0.5);
    r.p99_us = pct(lat, 0.99);
  }
  if (inflight_n == 0) return r;
  cpu.reset();
  std::array<rpc::future, 16> window;  // a ring: the oldest call's slot takes the next one once it is answered
  start = steady::now();
  for (int i = 0; i < inflight_n; ++i) {
    rpc::future& slot = window[static_cast<std::size_t>(i % 16)];
    if (i >= 16) (void)slot.get();
    slot = c.async_call("add", 1, 2);
  }
  for (int i = std::max(0, inflight_n - 16); i < inflight_n; ++i) (void)window[static_cast<std::size_t>(i % 16)].get();
  r.inflight_calls_per_s = inflight_n / std::chrono::duration<double>(steady::now() - start).count();
  r.inflight_cpu_us = cpu.us() / inflight_n;
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

result run_minimal_client(const served& server, int inflight_n) {
  minimal_client c(server.endpoint);
  auto args = [] {
    duct::pack_buffer out;
    msgpack::pack(out, std::make_tuple(1, 2));
    return out.take();
  };
  for (int i = 0; i < 200; ++i) (void)c.get(c.async_call("add", args()));
  std::array<std::shared_ptr<minimal_client::state>, 16> window;
  cpu_meter cpu(server.pid);
  const auto start = steady::now();
  for (int i = 0; i < inflight_n; ++i) {
    auto& slot = window[static_cast<std::size_t>(i % 16)];
    if (i >= 16) (void)c.get(slot);
    slot = c.async_call("add", args());
  }
  for (int i = std::max(0, inflight_n - 16); i < inflight_n; ++i) (void)c.get(window[static_cast<std::size_t>(i % 16)]);
  result r;
  r.inflight_calls_per_s = inflight_n / std::chrono::duration<double>(steady::now() - start).count();
  r.inflight_cpu_us = cpu.us() / inflight_n;
  return r;
}

// add's latency, one call at a time, while (with `hog`) a second client keeps calling spin(300) back to back.
// Returns: the p99 in microseconds.
double add_p99(const std::string& endpoint, int n, bool hog) {
  std::atomic<bool> done{false};
  std::thread hogger;
  if (hog) {
    hogger = std::thread([&] {
      rpc::client c(endpoint);
      while (!done) (void)c.call("spin", 300);
    });
  }
  rpc::client c(endpoint);
  for (int i = 0; i < 100; ++i) (void)c.call("add", 1, 2);
  std::vector<double> lat;
  for (int i = 0; i < n; ++i) {
    auto t = steady::now();
    (void)c.call("add", 1, 2);
    lat.push_back(std::chrono::duration<double, std::micro>(steady::now() - t).count());
  }
  done = true;
  if (hogger.joinable()) hogger.join();
  return pct(lat, 0.99);
}

// One case's rounds, kept apart: sequential rounds (rate, p50, p99) and rounds of calls in flight (rate).
class rounds_of {
 public:
  void sequential(const result& r) {
    rate_.push_back(r.calls_per_s);
    p50_.push_back(r.p50_us);
    p99_.push_back(r.p99_us);
    seq_cpu_.push_back(r.seq_cpu_us);
  }
  void inflight(const result& r) {
    inflight_.push_back(r.inflight_calls_per_s);
    inflight_cpu_.push_back(r.inflight_cpu_us);
  }

  /// The median of each figure over its rounds (0 for a figure no round measured).
  [[nodiscard]] result median() const {
    return {::median(rate_), ::median(p50_), ::median(p99_), ::median(seq_cpu_), ::median(inflight_), ::median(inflight_cpu_)};
  }

  /// Each figure against `base`'s of the same round, the median of those ratios (0 where either has none): a
  /// drift of the machine's speed between rounds cancels out, as it hits both of a round's cases alike.
  [[nodiscard]] result ratios_to(const rounds_of& base) const {
    auto paired = [](const std::vector<double>& a, const std::vector<double>& b) { return ::median(ratios(a, b)); };
    return {paired(rate_, base.rate_),         paired(p50_, base.p50_),
            paired(p99_, base.p99_),           paired(seq_cpu_, base.seq_cpu_),
            paired(inflight_, base.inflight_), paired(inflight_cpu_, base.inflight_cpu_)};
  }

  /// How far the rounds' rate ratios against `base` spread: their lower and upper quartiles, sequential and in
  /// flight. A median near a target says little when the quartiles lie on both sides of it.
  struct spread {
    double seq_lo = 0, seq_hi = 0, inflight_lo = 0, inflight_hi = 0;
  };
  [[nodiscard]] spread spread_to(const rounds_of& base) const {
    const std::vector<double> seq = ratios(rate_, base.rate_), fl = ratios(inflight_, base.inflight_);
    return {quantile(seq, 0.25), quantile(seq, 0.75), quantile(fl, 0.25), quantile(fl, 0.75)};
  }

 private:
  static std::vector<double> ratios(const std::vector<double>& a, const std::vector<double>& b) {
    std::vector<double> r;
    for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
      if (a[i] > 0 && b[i] > 0) r.push_back(a[i] / b[i]);
    return r;
  }
  std::vector<double> rate_, p50_, p99_, seq_cpu_, inflight_, inflight_cpu_;
};

// A case: a name, how one round of it runs, its rounds; `ceiling` names the row its ratios are taken against.
struct bench_case {
  std::string name;
  std::function<result(int n, int inflight_n)> run;  // n or inflight_n is 0 for a round of the other kind
  int n, inflight_n;
  std::string ceiling;
  rounds_of rounds;
};

// A row: the case's medians `r`, and its ratios to its ceiling's (rounds_of::ratios_to()).
void print_row(const bench_case& c, const result& r, const result& vs, const rounds_of::spread& q,
               nlohmann::json& out) {
  auto num = [](double v, const char* fmt) {
    char buf[32];
    if (v <= 0) return std::string("-");
    std::snprintf(buf, sizeof buf, fmt, v);
    return std::string(buf);
  };
  auto x = [&](double v) { return v > 0 ? num(v, "%.2fx") : std::string("-"); };
  std::printf("%-40s %9s %8s %7s %12s %7s | %6s %6s %6s %6s\n", c.name.c_str(), num(r.calls_per_s, "%.0f").c_str(),
              num(r.p99_us, "%.1f").c_str(), num(r.seq_cpu_us, "%.1f").c_str(),
              num(r.inflight_calls_per_s, "%.0f").c_str(), num(r.inflight_cpu_us, "%.1f").c_str(),
              x(vs.calls_per_s).c_str(), x(vs.inflight_calls_per_s).c_str(), x(vs.seq_cpu_us).c_str(),
              x(vs.inflight_cpu_us).c_str());
  nlohmann::json row = {{"case", c.name}, {"vs", c.ceiling}};
  if (r.calls_per_s > 0) {
    row["calls_per_s"] = r.calls_per_s;
    row["p50_us"] = r.p50_us;
    row["p99_us"] = r.p99_us;
    row["cpu_us_per_call"] = r.seq_cpu_us;
    row["calls_per_s_vs"] = vs.calls_per_s;
    row["calls_per_s_vs_quartiles"] = {q.seq_lo, q.seq_hi};
    row["cpu_us_per_call_vs"] = vs.seq_cpu_us;
  }
  if (r.inflight_calls_per_s > 0) {
    row["inflight16_calls_per_s"] = r.inflight_calls_per_s;
    row["inflight16_cpu_us_per_call"] = r.inflight_cpu_us;
    row["inflight16_calls_per_s_vs"] = vs.inflight_calls_per_s;
    row["inflight16_calls_per_s_vs_quartiles"] = {q.inflight_lo, q.inflight_hi};
    row["inflight16_cpu_us_per_call_vs"] = vs.inflight_cpu_us;
  }
  out.push_back(row);
}

}  // namespace

int main(int argc, char** argv) {
  const bench_options opts = parse_bench_options(argc, argv, "rpc-bench");
  const bool quick = opts.quick;
  // Sequential calls take about 100 us each, so seven rounds of 5,000; 16 in flight, fifteen rounds of 30,000 (about
  // 0.3 s each on the raw loop): a round of 10,000 in flight lasted 0.1 s, short enough for one hiccup of this VM
  // to move a row by 10% or more, and with nine rounds the median of one run still moved by 5% from the next.
  const int n = quick ? 500 : 5000, rounds = quick ? 1 : 7;
  const int inflight = quick ? 500 : 30000, inflight_rounds = quick ? 1 : 15;

  // The servers stay up for the whole run; every case takes its turn in every round (raw, ours, raw, ours, ..., and
  // backwards in the next round), so that a passing slowdown of the machine hits all alike, and each row reports the
  // median of its rounds, not the best: with calls in flight, now and then one round runs half again as fast as the
  // others (the busy threads happen to fall into step on the two vCPUs), and the best of each row then compares one
  // case's lucky round with another's ordinary one.
  const served raw_ipc = fork_serving(private_ipc("raw.ipc"), [](auto& ep, auto ready) { serve_raw(ep, ready); });
  const served raw_tcp = fork_serving("tcp://127.0.0.1:0", [](auto& ep, auto ready) { serve_raw(ep, ready); });
  const served ours_ipc = fork_rpc_server(private_ipc("ours.ipc"), bind_add);
  const served ours_tcp = fork_rpc_server("tcp://127.0.0.1:0", bind_add);
  const served ours_inline = fork_rpc_server(private_ipc("inline.ipc"), bind_add_inline);
  // zerorpc-node, when installed, takes its turn in every round like the others: node's own rate moves a lot from
  // run to run. Fewer calls a round: it answers a few thousand a second.
  std::optional<duct::child> node;
  const std::string node_ep = private_ipc("node.ipc");
  if (!opts.node_peer.empty() && ::access(opts.node_peer.c_str(), R_OK) == 0)
    node.emplace(duct::spawn({"node", opts.node_peer, "server", node_ep}));
  const int node_n = quick ? 200 : 2000, node_inflight = quick ? 200 : 10000;

  const std::string raw_ipc_name = "raw DEALER/ROUTER loop, ipc", raw_tcp_name = "raw DEALER/ROUTER loop, tcp",
                    ours_ipc_name = "ductrpc defaults, ipc";
  std::vector<bench_case> cases;
  auto ours = [](const served& s) {
    return [&s](int k, int fl) { return run_our_client(rpc::client(s.endpoint), s.pid, k, fl); };
  };
  cases.push_back({raw_ipc_name, [&](int k, int fl) { return run_raw_client(raw_ipc, k, fl); }, n, inflight, raw_ipc_name, {}});
  cases.push_back({ours_ipc_name, ours(ours_ipc), n, inflight, raw_ipc_name, {}});
  cases.push_back({raw_tcp_name, [&](int k, int fl) { return run_raw_client(raw_tcp, k, fl); }, n, inflight, raw_tcp_name, {}});
  cases.push_back({"ductrpc defaults, tcp", ours(ours_tcp), n, inflight, raw_tcp_name, {}});
  cases.push_back({"ductrpc, add on run_on::receiver, ipc", ours(ours_inline), n, inflight, raw_ipc_name, {}});
  cases.push_back({"raw client, ductrpc server (defaults)",
                   [&](int k, int fl) { return run_raw_client(ours_ipc, k, fl); }, n, inflight, raw_ipc_name, {}});
  cases.push_back({"raw client, ductrpc server (receiver)", [&](int k, int fl) { return run_raw_client(ours_inline, k, fl); },
                   n, inflight, raw_ipc_name, {}});
  cases.push_back({"ductrpc client, raw server, ipc",
                   [&](int k, int fl) { return run_our_client(rpc::client(raw_ipc.endpoint), raw_ipc.pid, k, fl); }, n,
                   inflight, raw_ipc_name, {}});
  cases.push_back({"minimal futures client, raw server", [&](int, int fl) { return run_minimal_client(raw_ipc, fl); }, 0,
                   inflight, raw_ipc_name, {}});
  // A fresh worker each round: its parent makes only blocking calls at first (reading replies itself), then the
  // calls in flight start the link's reader thread, as they would in a real program.
  cases.push_back({"ductrpc over a duct (forked worker)",
                   [&](int k, int fl) {
                     auto [parent_end, child_end] = duct::pair();
                     rpc::link down(std::move(parent_end));
                     const pid_t worker = fork_link_server(down, std::move(child_end), bind_add);
                     result r = run_our_client(rpc::client(down), worker, k, fl);
                     down.close();
                     stop_child(worker);
                     return r;
                   },
                   n, inflight, ours_ipc_name, {}});
  if (node) {
    const pid_t node_pid = node->pid();
    cases.push_back({"ductrpc client, zerorpc-node server",
                     [&, node_pid](int k, int fl) { return run_our_client(rpc::client(node_ep), node_pid, k, fl); },
                     node_n, node_inflight, ours_ipc_name, {}});
  }
  // Every other round goes through the cases backwards, so that no case always runs just after its baseline.
  for (int r = 0; r < std::max(rounds, inflight_rounds); ++r) {
    for (std::size_t i = 0; i < cases.size(); ++i) {
      bench_case& c = cases[r % 2 == 0 ? i : cases.size() - 1 - i];
      if (r < inflight_rounds && c.inflight_n > 0) c.rounds.inflight(c.run(0, c.inflight_n));
      if (r < rounds && c.n > 0) c.rounds.sequential(c.run(c.n, 0));
    }
  }

  // The hog: add's p99 with and without a second client spinning a handler, alternating round by round.
  const served hog_server = fork_rpc_server(private_ipc("hog.ipc"), bind_add_spin);
  std::vector<double> calm_p99, hogged_p99, hog_ratio;
  const int hog_n = quick ? 300 : 3000, hog_rounds = quick ? 1 : 5;
  for (int r = 0; r < hog_rounds; ++r) {
    const double calm = add_p99(hog_server.endpoint, hog_n, false), hogged = add_p99(hog_server.endpoint, hog_n, true);
    calm_p99.push_back(calm);
    hogged_p99.push_back(hogged);
    hog_ratio.push_back(hogged / calm);
  }

  for (const served& s : {raw_ipc, raw_tcp, ours_ipc, ours_tcp, ours_inline, hog_server}) stop_child(s.pid);
  if (node) {
    node->kill(SIGKILL);
    node->wait();
  }

  std::unordered_map<std::string, result> medians, ratios;
  std::unordered_map<std::string, rounds_of::spread> spreads;
  std::unordered_map<std::string, const rounds_of*> by_name;
  for (const bench_case& c : cases) by_name[c.name] = &c.rounds;
  for (const bench_case& c : cases) {
    medians[c.name] = c.rounds.median();
    ratios[c.name] = c.rounds.ratios_to(*by_name.at(c.ceiling));
    spreads[c.name] = c.rounds.spread_to(*by_name.at(c.ceiling));
  }
  std::printf("add(1,2); medians of %d rounds (%d of 16 in flight); CPU: microseconds per call, client and server "
              "processes together\n",
              rounds, inflight_rounds);
  std::printf("%-40s %9s %8s %7s %12s %7s | %6s %6s %6s %6s\n", "case", "calls/s", "p99 us", "CPU us", "16 fl calls/s",
              "CPU us", "seq", "16 fl", "CPU", "CPU fl");
  nlohmann::json out = nlohmann::json::array();
  for (const bench_case& c : cases) print_row(c, medians[c.name], ratios[c.name], spreads[c.name], out);
  std::printf("(ratios against the raw loop on the same transport, the duct and node rows against ductrpc defaults, ipc:\n"
              " each the median of the rounds' ratios, a case against its baseline of the same round)\n");
  const double hog = median(hog_ratio);
  // The targets of the default configuration, each against its baseline of this run.
  const result &oip = ratios[ours_ipc_name], &otc = ratios["ductrpc defaults, tcp"],
               &dct = ratios["ductrpc over a duct (forked worker)"];
  const rounds_of::spread &sip = spreads[ours_ipc_name], &stc = spreads["ductrpc defaults, tcp"];
  std::printf("\ntargets (default configuration; ipc, tcp; in brackets the quartiles of the rounds' ratios):\n"
              "  calls/s >= 0.9x raw: sequential %.2fx [%.2f-%.2f], %.2fx [%.2f-%.2f]; "
              "16 in flight %.2fx [%.2f-%.2f], %.2fx [%.2f-%.2f]\n"
              "  CPU per call <= 1.3x raw: sequential %.2fx, %.2fx; 16 in flight %.2fx, %.2fx\n"
              "  over a duct >= 3x our ZeroMQ sequential rate: %.2fx\n",
              oip.calls_per_s, sip.seq_lo, sip.seq_hi, otc.calls_per_s, stc.seq_lo, stc.seq_hi,
              oip.inflight_calls_per_s, sip.inflight_lo, sip.inflight_hi, otc.inflight_calls_per_s, stc.inflight_lo,
              stc.inflight_hi, oip.seq_cpu_us, otc.seq_cpu_us, oip.inflight_cpu_us, otc.inflight_cpu_us,
              dct.calls_per_s);
  if (node) {  // the row is node against ours: the target is its inverse
    const result& nd = ratios["ductrpc client, zerorpc-node server"];
    auto inverse = [](double v) { return v > 0 ? 1 / v : 0.0; };
    std::printf("  ours vs a warm zerorpc-node server (our client): sequential %.2fx (>= 1.3x), 16 in flight %.2fx (>= 3x)\n",
                inverse(nd.calls_per_s), inverse(nd.inflight_calls_per_s));
  }
  std::printf("  hog: add's p99 %.0f us while another client spins a handler for 300 ms calls, %.0f us without: %.2fx "
              "(<= 2x; median of %d paired rounds)\n",
              median(hogged_p99), median(calm_p99), hog, hog_rounds);
  out.push_back({{"case", "hog"}, {"p99_us", median(hogged_p99)}, {"calm_p99_us", median(calm_p99)}, {"ratio", hog}});
  if (!opts.json_path.empty()) std::ofstream(opts.json_path) << nlohmann::json{{"bench", "rpc"}, {"rows", out}}.dump(2) << "\n";
  return 0;
}
