// rpc-serve: turns commands into RPC methods (or serves a demo set), for any zerorpc client. See man/rpc-serve.1.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include <duct/version.hpp>
#include <duct/codec.hpp>
#include <rpc/curve.hpp>
#include <rpc/server.hpp>

#include "command.hpp"
#include "group_guard.hpp"
#include "cli.hpp"
#include "json_form.hpp"
#include "serve_log.hpp"

namespace {

using namespace std::chrono_literals;
using rpc::detail::call_context;

struct settings {
  std::vector<std::string> binds, connects;
  std::string broker_key;
  std::string name = "rpc-serve";
  std::vector<std::string> execs, streams, raw_streams, limits, with_options, max_args;
  bool shell = false;
  std::size_t jobs = 4;
  std::size_t prefetch = 1;
  std::size_t client_jobs = 0, client_queue = 256;
  double heartbeat = 5, defer_after = 0.5, keep_results = 300, grace = 30;
  std::string shutdown = "drain";
  bool quiet = false, verbose = false, log_json = false, list_jobs = false;
  std::string keygen, curve_secret;
  std::vector<std::string> curve_allow;
};

// Whether clients on other machines can reach `endpoint`: a tcp:// endpoint not on a loopback address.
bool reachable_from_outside(const std::string& endpoint) {
  if (!endpoint.starts_with("tcp://")) return false;
  const std::string host = endpoint.substr(6, endpoint.rfind(':') - 6);
  return !(host.starts_with("127.") || host == "localhost" || host == "[::1]" || host == "::1");
}

duct::buffer packed(const auto& value) {
  duct::pack_buffer out;
  msgpack::pack(out, value);
  return out.take();
}

// The args array's element i, or a TypeError naming the method.
const msgpack::object& arg(const std::string& method, const msgpack::object& args, std::uint32_t i, std::uint32_t n) {
  if (args.type != msgpack::type::ARRAY || args.via.array.size != n)
    throw rpc::remote_error("TypeError", method + "() takes " + std::to_string(n) + " argument" + (n == 1 ? "" : "s"));
  return args.via.array.ptr[i];
}

// Wide enough for the sum of any two msgpack integers (GCC's and clang's 128-bit integer; -Wpedantic would flag it).
__extension__ using wide_int = __int128;

bool is_number(const msgpack::object& o) {
  return o.type == msgpack::type::POSITIVE_INTEGER || o.type == msgpack::type::NEGATIVE_INTEGER ||
         o.type == msgpack::type::FLOAT32 || o.type == msgpack::type::FLOAT64;
}

// Wraps a raw handler so that each call is logged with its caller, outcome and time.
rpc::detail::handler logged(tools::serve_log& log, std::string method, rpc::detail::handler f) {
  return [&log, method = std::move(method), f = std::move(f)](const msgpack::object& args, call_context& ctx) {
    auto start = std::chrono::steady_clock::now();
    try {
      duct::buffer result = f(args, ctx);
      log.call(ctx.peer, method, args, std::chrono::steady_clock::now() - start, "OK");
      return result;
    } catch (const rpc::remote_error& e) {
      log.call(ctx.peer, method, args, std::chrono::steady_clock::now() - start, e.name(), e.message());
      throw;
    } catch (const std::exception& e) {
      log.call(ctx.peer, method, args, std::chrono::steady_clock::now() - start, "error", e.what());
      throw;
    }
  };
}

void bind_demo(rpc::server& s, tools::serve_log& log) {
  using shape = rpc::server::shape;
  s.bind_raw("echo", logged(log, "echo", [](const msgpack::object& args, call_context&) {
               return packed(arg("echo", args, 0, 1));
             }),
             {.doc = "Returns its argument.", .arg_names = {"value"}}, shape{1});
  s.bind_raw("add", logged(log, "add", [](const msgpack::object& args, call_context&) {
               const msgpack::object &a = arg("add", args, 0, 2), &b = arg("add", args, 1, 2);
               if (!is_number(a) || !is_number(b))
                 throw rpc::remote_error("TypeError", "add() adds two numbers, not " + duct::value::type_name(a) +
                                                          " and " + duct::value::type_name(b));
               bool ints = a.type != msgpack::type::FLOAT32 && a.type != msgpack::type::FLOAT64 &&
                           b.type != msgpack::type::FLOAT32 && b.type != msgpack::type::FLOAT64;
               if (!ints) return packed(a.as<double>() + b.as<double>());
               // Integers add exactly, from INT64_MIN to UINT64_MAX (msgpack's range), or not at all.
               auto wide = [](const msgpack::object& x) -> wide_int {
                 return x.type == msgpack::type::POSITIVE_INTEGER ? static_cast<wide_int>(x.via.u64)
                                                                  : static_cast<wide_int>(x.via.i64);
               };
               const wide_int sum = wide(a) + wide(b);
               if (sum > static_cast<wide_int>(UINT64_MAX) || sum < static_cast<wide_int>(INT64_MIN))
                 throw rpc::remote_error("OverflowError", "add(): the sum does not fit in 64 bits");
               if (sum >= 0) return packed(static_cast<std::uint64_t>(sum));
               return packed(static_cast<std::int64_t>(sum));
             }),
             {.doc = "Adds two numbers.", .arg_names = {"a", "b"}}, shape{2});
  s.bind_raw("sleep", logged(log, "sleep", [](const msgpack::object& args, call_context& ctx) {
               const msgpack::object& a = arg("sleep", args, 0, 1);
               if (!is_number(a)) throw rpc::remote_error("TypeError", "sleep() takes a number of seconds");
               const double seconds = a.as<double>();
               if (!(seconds >= 0 && seconds <= 86400))  // NaN fails both
                 throw rpc::remote_error("ValueError", "sleep() takes 0 to 86400 seconds, not " + tools::to_json(a));
               const auto start = std::chrono::steady_clock::now();
               const auto until = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                              std::chrono::duration<double>(seconds));
               for (auto now = start; now < until; now = std::chrono::steady_clock::now()) {
                 if (ctx.stop.stop_requested()) throw rpc::cancelled_error("Cancelled", "sleep() was cancelled");
                 if (ctx.report) {
                   double done = std::chrono::duration<double>(now - start).count();
                   ctx.report->report(std::map<std::string, double>{{"done", done}, {"total", seconds}});
                 }
                 std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(100ms, until - now));
               }
               return packed(a);  // as it came: 1 stays 1
             }),
             {.doc = "Sleeps, reporting its progress; returns the seconds slept.", .arg_names = {"seconds"}},
             shape{1, false, true});
  s.bind_raw("count", logged(log, "count", [](const msgpack::object& args, call_context& ctx) {
               const msgpack::object& a = arg("count", args, 0, 1);
               if (a.type != msgpack::type::POSITIVE_INTEGER && a.type != msgpack::type::NEGATIVE_INTEGER)
                 throw rpc::remote_error("TypeError", "count() takes an integer");
               for (std::int64_t i = 0, n = a.as<std::int64_t>(); i < n; ++i) ctx.out->write(i);
               return packed(msgpack::type::nil_t());
             }),
             {.doc = "Streams the integers from 0 up to n.", .arg_names = {"n"}}, shape{1, true});
  s.bind_raw("fail", logged(log, "fail", [](const msgpack::object& args, call_context&) -> duct::buffer {
               const msgpack::object& a = arg("fail", args, 0, 1);
               throw rpc::remote_error("DemoError", a.type == msgpack::type::STR ? a.as<std::string>() : tools::to_json(a));
             }),
             {.doc = "Fails with a DemoError carrying its message.", .arg_names = {"message"}}, shape{1});
}

