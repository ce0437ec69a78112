// rpc-call: call a method of any zerorpc server from a shell. See man/rpc-call.1 (the exit codes are listed there
// and in `exit_code` below).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <duct/codec.hpp>
#include <rpc/client.hpp>

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
};

struct settings {
  std::string endpoint, method;
  std::vector<std::string> args;
  bool strings = false, from_stdin = false, raw = false, pretty = false, progress = false, async = false;
  std::size_t chunk_size = 0;
  std::string wait_token, poll_token, cancel_token;
  bool list = false, inspect = false, verbose = false;
  std::optional<double> timeout;
  double heartbeat = 5, connect_timeout = 5;
};

std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
}

// One value on stdout: a line of JSON; with --raw a string's text and a newline, or bytes exactly as they are (so a
// stream of bytes comes out as it went in).
void print(const msgpack::object& o, const settings& cfg) {
  std::string line = tools::to_json(o, {cfg.pretty, cfg.raw});
  if (!(cfg.raw && o.type == msgpack::type::BIN)) line += '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);  // each stream item as it arrives
}

// The call's arguments as one msgpack array: JSON where they parse as JSON (unless --string), strings otherwise;
// "-" is one JSON value read from stdin.
duct::buffer pack_arguments(const settings& cfg) {
  duct::pack_buffer buf;
  msgpack::packer<duct::pack_buffer> p(buf);
  p.pack_array(static_cast<std::uint32_t>(cfg.args.size()));
  for (const std::string& a : cfg.args) {
    if (a == "-" && !cfg.strings) {
      std::string text(std::istreambuf_iterator<char>(std::cin), {});
      tools::pack_json(p, text);  // throws json_error: a usage error
    } else if (!cfg.strings && tools::is_json(a)) {
      tools::pack_json(p, a);
    } else {
      p.pack(a);
    }
  }
  return buf.take();
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

int run(const settings& cfg) {
  rpc::client_options co;
  co.heartbeat = ms(cfg.heartbeat);
  // --wait keeps its own deadline: each wait is held by the server for a slice of it, and answered in time.
  if (cfg.timeout && cfg.wait_token.empty()) co.timeout = ms(*cfg.timeout);
  // Never destroyed: main() ends the process with _Exit once the output is flushed, sparing the orderly close of
  // the client's threads and ZeroMQ's (a millisecond of a command that may run in a loop). Nothing is left unsent:
  // every call made has been answered or abandoned by then.
  rpc::client& c = *new rpc::client(cfg.endpoint, co);
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
    } catch (const rpc::remote_error&) {
      // answered, if not with a pong: someone is there
    }
    return true;
  };
  const bool plain = !cfg.list && !cfg.inspect && cfg.poll_token.empty() && cfg.cancel_token.empty() &&
                     cfg.wait_token.empty() && !cfg.async && !cfg.progress;
  if (!plain && !connected()) return unreachable;
  if (cfg.list || cfg.inspect) {
    // _zerorpc_inspect, which zerorpc-python, zerorpc-node and ours all answer (node has no _zerorpc_list).
    duct::value all = c.call("_zerorpc_inspect");
    if (cfg.inspect && cfg.method.empty()) {
      print(all.get(), cfg);
      return ok;
    }
    const msgpack::object& o = all.get();
    const msgpack::object* methods = nullptr;
    for (std::uint32_t i = 0; o.type == msgpack::type::MAP && i < o.via.map.size; ++i)
      if (o.via.map.ptr[i].key.type == msgpack::type::STR && o.via.map.ptr[i].key.as<std::string>() == "methods" &&
          o.via.map.ptr[i].val.type == msgpack::type::MAP)
        methods = &o.via.map.ptr[i].val;
    if (!methods) throw rpc::protocol_error(cfg.endpoint + ": _zerorpc_inspect did not list the methods");
    if (cfg.list) {  // the names, sorted: a JSON array, or one per line with --raw
      std::vector<std::string> names;
      for (std::uint32_t j = 0; j < methods->via.map.size; ++j)
        if (methods->via.map.ptr[j].key.type == msgpack::type::STR) names.push_back(methods->via.map.ptr[j].key.as<std::string>());
      std::sort(names.begin(), names.end());
      msgpack::zone zone;
      const msgpack::object list(names, zone);
      if (!cfg.raw) print(list, cfg);
      else
        for (std::uint32_t i = 0; i < list.via.array.size; ++i) print(list.via.array.ptr[i], cfg);
      return ok;
    }
    for (std::uint32_t j = 0; j < methods->via.map.size; ++j) {
      if (methods->via.map.ptr[j].key.type == msgpack::type::STR &&
          methods->via.map.ptr[j].key.as<std::string>() == cfg.method) {
        print(methods->via.map.ptr[j].val, cfg);
        return ok;
      }
    }
    throw rpc::unknown_method_error("NameError", cfg.method + " is not a method of " + cfg.endpoint);
  }
  if (!cfg.poll_token.empty()) {
    duct::value state = c.poll(cfg.poll_token);
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
    print(c.call("_ductrpc_cancel", cfg.cancel_token).get(), cfg);
    return ok;
  }
  if (!cfg.wait_token.empty()) {
    // Waits a second at a time (the server holds each wait), showing the time spent on a terminal.
    const auto start = std::chrono::steady_clock::now();
    const bool tty = ::isatty(2);
    for (;;) {
      auto spent = std::chrono::steady_clock::now() - start;
      if (cfg.timeout && spent >= ms(*cfg.timeout)) {
        if (tty) std::fprintf(stderr, "\n");
        throw rpc::still_running_error("StillRunning", cfg.wait_token + " is still running");
      }
      auto slice = 1000ms;
      if (cfg.timeout)
        slice = std::min(slice, ms(*cfg.timeout) - std::chrono::duration_cast<std::chrono::milliseconds>(spent));
      try {
        duct::value result = c.wait(cfg.wait_token, slice);
        if (tty) std::fprintf(stderr, "\r\033[K");
        print(result.get(), cfg);
        return ok;
      } catch (const rpc::still_running_error&) {
        if (tty)
          std::fprintf(stderr, "\r\033[Kwaiting for %s: %.0f s", cfg.wait_token.c_str(),
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
    }
  }

  duct::buffer args = pack_arguments(cfg);
  if (cfg.async) {
    std::string token = c.submit_packed(cfg.method, args);
    msgpack::zone zone;
    print(msgpack::object(token, zone), cfg);
    return ok;
  }
  if (cfg.progress) {
    duct::value result = c.call_with_progress_packed(cfg.method, args, show_progress);
    if (::isatty(2)) std::fprintf(stderr, "\n");
    print(result.get(), cfg);
    return ok;
  }
  // A plain call is read as a stream: a method that streams prints each item as it comes, one that answers prints
  // its result (the stream's only item).
  std::optional<rpc::duplex> upload;
  std::optional<rpc::source> stream;
  if (cfg.from_stdin) upload.emplace(c.chunked_call_packed(cfg.method, args));
  else stream.emplace(c.stream_packed(cfg.method, args));
  if (!connected()) return unreachable;
  rpc::source& items = upload ? upload->output() : *stream;
  if (upload) send_stdin(*upload, cfg);
  const auto deadline = cfg.timeout ? std::optional(std::chrono::steady_clock::now() + ms(*cfg.timeout)) : std::nullopt;
  for (;;) {
    std::optional<duct::value> item;
    if (deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now());
      item = items.next_for(std::max(left, 0ms));
    } else {
      item = items.next();
    }
    if (!item) return ok;
    print(item->get(), cfg);
  }
}

