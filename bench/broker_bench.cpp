// broker-bench: rpc-broker's pool in numbers (issue 16's targets), every case against its baseline of the same run.
//   scaling    nap(20 ms) with 64 calls in flight through a broker to 1, 2, 4 and 8 workers (default servers: 4
//              threads each, so 4 calls at once): calls/s against k times one worker's (linear), >= 0.8x
//   ceiling    add(1,2) with 16 in flight through a broker to one worker, against the same worker called directly:
//              calls/s >= 0.7x; CPU per call of every process involved (client, broker, worker). Once more with a
//              worker of prefetch 1 (calls wait in the broker for a slot), rpc-serve's default
//   failover   a worker SIGKILLed mid-call (its heartbeat 500 ms): how long until its client has LostRemote, and
//              until its next call is answered by another worker (the bound: two heartbeat periods)
//   yardstick  the same add(1,2) through ZeroMQ's own zmq_proxy (ROUTER in front, DEALER behind) to a bare ROUTER
//              loop that answers add, against that loop called directly: what any ZeroMQ hop in between costs here
// Cases alternate round by round (the VM's speed drifts); each figure is the median of its rounds. The brokers run
// in this process (rpc::broker), the workers in processes of their own: this program started with --worker.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>
#include <duct/spawn.hpp>
#include <rpc/broker.hpp>
#include <rpc/client.hpp>
#include <rpc/event.hpp>
#include <rpc/server.hpp>

#include "common.hpp"
#include "raw_codec.hpp"

namespace {

using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

// --worker BACKEND HEARTBEAT_MS DIRECT|- work|hang PREFETCH: a default server (4 threads) serving nap(ms) and
// add(a, b) ("work") or hang() ("hang", never returns), a worker of the broker at BACKEND with that broker_prefetch
// (the default is 4), also listening on DIRECT unless "-". It ends when the bench's end of its duct closes (or
// when killed).
int worker(const std::string& backend, int heartbeat_ms, const std::string& direct, const std::string& kind,
           std::size_t prefetch) {
  rpc::server s({.name = kind, .heartbeat = std::chrono::milliseconds(heartbeat_ms), .broker_prefetch = prefetch});
  if (kind == "hang") {
    s.bind("hang", [](std::stop_token stop) {
      while (!stop.stop_requested()) std::this_thread::sleep_for(10ms);
      return 0;
    });
  } else {
    s.bind("nap", [](int ms) {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      return ms;
    });
    s.bind("add", [](int a, int b) { return a + b; });
  }
  if (direct != "-") s.listen(direct);
  s.connect(backend);
  s.start();
  duct::connection parent = duct::from_env();  // until the bench's end of it closes
  try {
    while (parent.try_recv()) {
    }
  } catch (const duct::error&) {
    // closed mid-message: the bench is gone either way
  }
  std::_Exit(0);
}

// A bare ROUTER that answers add(a, b) with OK [a + b], keeping whatever envelope came with the request.
template <class Ready>
void serve_bare(const std::string& endpoint, Ready ready) {
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.bind(endpoint);
  ready(endpoint);
  rpc::id_generator ids;
  std::vector<zmq::message_t> frames;
  for (;;) {
    frames.clear();
    if (!zmq::recv_multipart(router, std::back_inserter(frames)) || frames.size() < 2) continue;
    raw::event e = raw::decode(frames.back());
    if (e.name != "add") continue;  // a heartbeat
    const int sum = e.args->via.array.ptr[0].as<int>() + e.args->via.array.ptr[1].as<int>();
    const rpc::message_id id = ids.next();
    msgpack::sbuffer reply = raw::encode({id.bytes()}, e.message_id, "OK", std::make_tuple(sum));
    for (std::size_t i = 0; i + 1 < frames.size(); ++i) router.send(frames[i], zmq::send_flags::sndmore);
    router.send(zmq::buffer(reply.data(), reply.size()));
  }
}

// zmq_proxy: a ROUTER for clients, a DEALER connected to `to`.
template <class Ready>
void serve_proxy(const std::string& endpoint, const std::string& to, Ready ready) {
  zmq::context_t ctx;
  zmq::socket_t front(ctx, zmq::socket_type::router), back(ctx, zmq::socket_type::dealer);
  front.bind(endpoint);
  back.connect(to);
  ready(endpoint);
  zmq::proxy(front, back);
}

duct::child start_worker(const std::string& backend, int heartbeat_ms, const std::string& direct, const char* kind,
                         std::size_t prefetch = rpc::server_options{}.broker_prefetch) {
  return duct::spawn(
      {"/proc/self/exe", "--worker", backend, std::to_string(heartbeat_ms), direct, kind, std::to_string(prefetch)});
}

// `n` calls of `method(args...)` with `inflight` in flight at most. Returns: calls per second.
template <class... Args>
double run_inflight(rpc::client& c, int n, std::size_t inflight, const char* method, const Args&... args) {
  std::vector<rpc::future> window(inflight);  // a ring: the oldest call's slot takes the next one once answered
  const auto start = steady::now();
  for (int i = 0; i < n; ++i) {
    rpc::future& slot = window[static_cast<std::size_t>(i) % inflight];
    if (slot.valid()) (void)slot.get();
    slot = c.async_call(method, args...);
  }
  for (auto& f : window)
    if (f.valid()) (void)f.get();
  return n / std::chrono::duration<double>(steady::now() - start).count();
}

// A broker in this process with its workers.
struct pool {
  rpc::broker broker;
  std::string frontend, backend;
  std::vector<duct::child> workers;

