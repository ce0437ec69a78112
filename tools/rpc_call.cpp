// rpc-call: call a method of any zerorpc server from a shell. See man/rpc-call.1 (the exit codes are listed there
// and in `exit_code` below).
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include <duct/version.hpp>
#include <duct/codec.hpp>
#include <rpc/client.hpp>
#include <rpc/curve.hpp>

#include "call_args.hpp"
#include "cli.hpp"
#include "json_form.hpp"

namespace {

using namespace std::chrono_literals;

// The exit codes, documented in man/rpc-call.1.
enum exit_code : int {
  ok = 0,
  remote_failed = 1,  // the method failed (Name: message on stderr), or the server broke the protocol
  usage = 2,
  unreachable = 3,  // cannot connect, or the server went away (lost remote)
  timed_out = 4,
  cancelled = 5,
  still_running = 6,  // --poll, or --wait whose limit passed first
  stdout_closed = 141,  // 128 + SIGPIPE, as a program that SIGPIPE ended (the call is stopped first)
  // and 128 + the signal for SIGINT, SIGTERM and SIGHUP (the call is stopped first)
};

// Whatever reads our stdout went away (`rpc-call ... | head -1`).
struct output_closed {};

struct settings {
  std::string endpoint, method;
  std::vector<std::string> args;
  bool strings = false, from_stdin = false, raw = false, pretty = false, progress = false, async = false;
  std::size_t chunk_size = 0;
  std::string wait_token, poll_token, cancel_token;
  bool list = false, inspect = false, json = false, verbose = false;
  std::string curve_server, curve_secret;
  std::optional<double> timeout;
  double heartbeat = 5, connect_timeout = 5;
};

std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
}

// Text on stdout, flushed (each stream item as it arrives). Throws: output_closed once nobody reads it.
void print_text(const std::string& text) {
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0) throw output_closed{};
}

// One value on stdout: a line of JSON; with --raw a string's text and a newline, or bytes exactly as they are (so a
// stream of bytes comes out as it went in).
void print(const msgpack::object& o, const settings& cfg) {
  std::string line = tools::to_json(o, {cfg.pretty, cfg.raw});
  if (!(cfg.raw && o.type == msgpack::type::BIN)) line += '\n';
  print_text(line);
}

// stdin into the call's input: lines (each with its newline, so the bytes arrive as they were), or raw chunks.
void send_stdin(rpc::duplex& call, const settings& cfg) {
  if (cfg.chunk_size > 0) {
    std::vector<char> buf(cfg.chunk_size);
    for (;;) {
      std::size_t n = std::fread(buf.data(), 1, buf.size(), stdin);
      if (n == 0) break;
      call.write(std::vector<char>(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n)));  // bin
    }
  } else {
    // A line that is not UTF-8 goes as bytes: a msgpack str must be text.
    auto send = [&](const std::string& line) {
      if (duct::is_valid_utf8(line)) call.write(line);
      else call.write(std::vector<char>(line.begin(), line.end()));
    };
    std::string line;
    for (int c; (c = std::getc(stdin)) != EOF;) {
      line += static_cast<char>(c);
      if (c == '\n') {
        send(line);
        line.clear();
      }
    }
    if (!line.empty()) send(line);
  }
  call.end();
}

