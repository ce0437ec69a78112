// rpc-demo: a zerorpc-compatible server and client in one process, and what happens to a long call.
//
//   1. bind C++ callables, call them; a wrong argument is a TypeError, not a crash
//   2. a call that outlives the server's budget is answered with a token; the client waits on it server-side,
//      so the caller just gets its result
//   3. an explicit token: submit, poll, collect (from here, or from any other client of the server)
#include <chrono>
#include <cstdio>
#include <thread>

#include <rpc/client.hpp>
#include <rpc/server.hpp>

using namespace std::chrono_literals;

int main() try {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  rpc::server server({.name = "demo", .defer_after = 200ms});
  server.bind("add", [](int a, int b) { return a + b; }, "Adds two integers.", {"a", "b"});
  server.bind("render", [](std::stop_token stop, int frames) {
    for (int i = 0; i < frames && !stop.stop_requested(); ++i) std::this_thread::sleep_for(100ms);
    return std::string("rendered ") + std::to_string(frames) + " frames";
  }, "Takes a while.", {"frames"});
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

  server.shutdown(rpc::shutdown_mode::drain, 5s);
  std::printf("   server drained and stopped\n");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "rpc-demo: %s\n", e.what());
  return 1;
}