  explicit pool(rpc::broker_options o = {}) : broker(std::move(o)) {
    frontend = broker.frontend("ipc://");
    backend = broker.backend("ipc://");
    broker.start();
  }
  void add(int heartbeat_ms, const std::string& direct, const char* kind,
           std::size_t prefetch = rpc::server_options{}.broker_prefetch) {
    workers.push_back(start_worker(backend, heartbeat_ms, direct, kind, prefetch));
  }
  // Waits (bounded) until the broker knows `n` workers.
  void until_workers(std::size_t n) const {
    const auto until = steady::now() + 30s;
    while (broker.workers() != n) {
      if (steady::now() > until) throw std::runtime_error("the broker's workers did not all join");
      std::this_thread::sleep_for(1ms);
    }
  }
  [[nodiscard]] std::vector<pid_t> pids() const {
    std::vector<pid_t> p;
    for (const auto& w : workers) p.push_back(w.pid());
    return p;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc == 7 && std::strcmp(argv[1], "--worker") == 0)
    return worker(argv[2], std::atoi(argv[3]), argv[4], argv[5], std::strtoul(argv[6], nullptr, 10));
  const bench_options opts = parse_bench_options(argc, argv, "broker-bench");
  const bool quick = opts.quick;
  // The yardstick's processes first, while this process has one thread to fork from.
  const served bare = fork_serving(private_ipc("bare"), [](const std::string& ep, auto ready) { serve_bare(ep, ready); });
  const served proxy = fork_serving(private_ipc("proxy"), [to = bare.endpoint](const std::string& ep, auto ready) {
    serve_proxy(ep, to, ready);
  });
  const int rounds = quick ? 1 : 5, nap_ms = 20;
  nlohmann::json out = nlohmann::json::array();

  // ---- scaling and ceiling: four pools (1, 2, 4, 8 workers); the first's worker also listens directly ----------
  const std::array<int, 4> sizes{1, 2, 4, 8};
  std::vector<std::unique_ptr<pool>> pools;
  const std::string direct = private_ipc("direct");
  for (int k : sizes) {
    auto p = std::make_unique<pool>();
    for (int i = 0; i < k; ++i) p->add(5000, k == 1 && i == 0 ? direct : "-", "work");
    pools.push_back(std::move(p));
  }
  // And one worker with prefetch 1 (rpc-serve's default): the ceiling when calls wait in the broker for a slot.
  auto one_slot = std::make_unique<pool>();
  one_slot->add(5000, "-", "work", 1);
  for (std::size_t i = 0; i < sizes.size(); ++i) pools[i]->until_workers(static_cast<std::size_t>(sizes[i]));
  one_slot->until_workers(1);
  std::vector<std::unique_ptr<rpc::client>> clients;
  for (auto& p : pools) clients.push_back(std::make_unique<rpc::client>(p->frontend));
  auto one_slot_client = std::make_unique<rpc::client>(one_slot->frontend);
  (void)one_slot_client->call("add", 1, 2);
  rpc::client direct_client(direct);
  for (auto& c : clients) (void)c->call("add", 1, 2);
  (void)direct_client.call("add", 1, 2);

