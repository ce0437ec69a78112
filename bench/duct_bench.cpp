// duct-bench: ducts against the raw syscall loop of the same framing and against Python's multiprocessing.Pipe,
// side by side in one run, over socketpair, unix and tcp. Prints a table; writes the rows as JSON with --json.
//
// Every case forks: the parent receives (and times), the child sends. Rounds are interleaved (ours, raw, ours, raw,
// ...) and the best of three kept, so that drift on a noisy machine hits both sides alike.
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <duct/duct.hpp>
#include <nlohmann/json.hpp>

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

struct endpoints {
  duct::connection mine;    // the parent's end
  duct::connection theirs;  // the child's end
};

// Both ends made in this process, then split by fork(): the same sockets separate processes would have.
endpoints connect_pair(const std::string& transport) {
  if (transport == "socketpair") {
    auto [a, b] = duct::pair();
    return {std::move(a), std::move(b)};
  }
  duct::listener l(transport == "unix" ? "unix:" : "tcp://127.0.0.1:0");
  duct::connection theirs;
  std::thread dialer([&] { theirs = duct::connect(l.address(), 10s); });
  duct::connection mine = l.accept(10s);
  dialer.join();
  return {std::move(mine), std::move(theirs)};
}

// Runs `child` in a forked process holding `theirs`; returns its pid. The parent's copy of `theirs` is closed.
pid_t fork_child(endpoints& e, const std::function<void(duct::connection&)>& child) {
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    e.mine.close();
    int code = 0;
    try {
      child(e.theirs);
    } catch (const std::exception& ex) {
      std::fprintf(stderr, "bench child: %s\n", ex.what());
      code = 1;
    }
    std::fflush(nullptr);
    ::_exit(code);
  }
  e.theirs.close();
  return pid;
}

void reap(pid_t pid) {
  int st = 0;
  ::waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) throw std::runtime_error("bench child failed");
}

double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

// ---- the raw baseline: writev per message, a buffered frame parser on the other side -------------------------------

void raw_send(int fd, const std::byte* payload, std::size_t size) {
  unsigned char header[5] = {0x54, static_cast<unsigned char>(size >> 24), static_cast<unsigned char>(size >> 16),
                             static_cast<unsigned char>(size >> 8), static_cast<unsigned char>(size)};
  iovec iov[2] = {{header, 5}, {const_cast<std::byte*>(payload), size}};
  std::size_t left = 5 + size;
  int n = 2;
  iovec* v = iov;
  while (left > 0) {
    ssize_t w = ::writev(fd, v, n);
    if (w < 0) throw std::runtime_error("writev failed");
    left -= static_cast<std::size_t>(w);
    auto done = static_cast<std::size_t>(w);
    while (n > 0 && done >= v->iov_len) {
      done -= v->iov_len;
      ++v;
      --n;
    }
    if (n > 0) {
      v->iov_base = static_cast<char*>(v->iov_base) + done;
      v->iov_len -= done;
    }
  }
}

class raw_reader {
 public:
  explicit raw_reader(int fd) : fd_(fd), buf_(128 << 10) {}
  // Reads one frame; returns its payload size. Large payloads go to a reused buffer.
  std::size_t next() {
    while (end_ - pos_ < 5) fill();
    std::size_t size = (std::size_t(buf_[pos_ + 1]) << 24) | (std::size_t(buf_[pos_ + 2]) << 16) |
                       (std::size_t(buf_[pos_ + 3]) << 8) | std::size_t(buf_[pos_ + 4]);
    pos_ += 5;
    if (end_ - pos_ >= size) {
      pos_ += size;
      return size;
    }
    if (big_.size() < size) big_.resize(size);
    std::size_t have = end_ - pos_;
    std::memcpy(big_.data(), buf_.data() + pos_, have);
    pos_ = end_ = 0;
    while (have < size) {
      ssize_t r = ::read(fd_, big_.data() + have, size - have);
      if (r <= 0) throw std::runtime_error("raw read failed");
      have += static_cast<std::size_t>(r);
    }
    return size;
  }

 private:
  void fill() {
    if (pos_ == end_) pos_ = end_ = 0;
    if (end_ == buf_.size()) {
      std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
      end_ -= pos_;
      pos_ = 0;
    }
    ssize_t r = ::read(fd_, buf_.data() + end_, buf_.size() - end_);
    if (r <= 0) throw std::runtime_error("raw read failed");
    end_ += static_cast<std::size_t>(r);
  }
  int fd_;
  std::vector<unsigned char> buf_;
  std::vector<unsigned char> big_;
  std::size_t pos_ = 0, end_ = 0;
};

// ---- the cases -------------------------------------------------------------------------------------------------------

enum class impl { ours, raw };

