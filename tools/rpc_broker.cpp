// rpc-broker: many rpc-serve workers (or any rpc::server that connect()s) behind one endpoint. Clients connect to
// the frontends as to one zerorpc server; workers connect to the backends. See man/rpc-broker.1, docs/broker.md.
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <duct/version.hpp>
#include <rpc/broker.hpp>
#include <rpc/curve.hpp>
#include <rpc/error.hpp>

#include "cli.hpp"
#include "serve_log.hpp"

namespace {

struct settings {
  std::vector<std::string> frontends, backends;
  std::string name = "rpc-broker";
  double heartbeat = 5, forget_after = 30;
  std::size_t queue = 4096, client_queue = 256, client_calls = 1024;
  std::string curve_secret;
  std::vector<std::string> curve_allow, curve_workers;
  bool quiet = false, log_json = false;
};

std::chrono::milliseconds seconds_option(double s) { return std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000)); }

bool loopback(const std::string& endpoint) {
  if (!endpoint.starts_with("tcp://")) return true;
  const std::string host = endpoint.substr(6, endpoint.rfind(':') - 6);
  return host.starts_with("127.") || host == "localhost" || host == "[::1]" || host == "::1";
}

std::vector<std::string> keys_in(const std::vector<std::string>& paths, const char* option) {
  std::vector<std::string> keys;
  for (const std::string& path : paths) {
    std::vector<std::string> found = rpc::load_curve_public_keys(path);
    if (found.empty()) throw CLI::ValidationError(option, path + " holds no certificate");
    keys.insert(keys.end(), found.begin(), found.end());
  }
  return keys;
}

}  // namespace