  std::array<std::vector<double>, 4> scaling;
  std::vector<double> via_rate, via_cpu, via1_rate, via1_cpu, direct_rate, direct_cpu, proxy_rate, proxy_cpu, bare_rate, bare_cpu;
  rpc::client to_bare(bare.endpoint), to_proxy(proxy.endpoint);
  (void)to_bare.call("add", 1, 2);
  (void)to_proxy.call("add", 1, 2);
  const int add_n = quick ? 500 : 20000;
  const std::vector<pid_t> worker_pid = pools[0]->pids();
  for (int r = 0; r < rounds; ++r) {
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      const int n = (quick ? 16 : 160) * sizes[i];  // about 0.8 s a round at any size
      scaling[i].push_back(run_inflight(*clients[i], n, 64, "nap", nap_ms));
    }
    {
      cpu_meter cpu(worker_pid);
      via_rate.push_back(run_inflight(*clients[0], add_n, 16, "add", 1, 2));
      via_cpu.push_back(cpu.us() / add_n);
    }
    {
      cpu_meter cpu(one_slot->pids());
      via1_rate.push_back(run_inflight(*one_slot_client, add_n, 16, "add", 1, 2));
      via1_cpu.push_back(cpu.us() / add_n);
    }
    {
      cpu_meter cpu(worker_pid);
      direct_rate.push_back(run_inflight(direct_client, add_n, 16, "add", 1, 2));
      direct_cpu.push_back(cpu.us() / add_n);
    }
    {
      cpu_meter cpu(std::vector<pid_t>{bare.pid, proxy.pid});
      proxy_rate.push_back(run_inflight(to_proxy, add_n, 16, "add", 1, 2));
      proxy_cpu.push_back(cpu.us() / add_n);
    }
    {
      cpu_meter cpu(bare.pid);
      bare_rate.push_back(run_inflight(to_bare, add_n, 16, "add", 1, 2));
      bare_cpu.push_back(cpu.us() / add_n);
    }
  }
  stop_child(proxy.pid);
  stop_child(bare.pid);