// Messages per second, one way.
double oneway(impl which, const std::string& transport, std::size_t size, std::size_t count) {
  endpoints e = connect_pair(transport);
  std::vector<std::byte> payload(size, std::byte{'x'});
  pid_t pid = fork_child(e, [&](duct::connection& c) {
    c.recv_bytes();  // go
    if (which == impl::ours) {
      for (std::size_t i = 0; i < count; ++i) c.send_bytes(payload);
    } else {
      for (std::size_t i = 0; i < count; ++i) raw_send(c.fileno(), payload.data(), size);
    }
  });
  auto start = clock_type::now();
  e.mine.send_bytes("go");
  if (which == impl::ours) {
    for (std::size_t i = 0; i < count; ++i) (void)e.mine.recv_bytes();
  } else {
    raw_reader r(e.mine.fileno());
    for (std::size_t i = 0; i < count; ++i) r.next();
  }
  double secs = seconds_since(start);
  reap(pid);
  return static_cast<double>(count) / secs;
}

// Messages per second, batched by a corked writer, received into a reused buffer.
double batched(const std::string& transport, std::size_t count) {
  endpoints e = connect_pair(transport);
  std::vector<std::byte> payload(64, std::byte{'x'});
  pid_t pid = fork_child(e, [&](duct::connection& c) {
    c.recv_bytes();
    duct::corked_writer w(c);
    for (std::size_t i = 0; i < count; ++i) w.send_bytes(payload);
    w.flush();
  });
  std::array<std::byte, 64> into{};
  auto start = clock_type::now();
  e.mine.send_bytes("go");
  for (std::size_t i = 0; i < count; ++i) (void)e.mine.recv_bytes_into(into);
  double secs = seconds_since(start);
  reap(pid);
  return static_cast<double>(count) / secs;
}

struct latency {
  double p50_us, p99_us;
};

latency round_trip(impl which, const std::string& transport, std::size_t count) {
  endpoints e = connect_pair(transport);
  pid_t pid = fork_child(e, [&](duct::connection& c) {
    if (which == impl::ours) {
      for (std::size_t i = 0; i < count; ++i) c.send_bytes(c.recv_bytes().span());
    } else {
      raw_reader r(c.fileno());
      std::vector<std::byte> payload(64, std::byte{'x'});
      for (std::size_t i = 0; i < count; ++i) {
        r.next();
        raw_send(c.fileno(), payload.data(), payload.size());
      }
    }
  });
  std::vector<std::byte> payload(64, std::byte{'x'});
  std::vector<double> samples;
  samples.reserve(count);
  raw_reader r(e.mine.fileno());
  for (std::size_t i = 0; i < count; ++i) {
    auto t = clock_type::now();
    if (which == impl::ours) {
      e.mine.send_bytes(payload);
      (void)e.mine.recv_bytes();
    } else {
      raw_send(e.mine.fileno(), payload.data(), payload.size());
      r.next();
    }
    samples.push_back(seconds_since(t) * 1e6);
  }
  reap(pid);
  std::sort(samples.begin(), samples.end());
  return {samples[samples.size() / 2], samples[samples.size() * 99 / 100]};
}

std::optional<nlohmann::json> python_pipe(const std::vector<std::string>& args) {
  std::string python = DUCT_BENCH_PYTHON3;
  if (python.empty() || ::access(python.c_str(), X_OK) != 0) return std::nullopt;
  std::string cmd = python + " " + DUCT_BENCH_DIR "/mp_pipe.py";
  for (const auto& a : args) cmd += " " + a;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return std::nullopt;
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  if (::pclose(p) != 0) return std::nullopt;
  return nlohmann::json::parse(out);
}

std::string human(double v, const char* unit) {
  char buf[64];
  if (v >= 1e9) std::snprintf(buf, sizeof buf, "%.2f G%s", v / 1e9, unit);
  else if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2f M%s", v / 1e6, unit);
  else if (v >= 1e3) std::snprintf(buf, sizeof buf, "%.1f k%s", v / 1e3, unit);
  else std::snprintf(buf, sizeof buf, "%.1f %s", v, unit);
  return buf;
}