// An argument on a command's command line: a string as it is, anything else as JSON.
std::string as_argument(const msgpack::object& o) {
  if (o.type == msgpack::type::STR) return {o.via.str.ptr, o.via.str.size};
  return tools::to_json(o);
}

// The result of a command's stdout: text as a string without its final newline (as the shell's $(...) has it),
// anything else as bytes, exactly.
duct::buffer output_value(std::string out) {
  duct::pack_buffer buf;
  msgpack::packer<duct::pack_buffer> p(buf);
  if (duct::is_valid_utf8(out)) {
    if (!out.empty() && out.back() == '\n') out.pop_back();
    p.pack(out);
  }
  else {
    p.pack_bin(static_cast<std::uint32_t>(out.size()));
    p.pack_bin_body(out.data(), static_cast<std::uint32_t>(out.size()));
  }
  return buf.take();
}

// COMMAND into words as a shell would split it, without running one: blanks separate words; '...' is literal;
// "..." keeps blanks, with \" \\ \$ and \` escaped; a backslash outside quotes escapes the next character.
// Throws: CLI::ValidationError for an unterminated quote.
std::vector<std::string> split_words(const std::string& name, const std::string& command) {
  std::vector<std::string> words;
  std::string w;
  bool in_word = false;
  for (std::size_t i = 0; i < command.size(); ++i) {
    char c = command[i];
    if (c == ' ' || c == '\t') {
      if (in_word) words.push_back(std::move(w));
      w.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\\' && i + 1 < command.size()) {
      w += command[++i];
    } else if (c == '\'') {
      auto end = command.find('\'', i + 1);
      if (end == std::string::npos) throw CLI::ValidationError("--exec", name + ": unterminated ' in the command");
      w += command.substr(i + 1, end - i - 1);
      i = end;
    } else if (c == '"') {
      for (++i;; ++i) {
        if (i >= command.size()) throw CLI::ValidationError("--exec", name + ": unterminated \" in the command");
        if (command[i] == '"') break;
        if (command[i] == '\\' && i + 1 < command.size() && std::string_view("\"\\$`").find(command[i + 1]) != std::string_view::npos)
          ++i;
        w += command[i];
      }
    } else {
      w += c;
    }
  }
  if (in_word) words.push_back(std::move(w));
  return words;
}

