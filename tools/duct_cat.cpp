// duct-cat: netcat for ducts. stdin becomes messages, messages become stdout. See man/duct-cat.1.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include <duct/version.hpp>
#include <duct/codec.hpp>
#include <duct/corked_writer.hpp>
#include <duct/listener.hpp>
#include <duct/spawn.hpp>

#include "fd_io.hpp"
#include "cli.hpp"
#include "json_form.hpp"
#include "peer_gate.hpp"

namespace {

enum class boundary { reads, chunks, lines, nul, json };

struct settings {
  std::string address;
  std::vector<std::string> command;  // --exec COMMAND [ARG...]
  bool listen = false, keep_open = false, exec = false;
  bool lines = false, nul = false, json = false, progress = false;
  std::size_t chunk_size = 0;
  std::string framing = "ductworks", codec = "msgpack", authkey_file;
  double connect_timeout = 10;
  double frame_timeout = 30;

  [[nodiscard]] boundary mode() const {
    if (json) return boundary::json;
    if (lines) return boundary::lines;
    if (nul) return boundary::nul;
    if (chunk_size) return boundary::chunks;
    return boundary::reads;
  }
};

constexpr std::size_t big_read = std::size_t{1} << 20;

// Bytes and messages moved, for --progress.
struct counters {
  std::atomic<std::uint64_t> bytes_in{0}, bytes_out{0}, messages_in{0}, messages_out{0};
};

// A pipe on stdin or stdout moves data in 64 KiB turns by default; a larger pipe means fewer system calls.
void widen_pipe(int fd) {
#ifdef F_SETPIPE_SZ
  (void)::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(big_read));
#else
  (void)fd;
#endif
}

