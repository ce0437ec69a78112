// duct-demo: a parent and its workers talking over ducts, and a Python peer joining in.
//
//   1. spawn four workers (this same program, started with --worker); each gets its duct in DUCT_FD
//   2. hand out jobs, collect answers with duct::wait() as they finish, in whatever order
//   3. fork a child over a pair(), as with multiprocessing.Pipe() and fork()
//   4. if python3 is here: a Python multiprocessing.connection.Client with an authkey talks to our listener
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <duct/duct.hpp>

using namespace std::chrono_literals;

namespace {

struct job {
  int id = 0;
  std::uint64_t n = 0;
  MSGPACK_DEFINE_MAP(id, n)
};

struct answer {
  int id = 0;
  int worker = 0;
  std::vector<std::uint64_t> factors;
  MSGPACK_DEFINE_MAP(id, worker, factors)
};

std::vector<std::uint64_t> factorize(std::uint64_t n) {
  std::vector<std::uint64_t> f;
  for (std::uint64_t d = 2; d <= n / d; ++d)
    while (n % d == 0) {
      f.push_back(d);
      n /= d;
    }
  if (n > 1) f.push_back(n);
  return f;
}

int worker_main() {
  duct::connection parent = duct::from_env();
  while (auto message = parent.try_recv()) {  // empty when the parent closes our duct: time to go
    auto j = message->as<job>();
    parent.send(answer{j.id, static_cast<int>(::getpid()), factorize(j.n)});
  }
  return 0;
}

std::string join(const std::vector<std::uint64_t>& v) {
  std::string s;
  for (auto x : v) s += (s.empty() ? "" : " x ") + std::to_string(x);
  return s;
}

void workers_demo(const char* self) {
  std::printf("== 1. four workers, jobs handed out, answers collected with duct::wait()\n");
  std::vector<duct::child> workers;
  for (int i = 0; i < 4; ++i) workers.push_back(duct::spawn({self, "--worker"}));
  std::vector<std::uint64_t> numbers{600851475143ull,  9007199254740993ull, 99999640000243ull, 123456789012ull,
                                     56606581ull,       4294967297ull,       1000000007ull,     18446744073709551615ull};
  std::size_t next = 0, done = 0;
  std::map<duct::connection*, int> busy;
  for (auto& w : workers) {
    w.duct().send(job{static_cast<int>(next), numbers[next]});
    ++next;
  }
  while (done < numbers.size()) {
    std::vector<duct::connection*> all;
    for (auto& w : workers) all.push_back(&w.duct());
    for (duct::connection* ready : duct::wait(all, 60s)) {
      auto a = ready->recv().as<answer>();
      ++done;
      std::printf("   worker %d: %llu = %s\n", a.worker, static_cast<unsigned long long>(numbers[a.id]),
                  join(a.factors).c_str());
      if (next < numbers.size()) {
        ready->send(job{static_cast<int>(next), numbers[next]});
        ++next;
      }
    }
  }
  for (auto& w : workers) {
    w.duct().close();
    std::printf("   worker %d exited with status %d\n", w.pid(), w.wait());
  }
}

void fork_demo() {
  std::printf("== 2. pair() and fork(), as multiprocessing.Pipe()\n");
  auto [parent_end, child_end] = duct::pair();
  pid_t pid = ::fork();
  if (pid == 0) {
    parent_end.close();
    auto words = child_end.recv().as<std::vector<std::string>>();
    std::map<std::string, int> counts;
    for (auto& w : words) ++counts[w];
    child_end.send(counts);
    ::_exit(0);
  }
  child_end.close();
  parent_end.send(std::vector<std::string>{"duct", "pipe", "duct", "socket", "duct"});
  for (auto& [word, n] : parent_end.recv(10s).as<std::map<std::string, int>>())
    std::printf("   %-7s %d\n", word.c_str(), n);
  ::waitpid(pid, nullptr, 0);
}

void python_demo() {
  std::printf("== 3. a Python multiprocessing.connection.Client with an authkey\n");
  if (std::system("command -v python3 >/dev/null 2>&1") != 0) {
    std::printf("   (skipped: python3 is not installed)\n");
    return;
  }
  duct::options o{.framing = duct::framing::multiprocessing, .authkey = "demo-key"};
  duct::listener l("tcp://127.0.0.1:0", o);
  std::string port = l.address().substr(l.address().rfind(':') + 1);
  std::string code =
      "from multiprocessing.connection import Client\n"
      "with Client(('127.0.0.1', " + port + "), authkey=b'demo-key') as c:\n"
      "    c.send_bytes(b'hello from Python')\n"
      "    print('   python got:', c.recv_bytes().decode())\n";
  duct::child py = duct::spawn({"python3", "-c", code});
  duct::connection c = l.accept(30s);
  std::printf("   C++ got: %s (after the mutual HMAC handshake)\n", std::string(c.recv_bytes(30s).view()).c_str());
  c.send_bytes("hello from C++");
  std::fflush(stdout);
  py.wait();
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc > 1 && std::string(argv[1]) == "--worker") return worker_main();
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  workers_demo(argv[0]);
  fork_demo();
  python_demo();
  return 0;
} catch (const duct::error& e) {
  std::fprintf(stderr, "duct-demo: %s\n", e.what());
  return 1;
}