// A progress bar on a terminal, JSON lines otherwise.
void show_progress(const duct::value& report) {
  if (!::isatty(2)) {
    std::fprintf(stderr, "%s\n", report.to_json().c_str());
    return;
  }
  const msgpack::object& o = report.get();
  std::optional<double> fraction;
  auto number = [](const msgpack::object& x) -> std::optional<double> {
    if (x.type == msgpack::type::POSITIVE_INTEGER || x.type == msgpack::type::NEGATIVE_INTEGER ||
        x.type == msgpack::type::FLOAT32 || x.type == msgpack::type::FLOAT64)
      return x.as<double>();
    return std::nullopt;
  };
  if (auto n = number(o)) fraction = *n > 1 ? *n / 100 : *n;  // a percentage or a fraction
  if (o.type == msgpack::type::MAP) {  // {"done": x, "total": y}
    std::optional<double> done, total;
    for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
      std::string key = o.via.map.ptr[i].key.type == msgpack::type::STR ? o.via.map.ptr[i].key.as<std::string>() : "";
      if (key == "done") done = number(o.via.map.ptr[i].val);
      if (key == "total") total = number(o.via.map.ptr[i].val);
    }
    if (done && total && *total > 0) fraction = *done / *total;
  }
  if (!fraction) {
    std::fprintf(stderr, "\r\033[K%s", report.to_json().c_str());
    return;
  }
  const int width = 30, filled = static_cast<int>(std::clamp(*fraction, 0.0, 1.0) * width);
  std::fprintf(stderr, "\r[%s%s] %3.0f%%", std::string(static_cast<std::size_t>(filled), '#').c_str(),
               std::string(static_cast<std::size_t>(width - filled), ' ').c_str(), *fraction * 100);
}

// A token as --async prints it, or as a JSON string (as a JSON-minded script may hold it): the bare token.
std::string bare_token(const std::string& t) {
  if (t.size() >= 2 && t.front() == '"' && t.back() == '"' && t.find_first_of("\"\\", 1) == t.size() - 1)
    return t.substr(1, t.size() - 2);
  return t;
}

// What a signal asks of a running call: it is stopped on the server, then rpc-call exits with 128 + the signal.
struct interruption {
  std::stop_source stop;
  std::atomic<int> signal{0};
  std::atomic<bool> call_open{false};  // a call runs that the signal must stop (else the process just ends)
  // How long the stops may take to leave (the answer to a ping sent after them): 2 s, or --connect-timeout if that
  // is shorter. A loaded machine can take more than a second; a server that has gone never answers, and then a
  // `--timeout 1` call should not take much longer than its second.
  std::chrono::milliseconds deliver_within{1000};
};
interruption interrupt;

// The stops our client sends (a stream stopped by a signal, a time limit or a closed stdout) leave on the client's
// shared socket. A ping answered on that socket after them shows they have left: ending the process first could
// drop them, and the server would run the call on until two heartbeats went missing.
void deliver_stops(rpc::client& c) {
  try {
    (void)c.async_call_for(interrupt.deliver_within, "_zerorpc_ping").wait_for(interrupt.deliver_within);
  } catch (const std::exception&) {
    // the server is gone: there is nothing left to stop
  }
}

// The signal that interrupted the call, as the exit code, once its stop has been delivered.
int interrupted(rpc::client& c) {
  deliver_stops(c);
  return 128 + interrupt.signal.load();
}

// Runs a call that rpc-call may give up on: after a time-out or a signal, the call's stop is delivered to the server
// before the error, or the signal's exit code, comes out.
int stoppable(rpc::client& c, const std::function<int()>& call) {
  interrupt.call_open = true;
  try {
    return call();
  } catch (const rpc::timeout_error&) {
    deliver_stops(c);
    throw;
  } catch (const rpc::error&) {
    if (interrupt.signal) return interrupted(c);
    throw;
  }
}

// The argument list of a method as _zerorpc_inspect describes it: ["a", "b"] from [{"name": "a"}, {"name": "b"}].
std::string signature(const msgpack::object& m) {
  std::string out;
  for (std::uint32_t i = 0; m.type == msgpack::type::MAP && i < m.via.map.size; ++i) {
    const msgpack::object_kv& kv = m.via.map.ptr[i];
    if (kv.key.type != msgpack::type::STR || kv.key.as<std::string>() != "args" || kv.val.type != msgpack::type::ARRAY)
      continue;
    for (std::uint32_t j = 0; j < kv.val.via.array.size; ++j) {
      const msgpack::object& a = kv.val.via.array.ptr[j];
      std::string name = a.type == msgpack::type::STR ? a.as<std::string>() : "?";
      for (std::uint32_t k = 0; a.type == msgpack::type::MAP && k < a.via.map.size; ++k)
        if (a.via.map.ptr[k].key.type == msgpack::type::STR && a.via.map.ptr[k].key.as<std::string>() == "name" &&
            a.via.map.ptr[k].val.type == msgpack::type::STR)
          name = a.via.map.ptr[k].val.as<std::string>();
      out += (j ? ", " : "") + name;
    }
  }
  return out;
}