// How a command's stdout makes the result.
enum class output_as { result, lines, bytes };

// What a served command lets its callers do, from the command line.
struct command_rules {
  output_as output = output_as::result;
  std::optional<std::chrono::milliseconds> limit;  // --timeout
  bool options = false;                            // --allow-options: arguments may begin with '-'
  std::optional<std::size_t> max_args;             // --max-args
};

// A call's arguments checked against the method's rules before anything runs: a caller cannot slip an option into
// the command (grep -r, --files0-from=...) unless the method allows options, nor add operands past --max-args (a
// file name after grep's pattern). Throws: remote_error("BadArgument") naming the argument.
void check_arguments(const std::string& name, const msgpack::object& args, const command_rules& rules) {
  const std::uint32_t n = args.type == msgpack::type::ARRAY ? args.via.array.size : 0;
  if (rules.max_args && n > *rules.max_args)
    throw rpc::remote_error("BadArgument", name + " takes at most " + std::to_string(*rules.max_args) + " argument" +
                                               (*rules.max_args == 1 ? "" : "s") + ", got " + std::to_string(n));
  if (rules.options) return;
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::string a = as_argument(args.via.array.ptr[i]);
    if (!a.empty() && a[0] == '-')
      throw rpc::remote_error("BadArgument", name + ": argument " + std::to_string(i + 1) + " ('" + a.substr(0, 40) +
                                                 "') begins with '-', and " + name +
                                                 " takes no options from callers (rpc-serve --allow-options " + name +
                                                 ")");
  }
}