int main(int argc, char** argv) {
  settings cfg;
  CLI::App app{"rpc-broker: many rpc-serve workers behind one endpoint. Clients (rpc-call, zerorpc for Python or node, "
               "our C++ client) connect to a frontend as to one server; workers (rpc-serve --connect) connect to a "
               "backend. Every event of a call stays with the worker that took it.",
               "rpc-broker"};
  app.add_option("-f,--frontend", cfg.frontends, "Take clients on ENDPOINT (tcp://HOST:PORT, port 0 picks one; "
                                                 "ipc://PATH); repeatable; default tcp://127.0.0.1:4242")
      ->type_name("ENDPOINT");
  app.add_option("-b,--backend", cfg.backends, "Take workers on ENDPOINT; repeatable; default tcp://127.0.0.1:4243")
      ->type_name("ENDPOINT");
  app.add_option("-n,--name", cfg.name, "The name _zerorpc_name and _zerorpc_ping report")->type_name("NAME");
  app.add_option("--heartbeat", cfg.heartbeat, "How often a call waiting for a worker heartbeats its client, in "
                                               "seconds (default 5)")
      ->type_name("SECONDS")->check(tools::seconds());
  app.add_option("--forget-after", cfg.forget_after, "Forget a call silent in both directions this long (default 30; "
                                                     "more than two heartbeats of any client or worker)")
      ->type_name("SECONDS")->check(tools::seconds());
  app.add_option("--queue", cfg.queue, "Calls waiting for a worker, at most; beyond it calls fail with Overloaded "
                                       "(default 4096)")
      ->type_name("N")->check(CLI::Range(1, 1000000));
  app.add_option("--client-queue", cfg.client_queue, "Calls of one client waiting for a worker, at most (default 256)")
      ->type_name("N")->check(CLI::Range(1, 1000000));
  app.add_option("--client-calls", cfg.client_calls, "Calls of one client (a CURVE key, else a connection) open "
                                                      "through the broker, at most (default 1024)")
      ->type_name("N")->check(CLI::Range(1, 1000000));
  app.add_option("--curve-secret", cfg.curve_secret, "Speak CURVE on every frontend and backend, with the key pair in "
                                                     "the certificate FILE (an rpc-serve --keygen FILE_secret)")
      ->type_name("FILE");
  app.add_option("--curve-allow", cfg.curve_allow, "With --curve-secret: admit only the client keys in PATH, a public "
                                                   "certificate or a directory of them; repeatable")
      ->type_name("PATH");
  app.add_option("--curve-workers", cfg.curve_workers, "With --curve-secret: admit only the worker keys in PATH on "
                                                       "the backends; repeatable")
      ->type_name("PATH");
  app.add_flag("-q,--quiet", cfg.quiet, "No line when workers join or leave");
  app.add_flag("--log-json", cfg.log_json, "Log JSON lines instead of text");
  app.set_version_flag("--version", "rpc-broker (ductrpc) " DUCTRPC_VERSION);
  tools::gnu_usage_errors(app, "rpc-broker");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help and --version exit 0; every usage error 2
  }
  if (cfg.frontends.empty()) cfg.frontends.push_back("tcp://127.0.0.1:4242");
  if (cfg.backends.empty()) cfg.backends.push_back("tcp://127.0.0.1:4243");

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // taken by sigtimedwait() below, in every thread
  ::signal(SIGPIPE, SIG_IGN);

  tools::serve_log log({cfg.quiet, false, cfg.log_json, "rpc-broker"});
  rpc::broker_options o;
  o.name = cfg.name;
  o.heartbeat = seconds_option(cfg.heartbeat);
  o.forget_after = seconds_option(cfg.forget_after);
  o.max_queued = cfg.queue;
  o.client_queued = cfg.client_queue;
  o.client_open = cfg.client_calls;
  try {
    if ((!cfg.curve_allow.empty() || !cfg.curve_workers.empty()) && cfg.curve_secret.empty())
      throw CLI::ValidationError("--curve-allow/--curve-workers", "go with --curve-secret");
    if (!cfg.curve_secret.empty()) {
      rpc::curve_keypair keys = rpc::load_curve_certificate(cfg.curve_secret);
      if (keys.secret_key.empty())
        throw CLI::ValidationError("--curve-secret", cfg.curve_secret + " holds no secret key (use the _secret file)");
      o.curve_secret_key = keys.secret_key;
      o.curve_allow = keys_in(cfg.curve_allow, "--curve-allow");
      o.curve_workers = keys_in(cfg.curve_workers, "--curve-workers");
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const rpc::error& e) {
    std::fprintf(stderr, "rpc-broker: %s\n", e.what());
    return 2;
  }

  try {
    rpc::broker broker(o);
    for (const std::string& f : cfg.frontends) {
      std::string where = broker.frontend(f);
      log.event("listening", {{"endpoint", where}, {"side", "frontend"}}, "frontend on " + where);
      if (o.curve_secret_key.empty() && !loopback(where))
        log.event("warning", {{"endpoint", where}},
                  "warning: " + where + " is reachable from other machines without CURVE (see --curve-secret)");
    }
    for (const std::string& b : cfg.backends) {
      std::string where = broker.backend(b);
      log.event("listening", {{"endpoint", where}, {"side", "backend"}}, "backend on " + where);
      if (!loopback(where) && (o.curve_secret_key.empty() || o.curve_workers.empty()))
        log.event("warning", {{"endpoint", where}},
                  "warning: backend " + where + " is reachable from other machines and admits any worker: a "
                  "worker sees every call sent to it (see --curve-workers)");
    }
    broker.start();

    // Until a signal: once a second, a line when the number of workers changed, and for the events dropped.
    std::size_t workers = 0;
    std::uint64_t dropped_logged = 0;
    int sig = 0;
    while (sig <= 0) {
      const timespec second{1, 0};
      sig = sigtimedwait(&signals, nullptr, &second);
      if (const std::size_t now = broker.workers(); now != workers && !cfg.quiet) {
        log.event("workers", {{"workers", std::to_string(now)}}, std::to_string(now) + " worker" + (now == 1 ? "" : "s"));
        workers = now;
      }
      if (const std::uint64_t dropped = broker.dropped_events(); dropped > dropped_logged) {
        log.event("dropped", {{"events", std::to_string(dropped - dropped_logged)}},
                  "dropped " + std::to_string(dropped - dropped_logged) + " malformed or unroutable events (" +
                      std::to_string(dropped) + " in all)");
        dropped_logged = dropped;
      }
    }
    log.event("signal", {{"signal", sig == SIGINT ? "SIGINT" : "SIGTERM"}}, "stopping");
    broker.stop();
  } catch (const rpc::error& e) {
    std::fprintf(stderr, "rpc-broker: %s\n", e.what());
    return 1;
  }
  return 0;
}