// One method as a person reads it: "add(a, b) — Adds two numbers."
std::string readable(const std::string& name, const msgpack::object& m) {
  std::string doc;
  for (std::uint32_t i = 0; m.type == msgpack::type::MAP && i < m.via.map.size; ++i)
    if (m.via.map.ptr[i].key.type == msgpack::type::STR && m.via.map.ptr[i].key.as<std::string>() == "doc" &&
        m.via.map.ptr[i].val.type == msgpack::type::STR)
      doc = m.via.map.ptr[i].val.as<std::string>();
  while (!doc.empty() && (doc.back() == '\n' || doc.back() == ' ')) doc.pop_back();
  std::string line = name + "(" + signature(m) + ")";
  if (!doc.empty()) line += " \u2014 " + doc;
  return line + "\n";
}

int list_or_inspect(rpc::client& c, const settings& cfg) {
  // _zerorpc_inspect, which zerorpc-python, zerorpc-node and ours all answer (node has no _zerorpc_list).
  duct::value all = c.call("_zerorpc_inspect");
  const msgpack::object& o = all.get();
  const bool as_text = cfg.inspect && !cfg.json && ::isatty(1);
  if (cfg.inspect && cfg.method.empty() && !as_text) {
    print(o, cfg);
    return ok;
  }
  const msgpack::object* methods = nullptr;
  for (std::uint32_t i = 0; o.type == msgpack::type::MAP && i < o.via.map.size; ++i)
    if (o.via.map.ptr[i].key.type == msgpack::type::STR && o.via.map.ptr[i].key.as<std::string>() == "methods" &&
        o.via.map.ptr[i].val.type == msgpack::type::MAP)
      methods = &o.via.map.ptr[i].val;
  if (!methods) throw rpc::protocol_error(cfg.endpoint + ": _zerorpc_inspect did not list the methods");
  std::vector<std::pair<std::string, const msgpack::object*>> named;  // sorted by name
  for (std::uint32_t j = 0; j < methods->via.map.size; ++j)
    if (methods->via.map.ptr[j].key.type == msgpack::type::STR)
      named.emplace_back(methods->via.map.ptr[j].key.as<std::string>(), &methods->via.map.ptr[j].val);
  std::sort(named.begin(), named.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  if (cfg.list) {  // the names: a JSON array, or one per line with --raw
    std::vector<std::string> names;
    for (const auto& [name, m] : named) names.push_back(name);
    msgpack::zone zone;
    const msgpack::object list(names, zone);
    if (!cfg.raw) print(list, cfg);
    else
      for (std::uint32_t i = 0; i < list.via.array.size; ++i) print(list.via.array.ptr[i], cfg);
    return ok;
  }
  for (const auto& [name, m] : named) {
    if (!cfg.method.empty() && name != cfg.method) continue;
    if (as_text) print_text(readable(name, *m));
    else print(*m, cfg);
    if (!cfg.method.empty()) return ok;
  }
  if (cfg.method.empty()) return ok;
  throw rpc::unknown_method_error("NameError", cfg.method + " is not a method of " + cfg.endpoint);
}

int wait_for_token(rpc::client& c, const settings& cfg, const std::string& token) {
  // Waits a second at a time (the server holds each wait), showing the time spent on a terminal. A signal ends
  // the wait, not the job: waiting for a job is not owning it (--cancel stops it).
  const auto start = std::chrono::steady_clock::now();
  const bool tty = ::isatty(2);
  for (;;) {
    auto spent = std::chrono::steady_clock::now() - start;
    if (cfg.timeout && spent >= ms(*cfg.timeout)) {
      if (tty) std::fprintf(stderr, "\n");
      throw rpc::still_running_error("StillRunning", token + " is still running");
    }
    auto slice = 1000ms;
    if (cfg.timeout)
      slice = std::min(slice, ms(*cfg.timeout) - std::chrono::duration_cast<std::chrono::milliseconds>(spent));
    try {
      duct::value result = c.wait(token, slice);
      if (tty) std::fprintf(stderr, "\r\033[K");
      print(result.get(), cfg);
      return ok;
    } catch (const rpc::still_running_error&) {
      if (tty)
        std::fprintf(stderr, "\r\033[Kwaiting for %s: %.0f s", token.c_str(),
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
  }
}

// A plain call, read as a stream: a method that streams prints each item as it comes, one that answers prints its
// result (the stream's only item). A signal, --timeout or a closed stdout stops it on the server before we exit.
int stream_call(rpc::client& c, const settings& cfg, const duct::buffer& args, const std::function<bool()>& connected) {
  std::optional<rpc::duplex> upload;
  std::optional<rpc::source> stream;
  interrupt.call_open = true;
  if (cfg.from_stdin) upload.emplace(c.chunked_call_packed(cfg.method, args));
  else stream.emplace(c.stream_packed(cfg.method, args));
  rpc::source& items = upload ? upload->output() : *stream;
  std::stop_callback on_signal(interrupt.stop.get_token(), [&items] { items.cancel(); });
  if (!connected()) return unreachable;
  const auto deadline = cfg.timeout ? std::optional(std::chrono::steady_clock::now() + ms(*cfg.timeout)) : std::nullopt;
  return stoppable(c, [&] {
    try {
      if (upload) send_stdin(*upload, cfg);
      for (;;) {
        std::optional<duct::value> item;
        if (deadline) {
          auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now());
          item = items.next_for(std::max(left, 0ms));  // a time-out stops the stream
        } else {
          item = items.next();
        }
        if (!item) return ok;
        print(item->get(), cfg);
      }
    } catch (const output_closed&) {
      items.cancel();
      deliver_stops(c);
      return stdout_closed;
    }
  });
}

int run(const settings& cfg) {
  rpc::client_options co;
  co.heartbeat = ms(cfg.heartbeat);
  if (!cfg.curve_server.empty()) {
    try {
      co.curve_server_key = rpc::load_curve_certificate(cfg.curve_server).public_key;
      if (!cfg.curve_secret.empty()) {
        rpc::curve_keypair mine = rpc::load_curve_certificate(cfg.curve_secret);
        if (mine.secret_key.empty())
          throw CLI::ValidationError("--curve-secret", cfg.curve_secret + " holds no secret key (use the _secret file)");
        co.curve_public_key = mine.public_key;
        co.curve_secret_key = mine.secret_key;
      }
    } catch (const rpc::error& e) {
      throw CLI::ValidationError("--curve-server", e.what());
    }
  }
  // --wait keeps its own deadline: each wait is held by the server for a slice of it, and answered in time.
  if (cfg.timeout && cfg.wait_token.empty()) co.timeout = ms(*cfg.timeout);
  // Never destroyed: main() ends the process with _Exit once the output is flushed, sparing the orderly close of
  // the client's threads and ZeroMQ's (a millisecond of a command that may run in a loop). Nothing is left unsent:
  // every call made has been answered, or stopped and its stop delivered (deliver_stops), by then.
  rpc::client* made = nullptr;
  try {
    made = new rpc::client(cfg.endpoint, co);
  } catch (const rpc::error& e) {
    throw CLI::ValidationError("ENDPOINT", e.what());  // a malformed endpoint is a usage error
  }
  rpc::client& c = *made;
  // ZeroMQ connects in the background and never says it could not: a ping answered within the connect timeout
  // tells us someone is there. It goes over the same connection as a call's stream (one TCP handshake, not two),
  // and a plain call is sent right behind it, so that the two round trips overlap.
  rpc::future ping = c.async_call_for(ms(cfg.connect_timeout), "_zerorpc_ping");
  auto connected = [&] {
    try {
      (void)ping.get();
    } catch (const rpc::timeout_error&) {
      std::fprintf(stderr, "rpc-call: cannot connect to %s: no answer within %g s\n", cfg.endpoint.c_str(),
                   cfg.connect_timeout);
      return false;
    } catch (const rpc::connection_error& e) {
      std::fprintf(stderr, "rpc-call: cannot connect to %s: %s\n", cfg.endpoint.c_str(), e.reason().c_str());
      return false;
    } catch (const rpc::remote_error&) {
      // answered, if not with a pong: someone is there
    }
    return true;
  };
  const bool plain = !cfg.list && !cfg.inspect && cfg.poll_token.empty() && cfg.cancel_token.empty() &&
                     cfg.wait_token.empty() && !cfg.async && !cfg.progress;
  if (plain) return stream_call(c, cfg, tools::pack_arguments(cfg.args, cfg.strings), connected);
  duct::buffer args = cfg.async || cfg.progress ? tools::pack_arguments(cfg.args, cfg.strings) : duct::buffer();  // usage errors first
  if (!connected()) return unreachable;
  if (cfg.list || cfg.inspect) return list_or_inspect(c, cfg);
  if (!cfg.poll_token.empty()) {
    duct::value state = c.poll(bare_token(cfg.poll_token));
    print(state.get(), cfg);
    const msgpack::object& o = state.get();
    for (std::uint32_t i = 0; o.type == msgpack::type::MAP && i < o.via.map.size; ++i) {
      const msgpack::object_kv& kv = o.via.map.ptr[i];
      if (kv.key.type == msgpack::type::STR && kv.key.as<std::string>() == "state" &&
          kv.val.type == msgpack::type::STR && kv.val.as<std::string>() == "running")
        return still_running;
    }
    return ok;
  }
  if (!cfg.cancel_token.empty()) {
    print(c.call("_ductrpc_cancel", bare_token(cfg.cancel_token)).get(), cfg);
    return ok;
  }
  if (!cfg.wait_token.empty()) return wait_for_token(c, cfg, bare_token(cfg.wait_token));
  if (cfg.async) {  // the bare token, so that $(rpc-call --async ...) can be passed to --wait as it is
    print_text(c.submit_packed(cfg.method, args) + "\n");
    return ok;
  }
  return stoppable(c, [&] {  // --progress
    duct::value result = c.call_with_progress_packed(cfg.method, args, show_progress, interrupt.stop.get_token());
    if (::isatty(2)) std::fprintf(stderr, "\n");
    print(result.get(), cfg);
    return ok;
  });
}

// SIGINT, SIGTERM and SIGHUP stop the running call on the server, then end rpc-call with 128 + the signal. With no
// call to stop, or at a second signal, or when stopping takes longer than a few seconds, it ends at once.
void watch_signals(const sigset_t& signals, double connect_timeout) {
  std::thread([signals, connect_timeout] {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) return;
    interrupt.signal = sig;
    if (interrupt.call_open) {
      interrupt.stop.request_stop();
      const double allow = std::min(connect_timeout, 5.0) + 1;
      timespec wait{static_cast<time_t>(allow), 0};
      (void)sigtimedwait(&signals, nullptr, &wait);  // a second signal, or the stop taking too long
    }
    std::fflush(stdout);
    std::_Exit(128 + sig);
  }).detach();
}

// Runs `body`, turning each kind of failure into its message on stderr and its exit code.
int report(const std::function<int()>& body, const settings& cfg);

}  // namespace