  std::printf("broker: medians of %d rounds, cases alternating\n\n", rounds);
  std::printf("nap(%d ms), 64 in flight, workers of 4 threads   calls/s   vs linear (k x 1 worker)\n", nap_ms);
  const double one = median(scaling[0]);
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const double rate = median(scaling[i]);
    const double linear = rate / (one * sizes[i]);
    std::printf("  %d worker%s %42.0f   %.2fx\n", sizes[i], sizes[i] == 1 ? " " : "s", rate, linear);
    out.push_back({{"case", "nap 20 ms, 64 in flight, " + std::to_string(sizes[i]) + " workers"},
                   {"workers", sizes[i]}, {"calls_per_s", rate}, {"vs_linear", linear}});
  }
  const double ceiling = median(via_rate) / median(direct_rate);
  std::printf("\nadd(1,2), 16 in flight, one worker                 calls/s   CPU us/call (all processes)\n");
  std::printf("  direct to the worker %31.0f   %.1f\n", median(direct_rate), median(direct_cpu));
  std::printf("  through the broker %33.0f   %.1f\n", median(via_rate), median(via_cpu));
  std::printf("  broker's ceiling vs direct: %.2fx (>= 0.7x); CPU %.2fx\n", ceiling, median(via_cpu) / median(direct_cpu));
  const double ceiling1 = median(via1_rate) / median(direct_rate);
  std::printf("  through the broker, worker prefetch 1 %14.0f   %.1f\n", median(via1_rate), median(via1_cpu));
  std::printf("  with prefetch 1 (rpc-serve's default) vs direct: %.2fx; CPU %.2fx\n", ceiling1,
              median(via1_cpu) / median(direct_cpu));
  const double yard = median(proxy_rate) / median(bare_rate);
  std::printf("  yardstick, a bare ROUTER loop direct %15.0f   %.1f\n", median(bare_rate), median(bare_cpu));
  std::printf("  yardstick, through zmq_proxy %23.0f   %.1f\n", median(proxy_rate), median(proxy_cpu));
  std::printf("  zmq_proxy's ceiling vs direct: %.2fx; CPU %.2fx\n", yard, median(proxy_cpu) / median(bare_cpu));
  out.push_back({{"case", "add, 16 in flight, bare ROUTER loop direct"}, {"calls_per_s", median(bare_rate)},
                 {"cpu_us_per_call", median(bare_cpu)}});
  out.push_back({{"case", "add, 16 in flight, through zmq_proxy"}, {"calls_per_s", median(proxy_rate)},
                 {"cpu_us_per_call", median(proxy_cpu)}, {"calls_per_s_vs_direct", yard}});
  out.push_back({{"case", "add, 16 in flight, direct"}, {"calls_per_s", median(direct_rate)},
                 {"cpu_us_per_call", median(direct_cpu)}});
  out.push_back({{"case", "add, 16 in flight, through the broker"}, {"calls_per_s", median(via_rate)},
                 {"cpu_us_per_call", median(via_cpu)}, {"calls_per_s_vs_direct", ceiling}});
  out.push_back({{"case", "add, 16 in flight, through the broker, worker prefetch 1"}, {"calls_per_s", median(via1_rate)},
                 {"cpu_us_per_call", median(via1_cpu)}, {"calls_per_s_vs_direct", ceiling1}});
  clients.clear();
  one_slot_client.reset();
  pools.clear();
  one_slot.reset();

  // ---- failover: a worker killed mid-call ------------------------------------------------------------------------
  const int heartbeat_ms = 500, failovers = quick ? 1 : 3;
  pool f;
  f.add(heartbeat_ms, "-", "work");
  rpc::client c(f.frontend);
  std::vector<double> lost_ms, next_ms;
  for (int r = 0; r < failovers; ++r) {
    duct::child doomed = start_worker(f.backend, heartbeat_ms, "-", "hang");
    f.until_workers(2);
    rpc::future held = c.async_call("hang");
    while (f.broker.open_channels() == 0) std::this_thread::sleep_for(1ms);  // the call is on the doomed worker
    const auto killed = steady::now();
    doomed.kill(SIGKILL);
    try {
      (void)held.get();
      std::fprintf(stderr, "broker-bench: the call on a killed worker succeeded\n");
      return 1;
    } catch (const rpc::lost_remote_error&) {
    }
    lost_ms.push_back(std::chrono::duration<double, std::milli>(steady::now() - killed).count());
    (void)c.call("add", 1, 2);
    next_ms.push_back(std::chrono::duration<double, std::milli>(steady::now() - killed).count());
    (void)doomed.wait();
    f.until_workers(1);
  }
  std::printf("\nfailover (worker heartbeat %d ms, SIGKILL mid-call; median of %d)\n", heartbeat_ms, failovers);
  std::printf("  LostRemote to the client after %.0f ms (bound: 2 heartbeats, %d ms); next call answered after %.0f ms\n",
              median(lost_ms), 2 * heartbeat_ms, median(next_ms));
  out.push_back({{"case", "failover"}, {"heartbeat_ms", heartbeat_ms}, {"lost_remote_ms", median(lost_ms)},
                 {"next_call_ms", median(next_ms)}});
  if (!opts.json_path.empty())
    std::ofstream(opts.json_path) << nlohmann::json{{"bench", "broker"}, {"rows", out}}.dump(2) << "\n";
  return 0;
}