void bind_command(rpc::server& s, tools::serve_log& log, const settings& cfg, const std::string& name,
                  const std::string& command, const command_rules& rules) {
  const output_as output = rules.output;
  const std::optional<std::chrono::milliseconds> limit = rules.limit;
  const bool streams = output != output_as::result;
  std::vector<std::string> base = cfg.shell ? std::vector<std::string>{"/bin/sh", "-c", command, name}
                                            : split_words(name, command);
  if (base.empty()) throw CLI::ValidationError("--exec", name + ": the command is empty");
  auto f = [name, base, output, streams, limit, rules](const msgpack::object& args, call_context& ctx) {
    check_arguments(name, args, rules);
    std::vector<std::string> argv = base;
    if (args.type == msgpack::type::ARRAY)
      for (std::uint32_t i = 0; i < args.via.array.size; ++i) argv.push_back(as_argument(args.via.array.ptr[i]));
    tools::command_options o;
    o.limit = limit;
    o.input = ctx.in;
    o.stop = ctx.stop;
    if (output == output_as::lines) o.on_line = [&ctx](std::string line) { ctx.out->write(line); };
    if (output == output_as::bytes)
      o.on_bytes = [&ctx](std::string bytes) { ctx.out->write(std::vector<char>(bytes.begin(), bytes.end())); };
    tools::command_result r;
    try {
      r = tools::run_command(argv, o);
    } catch (const rpc::error&) {
      throw;  // the stream's client went away, or cancelled it
    } catch (const std::exception& e) {
      throw rpc::remote_error("CommandFailed", name + ": " + e.what());
    }
    if (r.cancelled) throw rpc::cancelled_error("Cancelled", name + ": the call was cancelled: the command was killed");
    if (r.timed_out)
      throw rpc::remote_error("Timeout", name + ": the command ran past its limit of " +
                                             std::to_string(limit->count()) + " ms and was killed");
    if (r.status != 0) {
      std::string why = r.status < 0 ? "killed by signal " + std::to_string(-r.status)
                                     : "exit status " + std::to_string(r.status);
      while (!r.err_tail.empty() && (r.err_tail.back() == '\n' || r.err_tail.back() == '\r')) r.err_tail.pop_back();
      throw rpc::remote_error("CommandFailed", name + ": " + why + (r.err_tail.empty() ? "" : ": " + r.err_tail));
    }
    return streams ? packed(msgpack::type::nil_t()) : output_value(r.out);
  };
  std::string doc = (cfg.shell ? "sh -c '" + command + "'" : command) + " with the call's arguments appended" +
                    (output == output_as::lines   ? "; streams its output's lines"
                     : output == output_as::bytes ? "; streams its output's bytes"
                                                  : "; returns its output");
  s.bind_raw(name, logged(log, name, std::move(f)), {.doc = doc, .arg_names = {"args..."}},
             rpc::server::shape{0, streams, false, true});
}

// NAME=VALUE, split. Throws: CLI::ValidationError naming the option.
std::pair<std::string, std::string> split_assignment(const std::string& option, const std::string& text) {
  auto eq = text.find('=');
  if (eq == 0 || eq == std::string::npos) throw CLI::ValidationError(option, "expected NAME=VALUE, got '" + text + "'");
  return {text.substr(0, eq), text.substr(eq + 1)};
}

std::chrono::milliseconds seconds_option(double s) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000));
}

}  // namespace