int main(int argc, char** argv) {
  settings cfg;
  CLI::App app{"rpc-call: call a method of a zerorpc server (ours, Python's, node's) and print the result as JSON.\n"
               "Arguments are JSON where they parse as JSON, strings otherwise; each - reads the next JSON value from stdin;\n"
               "@FILE is the contents of FILE (@@ for a literal leading @).",
               "rpc-call"};
  tools::gnu_usage_errors(app, "rpc-call");
  app.add_option("endpoint", cfg.endpoint, "tcp://HOST:PORT or ipc://PATH; several, comma-separated: the call goes to one that is up")->required()->type_name("ENDPOINT");
  app.add_option("method", cfg.method, "The method to call (with --inspect: to describe)")->type_name("METHOD");
  std::vector<std::string> unused;  // ARGs are taken before parsing (see below); this only lists them in --help
  app.add_option("args", unused, "Its arguments, everything after METHOD (so options go before it)")
      ->type_name("ARG");
  app.add_flag("-s,--string", cfg.strings, "Send every ARG as a string, JSON or not");
  app.add_flag("--stdin", cfg.from_stdin, "Stream stdin to the method as a chunked request, line by line");
  app.add_option("--chunk-size", cfg.chunk_size, "With --stdin: raw chunks of N bytes instead of lines")
      ->type_name("N")->check(CLI::Range(std::size_t{1}, std::size_t{64} << 20));
  app.add_flag("-r,--raw", cfg.raw, "Print strings without quotes, bytes as they are (with no newline)");
  app.add_flag("-p,--pretty", cfg.pretty, "Print indented JSON");
  app.add_flag("--progress", cfg.progress, "Show the method's progress reports on stderr");
  app.add_flag("--async", cfg.async, "Start the call deferred, print its token and exit");
  app.add_option("--wait", cfg.wait_token, "Wait for the deferred call TOKEN and print its result")->type_name("TOKEN");
  app.add_option("--poll", cfg.poll_token, "Print the state of the deferred call TOKEN (exit 6 while running)")
      ->type_name("TOKEN");
  app.add_option("--cancel", cfg.cancel_token, "Cancel the deferred call TOKEN")->type_name("TOKEN");
  app.add_flag("-l,--list", cfg.list, "List the server's methods");
  app.add_flag("-i,--inspect", cfg.inspect, "Describe the server's methods, or METHOD: name(args) and doc on a "
                                            "terminal, JSON otherwise");
  app.add_flag("--json", cfg.json, "With --inspect: print JSON, on a terminal too");
  app.add_option("-t,--timeout", cfg.timeout, "Give up after SECONDS (default: never, while the server is alive)")
      ->type_name("SECONDS")->check(tools::seconds());
  app.add_option("--heartbeat", cfg.heartbeat, "Heartbeat period in seconds (default 5)")->type_name("SECONDS")
      ->check(tools::seconds());
  app.add_option("--connect-timeout", cfg.connect_timeout, "Give up connecting after SECONDS (default 5)")
      ->type_name("SECONDS")->check(tools::seconds());
  app.add_flag("-v,--verbose", cfg.verbose, "Print the remote traceback with an error");
  app.add_option("--curve-server", cfg.curve_server, "Speak CURVE to a server whose public certificate is FILE")
      ->type_name("FILE");
  app.add_option("--curve-secret", cfg.curve_secret, "With --curve-server: this client's key pair, from the "
                                                     "certificate FILE (default: a fresh pair)")
      ->type_name("FILE");
  app.set_version_flag("--version", "rpc-call (ductrpc) " DUCTRPC_VERSION);
  // Everything after METHOD is an argument, verbatim — a negative number or a JSON array included — so options go
  // before it. (CLI11 would read "-1" as an option and "[1, 2]" as a list.)
  const std::vector<std::string> with_value = tools::options_with_value(app);
  int split = argc, positional = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      if (i + 2 < argc) split = i + 3;  // -- ENDPOINT METHOD ARG...
      break;
    }
    if (a.size() > 1 && a[0] == '-') {
      if (std::find(with_value.begin(), with_value.end(), a) != with_value.end()) ++i;
      continue;
    }
    if (++positional == 2) {
      split = i + 1;
      break;
    }
  }
  for (int i = split; i < argc; ++i) cfg.args.emplace_back(argv[i]);
  try {
    app.parse(split, argv);
    int modes = (cfg.list ? 1 : 0) + (cfg.inspect ? 1 : 0) + (!cfg.wait_token.empty() ? 1 : 0) +
                (!cfg.poll_token.empty() ? 1 : 0) + (!cfg.cancel_token.empty() ? 1 : 0) + (cfg.async ? 1 : 0) +
                (cfg.progress ? 1 : 0) + (cfg.from_stdin ? 1 : 0);
    if (modes > 1)
      throw CLI::ValidationError("--list, --inspect, --wait, --poll, --cancel, --async, --progress and --stdin "
                                 "go one at a time");
    bool needs_method = !cfg.list && !cfg.inspect && cfg.wait_token.empty() && cfg.poll_token.empty() &&
                        cfg.cancel_token.empty();
    bool takes_method = needs_method || cfg.inspect;
    if (needs_method && cfg.method.empty()) throw CLI::ValidationError("METHOD", "a method to call is needed");
    if (!takes_method && !cfg.method.empty())
      throw CLI::ValidationError("METHOD", "--list, --wait, --poll and --cancel take no METHOD, got '" + cfg.method + "'");
    if (!needs_method && !cfg.args.empty()) throw CLI::ValidationError("ARG", "arguments go with a METHOD call only");
    if (cfg.json && !cfg.inspect) throw CLI::ValidationError("--json", "goes with --inspect");
    if (!cfg.curve_secret.empty() && cfg.curve_server.empty())
      throw CLI::ValidationError("--curve-secret", "goes with --curve-server");
    if (cfg.chunk_size && !cfg.from_stdin) throw CLI::ValidationError("--chunk-size", "goes with --stdin");
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : usage;  // --help and --version exit 0; every usage error 2
  }
  // Before any thread starts, so that every thread inherits the mask and only watch_signals() takes them.
  sigset_t signals;
  sigemptyset(&signals);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&signals, sig);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a closed stdout is seen by print(), which stops the call first
  interrupt.deliver_within =
      std::chrono::milliseconds(static_cast<std::int64_t>(std::min(cfg.connect_timeout, 2.0) * 1000));
  watch_signals(signals, cfg.connect_timeout);
  int rc = report([&] { return run(cfg); }, cfg);
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(rc);
}

