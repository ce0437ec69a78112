// rpc-demo: a zerorpc-compatible server and client in one process, and what happens to a long call.
//
//   1. bind C++ callables, call them; a wrong argument is a TypeError, not a crash
//   2. a call that outlives the server's budget is answered with a token; the client waits on it server-side,
//      so the caller just gets its result
//   3. an explicit token: submit, poll, collect (from here, or from any other client of the server)
//   4. a streamed reply, read item by item, and a call that reports its progress before its result
//   5. the same API over a duct: a forked worker serves the parent, and calls back over the same duct
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <thread>

#include <duct/connection.hpp>
#include <rpc/client.hpp>
#include <rpc/link.hpp>
#include <rpc/server.hpp>

using namespace std::chrono_literals;

namespace {

// The worker: serves "square", which reports to the parent's "log" method over the same duct before answering.
int worker(duct::connection up) {
  rpc::link parent_link(std::move(up));
  rpc::server s({.name = "worker"});
  rpc::client parent(parent_link);
  s.bind("square", [&](int n) {
    parent.call("log", "worker " + std::to_string(::getpid()) + " squares " + std::to_string(n));
    return n * n;
  });
  s.listen(parent_link);
  s.start();
  parent_link.wait_closed();  // serve until the parent closes its end
  return 0;
}

}  // namespace

int main() try {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  rpc::server server({.name = "demo", .defer_after = 200ms, .list_jobs = true});
  server.bind("add", [](int a, int b) { return a + b; }, "Adds two integers.", {"a", "b"});
  server.bind("render", [](std::stop_token stop, int frames) {
    for (int i = 0; i < frames && !stop.stop_requested(); ++i) std::this_thread::sleep_for(100ms);
    return std::string("rendered ") + std::to_string(frames) + " frames";
  }, "Takes a while.", {"frames"});
  server.bind("countdown", [](rpc::sink& out, int from) {
    for (int i = from; i > 0; --i) out.write(i);  // each write waits for the client's credit
  }, "Counts down to 1, an item each.", {"from"});
  server.bind("crunch", [](rpc::progress& p, int steps) {
    for (int i = 1; i <= steps; ++i) {
      std::this_thread::sleep_for(20ms);
      p.report(i * 100 / steps);
    }
    return std::string("crunched");
  }, "Reports percent done.", {"steps"});
  std::string endpoint = server.listen("tcp://127.0.0.1:0");
  server.start();
  std::printf("== 1. a server at %s, a client, a call\n", endpoint.c_str());

  rpc::client client(endpoint);
  std::printf("   add(2, 3) = %d\n", client.call("add", 2, 3).as<int>());
  try {
    client.call("add", std::string("two"), 3);
  } catch (const rpc::remote_error& e) {
    std::printf("   add(\"two\", 3) -> %s\n", e.what());
  }

  std::printf("== 2. a call longer than the server's 200 ms budget\n");
  auto start = std::chrono::steady_clock::now();
  std::string result = client.call("render", 8).as<std::string>();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  std::printf("   render(8) = \"%s\" after %lld ms; the server deferred it: %s\n", result.c_str(),
              static_cast<long long>(ms), client.call("_ductrpc_list").to_json().c_str());

  std::printf("== 3. a token, by hand\n");
  std::string token = client.submit("render", 3);
  std::printf("   submit(render, 3) -> token %s\n", token.c_str());
  std::printf("   poll -> %s\n", client.poll(token).to_json().c_str());
  std::printf("   wait -> %s\n", client.wait(token, 10s).to_json().c_str());
  std::printf("   poll -> %s\n", client.poll(token).to_json().c_str());

  std::printf("== 4. a stream, and progress\n");
  rpc::source items = client.stream("countdown", 5);
  std::printf("   countdown(5):");
  while (auto item = items.next()) std::printf(" %d", item->as<int>());
  std::printf(" (end of stream)\n");
  std::string crunched = client.call_with_progress("crunch", [](const duct::value& pct) {
    std::printf("   crunch: %d%%\n", pct.as<int>());
  }, 4).as<std::string>();
  std::printf("   crunch(4) = \"%s\"\n", crunched.c_str());

  server.shutdown(rpc::shutdown_mode::drain, 5s);
  std::printf("   server drained and stopped\n");

  std::printf("== 5. the same over a duct, to a forked worker that calls back\n");
  auto [parent_end, child_end] = duct::pair();
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    parent_end.close();
    ::_exit(worker(std::move(child_end)));
  }
  child_end.close();
  rpc::link down(std::move(parent_end));
  rpc::server callbacks;
  callbacks.bind("log", [](const std::string& line) {
    std::printf("   (callback) %s\n", line.c_str());
    return true;
  });
  callbacks.listen(down);
  callbacks.start();
  rpc::client to_worker(down);
  std::printf("   over %s: square(12) = %d\n", to_worker.endpoint().c_str(), to_worker.call("square", 12).as<int>());
  callbacks.stop();
  down.close();
  int status = 0;
  ::waitpid(pid, &status, 0);
  std::printf("   worker exited with status %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "rpc-demo: %s\n", e.what());
  return 1;
}