int main(int argc, char** argv) {
  settings cfg;
  CLI::App app{"rpc-serve: serve commands (or a demo set of methods) to zerorpc clients: rpc-call, Python, node.\n"
               "With no --exec, serves echo, add, sleep (reports progress), count (a stream) and fail.",
               "rpc-serve"};
  app.add_option("-b,--bind", cfg.binds, "Listen on ENDPOINT (tcp://HOST:PORT, port 0 picks one; ipc://PATH); "
                                         "repeatable; default tcp://127.0.0.1:4242")
      ->type_name("ENDPOINT");
  app.add_option("-c,--connect", cfg.connects, "Serve the clients of the rpc-broker whose backend is ENDPOINT, as "
                                                "one of its workers taking --jobs calls at once (see --prefetch); "
                                                "repeatable. Without --bind, listens nowhere else")
      ->type_name("ENDPOINT");
  app.add_option("--prefetch", cfg.prefetch, "With --connect: let a broker send --jobs times N calls at once, those "
                                             "beyond --jobs waiting here for a free slot (default 1: they wait in "
                                             "the broker, for whichever worker frees first)")
      ->type_name("N")->check(CLI::Range(1, 64));
  app.add_option("--broker-key", cfg.broker_key, "With --connect and --curve-secret: speak CURVE to the brokers, "
                                                 "whose public key is in the certificate FILE")
      ->type_name("FILE");
  app.add_option("-n,--name", cfg.name, "The name _zerorpc_name reports")->type_name("NAME");
  app.add_option("-e,--exec", cfg.execs, "Serve method NAME: run COMMAND with the call's arguments appended "
                                         "(no shell); a chunked request goes to its stdin; repeatable")
      ->type_name("NAME=COMMAND");
  app.add_flag("--shell", cfg.shell, "Run each --exec COMMAND with /bin/sh -c, the arguments as \"$@\"");
  app.add_option("--stream", cfg.streams, "Stream method NAME's output, one item per line; repeatable")
      ->type_name("NAME");
  app.add_option("--stream-raw", cfg.raw_streams, "Stream method NAME's output as bytes, as the command writes "
                                                  "them; repeatable")
      ->type_name("NAME");
  app.add_option("--timeout", cfg.limits, "Kill method NAME's command after SECONDS; repeatable")
      ->type_name("NAME=SECONDS");
  app.add_option("--allow-options", cfg.with_options, "Let callers of method NAME pass arguments that begin with "
                                                      "'-' (refused otherwise); repeatable")
      ->type_name("NAME");
  app.add_option("--max-args", cfg.max_args, "Refuse calls of method NAME with more than N arguments; repeatable")
      ->type_name("NAME=N");
  app.add_option("-j,--jobs", cfg.jobs, "Calls running at once, at most (default 4)")->type_name("N")
      ->check(CLI::Range(1, 1024));
  app.add_option("--client-jobs", cfg.client_jobs, "Calls of one client (a CURVE key, else a connection) running at "
                 "once, at most (default: --jobs less one)")->type_name("N")->check(CLI::Range(1, 1024));
  app.add_option("--client-queue", cfg.client_queue, "Calls of one client waiting for a slot, at most; beyond it "
                 "calls fail with Overloaded (default 256)")->type_name("N")->check(CLI::Range(1, 1000000));
  app.add_option("--heartbeat", cfg.heartbeat, "Heartbeat period in seconds (default 5)")->type_name("SECONDS")
      ->check(tools::seconds());
  app.add_option("--defer-after", cfg.defer_after,
                 "Answer our clients with a token once a call runs this long (default 0.5)")
      ->type_name("SECONDS")->check(tools::seconds(true));
  app.add_option("--keep-results", cfg.keep_results, "Keep deferred results this long (default 300)")
      ->type_name("SECONDS")->check(tools::seconds(true));
  app.add_option("--shutdown", cfg.shutdown, "On SIGTERM or SIGINT: drain (finish running calls) or abort "
                                             "(default drain); a second signal aborts")
      ->type_name("drain|abort")->check(CLI::IsMember({"drain", "abort"}));
  app.add_option("--grace", cfg.grace, "How long a drain may take before it aborts (default 30)")
      ->type_name("SECONDS")->check(tools::seconds(true));
  app.add_option("--keygen", cfg.keygen, "Write a new CURVE key pair as certificates FILE (public) and FILE_secret "
                                         "(mode 0600), print the public key and exit")
      ->type_name("FILE");
  app.add_option("--curve-secret", cfg.curve_secret, "Serve with CURVE (encrypted, clients known by key), with the "
                                                     "key pair in the certificate FILE (a --keygen FILE_secret)")
      ->type_name("FILE");
  app.add_option("--curve-allow", cfg.curve_allow, "With --curve-secret: admit only the client keys in PATH, a "
                                                   "public certificate or a directory of them; repeatable")
      ->type_name("PATH");
  app.add_flag("--list-jobs", cfg.list_jobs, "Let _ductrpc_list show every client's deferred calls when no CURVE "
                                             "key owns them (it shows each CURVE client its own)");
  app.add_flag("-q,--quiet", cfg.quiet, "No log line per call");
  app.add_flag("-v,--verbose", cfg.verbose, "Log each call's arguments in full");
  app.add_flag("--log-json", cfg.log_json, "Log JSON lines (time, event, peer, method, args, outcome, ms) instead "
                                           "of text");
  app.set_version_flag("--version", "rpc-serve (ductrpc) " DUCTRPC_VERSION);
  tools::gnu_usage_errors(app, "rpc-serve");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help and --version exit 0; every usage error 2
  }
  if (!cfg.keygen.empty()) {
    try {
      rpc::curve_keypair keys = rpc::make_curve_keypair();
      rpc::save_curve_certificate(cfg.keygen, keys);
      std::printf("%s\n", keys.public_key.c_str());
      return 0;
    } catch (const rpc::error& e) {
      std::fprintf(stderr, "rpc-serve: --keygen: %s\n", e.what());
      return 1;
    }
  }
  if (cfg.binds.empty() && cfg.connects.empty()) cfg.binds.push_back("tcp://127.0.0.1:4242");

  // Before any thread exists (it forks): the guard that ends running commands' groups if we are killed.
  try {
    tools::start_group_guard();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rpc-serve: %s\n", e.what());
    return 1;
  }

  // The signals are taken by sigwait() below; every thread started from here on inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a command that stops reading its input must not end us

  tools::serve_log log({cfg.quiet, cfg.verbose, cfg.log_json});
  rpc::server_options so;
  try {
    if (!cfg.curve_allow.empty() && cfg.curve_secret.empty())
      throw CLI::ValidationError("--curve-allow", "goes with --curve-secret");
    if (!cfg.broker_key.empty() && (cfg.curve_secret.empty() || cfg.connects.empty()))
      throw CLI::ValidationError("--broker-key", "goes with --connect and --curve-secret");
    if (!cfg.curve_secret.empty()) {
      rpc::curve_keypair keys = rpc::load_curve_certificate(cfg.curve_secret);
      if (keys.secret_key.empty())
        throw CLI::ValidationError("--curve-secret", cfg.curve_secret + " holds no secret key (use the _secret file)");
      so.curve_secret_key = keys.secret_key;
      for (const std::string& path : cfg.curve_allow) {
        std::vector<std::string> allowed = rpc::load_curve_public_keys(path);
        if (allowed.empty()) throw CLI::ValidationError("--curve-allow", path + " holds no certificate");
        so.curve_allow.insert(so.curve_allow.end(), allowed.begin(), allowed.end());
      }
      // Called on the server's one ZAP thread. At most ten lines a second: a client hammering the port with
      // handshakes must not flood the log.
      so.on_curve_refused = [&log, window = std::chrono::steady_clock::time_point(), shown = 0, hidden = 0](
                                const std::string& key, const std::string& address) mutable {
        const auto now = std::chrono::steady_clock::now();
        if (now - window >= std::chrono::seconds(1)) {
          if (hidden > 0)
            log.event("refused", {{"not_shown", std::to_string(hidden)}},
                      std::to_string(hidden) + " more refusals were not shown");
          window = now;
          shown = hidden = 0;
        }
        if (++shown > 10) {
          ++hidden;
          return;
        }
        log.event("refused", {{"key", key}, {"peer", address}},
                  "refused " + (address.empty() ? std::string("a client") : address) + ": key " + key +
                      " is not allowed");
      };
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const rpc::error& e) {
    std::fprintf(stderr, "rpc-serve: %s\n", e.what());
    return 2;
  }
  so.name = cfg.name;
  so.list_jobs = cfg.list_jobs;
  so.threads = cfg.jobs;
  // Commands take milliseconds at least, often far longer: a call held here behind one would wait while another
  // worker may be free, to save a round trip through the broker that costs a fraction of a millisecond.
  so.broker_prefetch = cfg.prefetch;
  // Every call starts a process, which takes longer than the budget of a handler run where its call arrives: it
  // would only hold up receiving until the handoff. Commands go to the other threads at once.
  so.handoff_after = std::chrono::microseconds(0);
  so.per_client.running = cfg.client_jobs;
  so.per_client.queued = cfg.client_queue;
  so.heartbeat = seconds_option(cfg.heartbeat);
  so.defer_after = seconds_option(cfg.defer_after);
  so.keep_results = std::chrono::seconds(static_cast<std::int64_t>(cfg.keep_results));
  rpc::server server(so);
  try {
    // Each NAME=VALUE option, checked, by method name; every NAME must be a method given with --exec.
    std::set<std::string> execs;
    for (const std::string& e : cfg.execs) execs.insert(split_assignment("--exec", e).first);
    auto known = [&](const std::string& option, const std::string& name) {
      if (!execs.count(name)) throw CLI::ValidationError(option, name + " is not a method given with --exec");
    };
    std::map<std::string, command_rules> rules;
    for (const std::string& l : cfg.limits) {
      auto [name, value] = split_assignment("--timeout", l);
      known("--timeout", name);
      if (std::string why = tools::check_seconds(value); !why.empty()) throw CLI::ValidationError("--timeout", name + ": " + why);
      rules[name].limit = seconds_option(std::stod(value));
    }
    for (const std::string& m : cfg.max_args) {
      auto [name, value] = split_assignment("--max-args", m);
      known("--max-args", name);
      std::size_t used = 0, n = 0;
      try {
        n = std::stoul(value, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != value.size() || value[0] == '-' || n > 1000)
        throw CLI::ValidationError("--max-args", name + ": '" + value + "' is not a count from 0 to 1000");
      rules[name].max_args = n;
    }
    for (const std::string& n : cfg.with_options) {
      known("--allow-options", n);
      rules[n].options = true;
    }
    for (const std::string& n : cfg.streams) {
      known("--stream", n);
      rules[n].output = output_as::lines;
    }
    for (const std::string& n : cfg.raw_streams) {
      known("--stream-raw", n);
      if (rules[n].output == output_as::lines) throw CLI::ValidationError("--stream-raw", n + " is given with --stream too");
      rules[n].output = output_as::bytes;
    }
    for (const std::string& e : cfg.execs) {
      auto [name, command] = split_assignment("--exec", e);
      bind_command(server, log, cfg, name, command, rules[name]);
    }
    if (cfg.execs.empty()) bind_demo(server, log);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help and --version exit 0; every usage error 2
  } catch (const rpc::error& e) {
    std::fprintf(stderr, "rpc-serve: %s\n", e.what());
    return 2;
  }
  try {
    for (const std::string& b : cfg.binds) {
      std::string where = server.listen(b);
      log.event("listening", {{"endpoint", where}}, "listening on " + where);
      if (so.curve_secret_key.empty() && reachable_from_outside(where))
        log.event("warning", {{"endpoint", where}},
                  "warning: " + where + " is reachable from other machines without CURVE: anyone who reaches it "
                  "can call every method, and the traffic is not encrypted (see --curve-secret)");
      else if (!so.curve_secret_key.empty() && so.curve_allow.empty() && reachable_from_outside(where))
        log.event("warning", {{"endpoint", where}},
                  "warning: " + where + " admits any client that knows the server's public key (no --curve-allow)");
    }
    std::string broker_key;
    if (!cfg.broker_key.empty()) {
      broker_key = rpc::load_curve_certificate(cfg.broker_key).public_key;
    }
    for (const std::string& c : cfg.connects) {
      server.connect(c, broker_key);
      log.event("connecting", {{"endpoint", c}}, "serving the clients of the broker at " + c);
    }
    server.start();
  } catch (const rpc::error& e) {
    std::fprintf(stderr, "rpc-serve: %s\n", e.what());
    return 1;
  }

  // Until a signal: once a second, a line for the malformed events the server dropped meanwhile (counted, never
  // answered), so that a hostile or broken client shows in the log without flooding it.
  int sig = 0;
  std::uint64_t dropped_logged = 0;
  while (sig <= 0) {
    const timespec second{1, 0};
    sig = sigtimedwait(&signals, nullptr, &second);
    if (const std::uint64_t dropped = server.dropped_events(); dropped > dropped_logged) {
      log.event("dropped", {{"events", std::to_string(dropped - dropped_logged)}},
                "dropped " + std::to_string(dropped - dropped_logged) +
                    " malformed or unroutable events (not answered; " + std::to_string(dropped) + " in all)");
      dropped_logged = dropped;
    }
  }
  const bool drain = cfg.shutdown == "drain";
  const std::string name = sig == SIGINT ? "SIGINT" : "SIGTERM";
  log.event("signal", {{"signal", name}, {"action", drain ? "drain" : "abort"}},
            name + ", " + (drain ? "draining (a second signal aborts)" : "aborting"));
  std::atomic<bool> ended{false};
  std::thread ending([&] {
    server.shutdown(drain ? rpc::shutdown_mode::drain : rpc::shutdown_mode::abort, seconds_option(cfg.grace));
    ended = true;
  });
  if (drain) {
    // A second signal aborts what is left; the wait for it ends once the drain has.
    timespec tick{0, 50'000'000};
    while (!ended) {
      if (sigtimedwait(&signals, nullptr, &tick) > 0) {
        log.event("signal", {{"signal", "second"}, {"action", "abort"}}, "second signal, aborting");
        server.shutdown(rpc::shutdown_mode::abort, 0ms);
        break;
      }
    }
  }
  ending.join();
  return 0;
}