// Reads what stdin has now, up to `want` bytes: blocks for the first bytes only, then takes whatever else is
// already there, so a bulk copy moves large messages while an interactive one is not held back.
// Returns: the bytes read (0 at end of input).
std::size_t read_available(char* buf, std::size_t want, bool exact) {
  std::size_t got = 0;
  while (got < want) {
    if (got > 0 && !exact) {
      pollfd p{0, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) break;
    }
    ssize_t n = ::read(0, buf + got, want - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(std::string("reading stdin: ") + std::strerror(errno));
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  return got;
}

// stdin → messages, then the half-close that tells the peer our input has ended.
void pump_stdin(duct::connection& duct, const settings& cfg, counters& count) {
  const boundary mode = cfg.mode();
  if (mode == boundary::reads || mode == boundary::chunks) {
    const std::size_t size = mode == boundary::chunks ? cfg.chunk_size : big_read;
    std::vector<char> buf(size);
    for (std::size_t n; (n = read_available(buf.data(), size, mode == boundary::chunks)) > 0;) {
      duct.send_bytes(std::string_view(buf.data(), n));
      count.bytes_out += n;
      ++count.messages_out;
    }
  } else {
    // Records end at a newline or NUL; many small ones are batched into few writes while stdin has more.
    const char end = mode == boundary::nul ? '\0' : '\n';
    duct::corked_writer out(duct);
    std::vector<char> buf(big_read);
    std::string record;
    // A JSON line that is only blanks carries no value: it is skipped rather than sent as an error.
    auto wanted = [&] { return mode != boundary::json || record.find_first_not_of(" \t\r") != std::string::npos; };
    auto emit = [&] {
      if (mode == boundary::json) {
        duct::pack_buffer packed;
        msgpack::packer<duct::pack_buffer> p(packed);
        tools::pack_json(p, record);
        const duct::codec wire = cfg.codec == "json" ? duct::codec::json : duct::codec::msgpack;
        duct::buffer message = duct::encode(wire, std::as_bytes(std::span(packed.data(), packed.size())));
        out.send_bytes(message.span());
      } else {
        out.send_bytes(record);
      }
      count.bytes_out += record.size();
      ++count.messages_out;
      record.clear();
    };
    for (std::size_t n; (n = read_available(buf.data(), buf.size(), false)) > 0;) {
      const char* p = buf.data();
      const char* stop = p + n;
      while (p < stop) {
        const char* e = static_cast<const char*>(std::memchr(p, end, static_cast<std::size_t>(stop - p)));
        if (!e) {
          record.append(p, stop);
          break;
        }
        record.append(p, e);
        p = e + 1;
        if (wanted()) emit();
        record.clear();
      }
      pollfd more{0, POLLIN, 0};
      if (::poll(&more, 1, 0) <= 0) out.flush();  // nothing more right now: what is batched goes
    }
    if (!record.empty() && wanted()) emit();
    out.flush();
  }
  duct.shutdown_write();
}

// Messages → stdout, until the peer's end of stream. Returns: false if stdout went away (EPIPE).
bool pump_duct(duct::connection& duct, const settings& cfg, counters& count) {
  const boundary mode = cfg.mode();
  std::vector<std::byte> buf(big_read);
  std::string line;
  for (;;) {
    std::size_t n = 0;
    std::optional<duct::buffer> large;  // a message that did not fit buf
    try {
      n = duct.recv_bytes_into(buf);
    } catch (const duct::buffer_too_short& e) {
      large = e.message();
      n = large->size();
    } catch (const duct::closed_error& e) {
      if (e.mid_message()) throw;  // the peer stopped inside a frame: that is an error, not an end
      return true;
    }
    const char* data = reinterpret_cast<const char*>(large ? large->data() : buf.data());
    count.bytes_in += n;
    ++count.messages_in;
    bool ok = true;
    switch (mode) {
      case boundary::reads:
      case boundary::chunks: ok = tools::write_all(1, data, n); break;
      case boundary::lines:
      case boundary::nul:
        line.assign(data, n);
        line += mode == boundary::nul ? '\0' : '\n';
        ok = tools::write_all(1, line.data(), line.size());
        break;
      case boundary::json: {
        const duct::codec wire = cfg.codec == "json" ? duct::codec::json : duct::codec::msgpack;
        try {
          duct::value v = duct::decode(wire, std::as_bytes(std::span(data, n)));
          line = tools::to_json(v.get()) + "\n";
          ok = tools::write_all(1, line.data(), line.size());
        } catch (const duct::codec_error& e) {  // one bad message is reported and skipped, not the end
          std::fprintf(stderr, "duct-cat: %s: message %llu skipped: %s\n", duct.name().c_str(),
                       static_cast<unsigned long long>(count.messages_in.load()), e.what());
        }
        break;
      }
    }
    if (!ok) return false;
  }
}

std::string rate(double per_second, const char* unit) {
  const char* prefixes[] = {"", "k", "M", "G"};
  int i = 0;
  while (per_second >= 1000 && i < 3) {
    per_second /= 1000;
    ++i;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f %s%s/s", per_second, prefixes[i], unit);
  return buf;
}

// --progress: bytes and messages per second each way, on a terminal, as pv does.
void show_progress(const counters& count, const std::atomic<bool>& done) {
  std::uint64_t last_in = 0, last_out = 0, last_min = 0, last_mout = 0;
  auto last = std::chrono::steady_clock::now();
  while (!done) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto now = std::chrono::steady_clock::now();
    double s = std::chrono::duration<double>(now - last).count();
    std::uint64_t in = count.bytes_in, out = count.bytes_out, min = count.messages_in, mout = count.messages_out;
    std::fprintf(stderr, "\r\033[Kout %s %s | in %s %s", rate(static_cast<double>(out - last_out) / s, "B").c_str(),
                 rate(static_cast<double>(mout - last_mout) / s, "msg").c_str(),
                 rate(static_cast<double>(in - last_in) / s, "B").c_str(),
                 rate(static_cast<double>(min - last_min) / s, "msg").c_str());
    last_in = in, last_out = out, last_min = min, last_mout = mout, last = now;
  }
  std::fprintf(stderr, "\n");
}

// Relays one duct: stdin to it, it to stdout, until the peer's end of stream and the end of our input (which is
// delivered in full; only a terminal is not waited for). Returns: the exit code.
int relay(duct::connection conn, const settings& cfg, bool stdin_open) {
  // Shared with the stdin thread, which may outlive this call (a terminal nobody types into).
  auto duct = std::make_shared<duct::connection>(std::move(conn));
  auto count = std::make_shared<counters>();
  auto in_error = std::make_shared<std::string>();
  std::atomic<bool> done{false};
  std::thread progress;
  if (cfg.progress && ::isatty(2)) progress = std::thread(show_progress, std::cref(*count), std::cref(done));
  std::thread in;
  if (stdin_open) {
    in = std::thread([duct, count, in_error, &cfg] {
      try {
        pump_stdin(*duct, cfg, *count);
      } catch (const std::exception& e) {
        *in_error = e.what();
      }
    });
  } else {
    duct->shutdown_write();
  }
  int rc = 0;
  try {
    (void)pump_duct(*duct, cfg, *count);  // false: stdout went away (and SIGPIPE, if not ignored, ended us)
  } catch (const std::exception& e) {
    std::fprintf(stderr, "duct-cat: %s: %s\n", duct->name().c_str(), e.what());
    rc = 1;
  }
  if (in.joinable()) {
    if (rc == 0 && !::isatty(0)) {
      in.join();  // the rest of our input still goes to the peer, which may read on after its own end
      if (!in_error->empty()) {
        std::fprintf(stderr, "duct-cat: %s: %s\n", duct->name().c_str(), in_error->c_str());
        rc = 1;
      }
    } else {
      duct->close();  // its next send fails, and the thread ends on its own
      in.detach();
    }
  }
  done = true;
  if (progress.joinable()) progress.join();
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  settings cfg;
  CLI::App app{"duct-cat: netcat for ducts. stdin becomes messages, messages become stdout.\n"
               "  duct-cat ADDRESS | duct-cat --listen ADDRESS | duct-cat --exec COMMAND [ARG...]\n"
               "ADDRESS: unix:/path, unix: (a private socket), tcp://HOST:PORT (port 0 with --listen).",
               "duct-cat"};
  app.add_option("address", cfg.address, "Connect to ADDRESS (or listen there, or the command with --exec)")
      ->type_name("ADDRESS");
  app.add_option("command", cfg.command, "With --exec: the command and its arguments")->type_name("ARG");
  app.add_flag("-l,--listen", cfg.listen, "Listen on ADDRESS and relay the first peer that connects; the actual "
                                          "address goes to stderr");
  app.add_flag("-k,--keep-open", cfg.keep_open, "With --listen: after a peer leaves, take the next one, in turn");
  app.add_flag("-e,--exec", cfg.exec, "Start COMMAND with a duct on an inherited descriptor (DUCT_FD) and relay it");
  app.add_flag("--lines", cfg.lines, "One message per line of stdin (without the newline); a newline after each "
                                     "message on stdout");
  app.add_flag("-0,--null", cfg.nul, "As --lines, with NUL as the separator");
  app.add_option("-c,--chunk-size", cfg.chunk_size, "Messages of exactly N bytes from stdin (the last may be "
                                                    "shorter); default: what each read returns, up to 1 MiB")
      ->type_name("N")->check(CLI::Range(std::size_t{1}, std::size_t{64} << 20));
  app.add_flag("-j,--json", cfg.json, "JSON lines in become msgpack messages; msgpack messages out become JSON lines");
  app.add_option("--codec", cfg.codec, "With --json: the messages are msgpack (default) or JSON text (ductworks' "
                                       "json codec)")
      ->type_name("CODEC")->check(CLI::IsMember({"msgpack", "json"}));
  app.add_option("-f,--framing", cfg.framing, "ductworks (default) or multiprocessing (Python's Connection)")
      ->type_name("FRAMING")->check(CLI::IsMember({"ductworks", "multiprocessing"}));
  app.add_option("--authkey-file", cfg.authkey_file, "Run multiprocessing's HMAC handshake with the key in FILE")
      ->type_name("FILE")->check(CLI::ExistingFile);
  app.add_option("--frame-timeout", cfg.frame_timeout, "Give up on a peer that stalls for SECONDS in the middle of a "
                 "message (default 30)")->type_name("SECONDS")->check(tools::seconds());
  app.add_option("--connect-timeout", cfg.connect_timeout, "Keep trying to connect for SECONDS (default 10)")
      ->type_name("SECONDS")->check(tools::seconds());
  app.add_flag("-p,--progress", cfg.progress, "Show bytes and messages per second on a terminal");
  app.set_version_flag("--version", "duct-cat (ductrpc) " DUCTRPC_VERSION);
  tools::gnu_usage_errors(app, "duct-cat");
  // Everything after --exec COMMAND belongs to the command, options included (--exec sh -c 'exit 7'): duct-cat
  // reads its own options only up to there.
  const std::vector<std::string> with_value = tools::options_with_value(app);
  int split = argc;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") break;
    if (std::find(with_value.begin(), with_value.end(), a) != with_value.end()) {
      ++i;
      continue;
    }
    if (a == "-e" || a == "--exec") {
      if (i + 2 <= argc) split = std::min(argc, i + 2);  // --exec COMMAND: COMMAND is still ours to read
      break;
    }
  }
  try {
    app.parse(split, argv);
    for (int i = split; i < argc; ++i) cfg.command.emplace_back(argv[i]);
    int modes = (cfg.lines ? 1 : 0) + (cfg.nul ? 1 : 0) + (cfg.json ? 1 : 0) + (cfg.chunk_size ? 1 : 0);
    if (modes > 1) throw CLI::ValidationError("--lines, --null, --json and --chunk-size go one at a time");
    if (cfg.listen && cfg.exec) throw CLI::ValidationError("--listen and --exec go one at a time");
    if (cfg.keep_open && !cfg.listen) throw CLI::ValidationError("--keep-open", "goes with --listen");
    if (cfg.address.empty()) throw CLI::ValidationError("ADDRESS", cfg.exec ? "a command is needed" : "an address is needed");
    if (!cfg.exec && !cfg.command.empty()) throw CLI::ValidationError("ARG", "extra arguments go with --exec only");
    if (cfg.exec && cfg.address.empty()) throw CLI::ValidationError("COMMAND", "--exec needs a command");
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  // stdout closed: end at once, as cat does, with the status a shell reports for that (141, 128 + SIGPIPE). The
  // duct's own writes never raise it.
  ::signal(SIGPIPE, SIG_DFL);
  widen_pipe(0);
  widen_pipe(1);

  duct::options opts;
  opts.framing = cfg.framing == "multiprocessing" ? duct::framing::multiprocessing : duct::framing::ductworks;
  opts.codec = duct::codec::raw;
  opts.frame_timeout = std::chrono::duration_cast<duct::timeout>(std::chrono::duration<double>(cfg.frame_timeout));
  if (!cfg.authkey_file.empty()) {
    std::ifstream key(cfg.authkey_file, std::ios::binary);
    std::stringstream text;
    text << key.rdbuf();
    opts.authkey = text.str();
  }
  try {
    if (cfg.exec) {
      std::vector<std::string> argv_child{cfg.address};
      argv_child.insert(argv_child.end(), cfg.command.begin(), cfg.command.end());
      duct::child child = duct::spawn(argv_child, opts);
      int rc = relay(std::move(child.duct()), cfg, true);
      int status = child.wait();
      return rc != 0 ? rc : (status < 0 ? 128 - status : status);
    }
    if (cfg.listen) {
      // With an authkey, peers are authenticated side by side (tools::peer_gate): a silent or failing one neither
      // delays the others nor ends the listener.
      duct::options raw = opts;
      raw.authkey.reset();
      duct::listener l(cfg.address, raw);
      std::fprintf(stderr, "duct-cat: listening on %s\n", l.address().c_str());
      std::optional<tools::peer_gate> gate;
      if (opts.authkey) gate.emplace(std::move(l), *opts.authkey);
      int rc = 0;
      bool stdin_open = true;  // stdin goes to the first peer; later ones get only its end
      do {
        rc = relay(gate ? gate->next() : l.accept(), cfg, stdin_open);
        stdin_open = false;
      } while (cfg.keep_open);
      return rc;
    }
    return relay(duct::connect(cfg.address, std::chrono::duration_cast<duct::timeout>(
                                                std::chrono::duration<double>(cfg.connect_timeout)), opts),
                 cfg, true);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "duct-cat: %s\n", e.what());
    return 1;
  }
}