namespace {

int report(const std::function<int()>& body, const settings& cfg) {
  try {
    return body();
  } catch (const tools::json_error& e) {
    std::fprintf(stderr, "rpc-call: %s\n", e.what());
    return usage;
  } catch (const CLI::Error& e) {
    std::fprintf(stderr, "rpc-call: %s\n", e.what());
    return usage;
  } catch (const output_closed&) {
    return stdout_closed;
  } catch (const rpc::cancelled_error& e) {
    std::fprintf(stderr, "%s: %s\n", e.name().c_str(), e.message().c_str());
    return cancelled;
  } catch (const rpc::still_running_error& e) {
    std::fprintf(stderr, "%s: %s\n", e.name().c_str(), e.message().c_str());
    return still_running;
  } catch (const rpc::unknown_method_error& e) {
    std::fprintf(stderr, "%s: %s\n", e.name().c_str(), e.message().c_str());
    if (cfg.from_stdin && e.message() == "_ductrpc_chunked")
      std::fprintf(stderr, "rpc-call: --stdin needs a server that takes chunked requests (ductrpc's)\n");
    return remote_failed;
  } catch (const rpc::remote_error& e) {
    std::fprintf(stderr, "%s: %s\n", e.name().c_str(), e.message().c_str());
    if (cfg.verbose && !e.traceback().empty()) std::fprintf(stderr, "%s\n", e.traceback().c_str());
    return remote_failed;
  } catch (const rpc::timeout_error& e) {
    std::fprintf(stderr, "rpc-call: %s\n", e.what());
    return timed_out;
  } catch (const rpc::lost_remote_error& e) {
    std::fprintf(stderr, "rpc-call: %s\n", e.what());
    return unreachable;
  } catch (const rpc::closed_error& e) {
    std::fprintf(stderr, "rpc-call: %s\n", e.what());
    return unreachable;
  } catch (const rpc::connection_error& e) {
    std::fprintf(stderr, "rpc-call: %s\n", e.what());
    return unreachable;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rpc-call: %s\n", e.what());
    return remote_failed;
  }
}

}  // namespace