// Runs `body`, turning each kind of failure into its message on stderr and its exit code.
int report(const std::function<int()>& body, const settings& cfg);

}  // namespace

int main(int argc, char** argv) {
  settings cfg;
  CLI::App app{"rpc-call: call a method of a zerorpc server (ours, Python's, node's) and print the result as JSON.\n"
               "Arguments are JSON where they parse as JSON, strings otherwise; - reads one JSON value from stdin.",
               "rpc-call"};
  app.add_option("endpoint", cfg.endpoint, "tcp://HOST:PORT or ipc://PATH")->required()->type_name("ENDPOINT");
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
  app.add_flag("-i,--inspect", cfg.inspect, "Describe the server's methods, or METHOD");
  app.add_option("-t,--timeout", cfg.timeout, "Give up after SECONDS (default: never, while the server is alive)")
      ->type_name("SECONDS")->check(CLI::PositiveNumber);
  app.add_option("--heartbeat", cfg.heartbeat, "Heartbeat period in seconds (default 5)")->type_name("SECONDS")
      ->check(CLI::PositiveNumber);
  app.add_option("--connect-timeout", cfg.connect_timeout, "Give up connecting after SECONDS (default 5)")
      ->type_name("SECONDS")->check(CLI::PositiveNumber);
  app.add_flag("-v,--verbose", cfg.verbose, "Print the remote traceback with an error");
  app.set_version_flag("--version", "rpc-call (ductrpc) 0.1");
  // Everything after METHOD is an argument, verbatim — a negative number or a JSON array included — so options go
  // before it. (CLI11 would read "-1" as an option and "[1, 2]" as a list.)
  // Which options take a value is the parser's own knowledge, not a list to keep in step with it.
  std::vector<std::string> with_value;
  for (const CLI::Option* o : app.get_options([](const CLI::Option* o) { return o->nonpositional(); })) {
    if (o->get_items_expected_max() == 0) continue;  // a flag
    for (const std::string& n : o->get_lnames()) with_value.push_back("--" + n);
    for (const std::string& n : o->get_snames()) with_value.push_back("-" + n);
  }
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
    if (needs_method && cfg.method.empty()) throw CLI::ValidationError("METHOD", "a method to call is needed");
    if (!needs_method && !cfg.args.empty()) throw CLI::ValidationError("ARG", "arguments go with a METHOD call only");
    if (cfg.chunk_size && !cfg.from_stdin) throw CLI::ValidationError("--chunk-size", "goes with --stdin");
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : usage;  // --help and --version exit 0; every usage error 2
  }
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
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rpc-call: %s\n", e.what());
    return remote_failed;
  }
}

}  // namespace