struct row {
  std::string name, transport, unit;
  double ours = 0, raw = 0, python = 0;  // 0: not measured
  bool lower_is_better = false;
  std::string target;
  bool met = true;
};

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else {
      std::cerr << "usage: duct-bench [--quick] [--json FILE]\n";
      return 2;
    }
  }
  const int rounds = quick ? 1 : 3;
  const std::size_t small_n = quick ? 2000 : 400000, big_n = quick ? 20 : 2000, rtt_n = quick ? 200 : 20000,
                    batch_n = quick ? 20000 : 10000000, py_small_n = quick ? 2000 : 200000, py_big_n = quick ? 10 : 300,
                    py_rtt_n = quick ? 200 : 10000;

  std::vector<row> rows;
  for (std::string t : {"socketpair", "unix", "tcp"}) {
    row small{"64 B one way", t, "msgs/s"}, big{"1 MiB one way", t, "B/s"}, rtt50{"64 B round trip p50", t, "us"},
        rtt99{"64 B round trip p99", t, "us"};
    rtt50.lower_is_better = rtt99.lower_is_better = true;
    rtt50.ours = rtt50.raw = rtt99.ours = rtt99.raw = 1e18;
    for (int r = 0; r < rounds; ++r) {
      small.ours = std::max(small.ours, oneway(impl::ours, t, 64, small_n));
      small.raw = std::max(small.raw, oneway(impl::raw, t, 64, small_n));
      big.ours = std::max(big.ours, oneway(impl::ours, t, 1 << 20, big_n) * (1 << 20));
      big.raw = std::max(big.raw, oneway(impl::raw, t, 1 << 20, big_n) * (1 << 20));
      latency o = round_trip(impl::ours, t, rtt_n), w = round_trip(impl::raw, t, rtt_n);
      rtt50.ours = std::min(rtt50.ours, o.p50_us);
      rtt99.ours = std::min(rtt99.ours, o.p99_us);
      rtt50.raw = std::min(rtt50.raw, w.p50_us);
      rtt99.raw = std::min(rtt99.raw, w.p99_us);
    }
    if (t == "socketpair") {  // multiprocessing.Pipe() is a socketpair
      if (auto j = python_pipe({"oneway", "64", std::to_string(py_small_n)})) small.python = (*j)["msgs_per_s"];
      if (auto j = python_pipe({"oneway", std::to_string(1 << 20), std::to_string(py_big_n)}))
        big.python = (*j)["bytes_per_s"];
      if (auto j = python_pipe({"roundtrip", std::to_string(py_rtt_n)})) {
        rtt50.python = (*j)["p50_us"];
        rtt99.python = (*j)["p99_us"];
      }
    }
    small.target = "ours >= 0.9x raw" + std::string(small.python > 0 ? ", >= 2x python" : "");
    small.met = small.ours >= 0.9 * small.raw && (small.python == 0 || small.ours >= 2 * small.python);
    big.target = "ours >= 0.9x raw";
    big.met = big.ours >= 0.9 * big.raw;
    rtt50.target = "ours <= 1.15x raw";
    rtt50.met = rtt50.ours <= 1.15 * rtt50.raw;
    rtt99.target = "(reported)";
    rows.insert(rows.end(), {small, big, rtt50, rtt99});
  }
  for (std::string t : {"socketpair", "unix", "tcp"}) {
    row b{"64 B batched (corked)", t, "msgs/s"};
    for (int r = 0; r < rounds; ++r) b.ours = std::max(b.ours, batched(t, batch_n));
    b.target = t == "unix" ? "ours >= 10 M/s" : "(reported)";
    b.met = t != "unix" || b.ours >= 10e6;
    rows.push_back(b);
  }

  std::printf("%-22s %-10s %13s %13s %7s %13s %7s  %s\n", "case", "transport", "ours", "raw writev", "ratio",
              "python Pipe", "ratio", "target");
  nlohmann::json out = nlohmann::json::array();
  for (const row& r : rows) {
    auto show = [&](double v) {
      if (v == 0) return std::string("-");
      if (r.unit == "us") {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.1f us", v);
        return std::string(buf);
      }
      return human(v, r.unit == "B/s" ? "B/s" : "/s");
    };
    auto ratio = [&](double other) {
      if (other == 0 || r.ours == 0) return std::string("-");
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.2fx", r.lower_is_better ? r.ours / other : r.ours / other);
      return std::string(buf);
    };
    std::printf("%-22s %-10s %13s %13s %7s %13s %7s  %s%s\n", r.name.c_str(), r.transport.c_str(),
                show(r.ours).c_str(), show(r.raw).c_str(), ratio(r.raw).c_str(), show(r.python).c_str(),
                ratio(r.python).c_str(), r.target.c_str(), r.met ? "" : "  MISSED");
    out.push_back({{"case", r.name}, {"transport", r.transport}, {"unit", r.unit}, {"ours", r.ours},
                   {"raw", r.raw == 0 ? nlohmann::json() : nlohmann::json(r.raw)},
                   {"python", r.python == 0 ? nlohmann::json() : nlohmann::json(r.python)},
                   {"target", r.target}, {"met", r.met}});
  }
  if (!json_path.empty()) {
    std::ofstream(json_path) << nlohmann::json{{"bench", "duct"}, {"quick", quick}, {"rows", out}}.dump(2) << "\n";
    std::printf("\nwrote %s\n", json_path.c_str());
  }
  return 0;
}
