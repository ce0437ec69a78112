// Listening and connecting by address: unix paths, private unix directories, TCP, retries, authkey.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <set>
#include <thread>

#include <duct/duct.hpp>

#include "support.hpp"

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// Connects in another thread and echoes one message, so the main thread can accept.
std::future<void> echo_client(std::string address, duct::options o = {}) {
  return std::async(std::launch::async, [address, o] {
    duct::connection c = duct::connect(address, 10s, o);
    c.send_bytes(c.recv_bytes(10s).span());
  });
}

void check_echo(duct::connection& c) {
  c.send_bytes("echo me");
  CHECK(c.recv_bytes(10s).view() == "echo me");
}

}  // namespace

TEST_CASE("unix:PATH listens at that path and removes it on close", "[listener][unix]") {
  test::temp_dir dir;
  std::string path = dir.file("s.sock");
  duct::listener l("unix:" + path);
  CHECK(l.address() == "unix:" + path);
  auto client = echo_client(l.address());
  duct::connection c = l.accept(10s);
  check_echo(c);
  client.get();
  CHECK(fs::exists(path));
  l.close();
  CHECK_FALSE(fs::exists(path));
  l.close();
}

TEST_CASE("unix: makes a private 0700 directory, removed with the socket", "[listener][unix]") {
  std::string path;
  {
    duct::listener l("unix:");
    REQUIRE(l.address().starts_with("unix:"));
    path = l.address().substr(5);
    fs::path dir = fs::path(path).parent_path();
    struct stat st{};
    REQUIRE(::stat(dir.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    auto client = echo_client(l.address());
    duct::connection c = l.accept(10s);
    check_echo(c);
    client.get();
  }
  CHECK_FALSE(fs::exists(path));
  CHECK_FALSE(fs::exists(fs::path(path).parent_path()));
}

TEST_CASE("tcp port 0 picks a free port and address() shows it", "[listener][tcp]") {
  duct::listener l("tcp://127.0.0.1:0");
  REQUIRE(l.address().starts_with("tcp://127.0.0.1:"));
  CHECK(l.address() != "tcp://127.0.0.1:0");
  auto client = echo_client(l.address());
  duct::connection c = l.accept(10s);
  check_echo(c);
  client.get();
}

TEST_CASE("accept times out with the address in the message", "[listener][timeout]") {
  duct::listener l("tcp://127.0.0.1:0");
  CHECK_THROWS_WITH(l.accept(30ms), Catch::Contains(l.address()));
  l.close();
  CHECK_THROWS_AS(l.accept(30ms), duct::closed_error);
}

TEST_CASE("one listener accepts many children", "[listener][process]") {
  duct::listener l("unix:");
  constexpr int children = 8;
  std::vector<duct::child> kids;
  for (int i = 0; i < children; ++i) kids.push_back(duct::spawn({test::peer_program(), "connect", l.address()}));
  std::set<int> pids;
  for (int i = 0; i < children; ++i) {
    duct::connection c = l.accept(20s);
    pids.insert(c.recv(20s).as<int>());
    check_echo(c);
  }
  for (auto& k : kids) {
    CHECK(pids.count(k.pid()) == 1);
    CHECK(k.wait() == 0);
  }
}

TEST_CASE("connect retries while the listener is not up yet", "[listener][connect]") {
  test::temp_dir dir;
  std::string address = "unix:" + dir.file("late.sock");
  std::atomic<int> tid{0};
  auto client = std::async(std::launch::async, [&] {
    tid = static_cast<int>(::gettid());
    duct::connection c = duct::connect(address, 20s);
    c.send_bytes(c.recv_bytes(10s).span());
  });
  test::wait_until_sleeping(tid);  // the client has found no socket and is backing off
  duct::listener l(address);
  duct::connection c = l.accept(20s);
  check_echo(c);
  client.get();
}

TEST_CASE("connect gives up at its time limit, naming the address", "[listener][connect]") {
  test::temp_dir dir;
  std::string address = "unix:" + dir.file("nobody.sock");
  auto start = std::chrono::steady_clock::now();
  try {
    duct::connect(address, 200ms);
    FAIL("no exception");
  } catch (const duct::timeout_error& e) {
    CHECK_THAT(e.what(), Catch::Contains(address) && Catch::Contains("No such file"));
  }
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 200ms);
  CHECK(took < 5s);

  duct::listener l("tcp://127.0.0.1:0");
  std::string tcp = l.address();
  l.close();  // nothing listens on that port now
  CHECK_THROWS_WITH(duct::connect(tcp, 100ms), Catch::Contains(tcp) && Catch::Contains("refused"));
}

TEST_CASE("a stale socket file is replaced, a live one is refused", "[listener][unix]") {
  test::temp_dir dir;
  std::string path = dir.file("stale.sock");
  {
    // A listener that died without cleaning up leaves its socket file behind.
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strcpy(sa.sun_path, path.c_str());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    ::close(fd);
  }
  REQUIRE(fs::exists(path));
  duct::listener l("unix:" + path);
  CHECK_THROWS_WITH(duct::listener("unix:" + path), Catch::Contains(path) && Catch::Contains("in use"));
  auto client = echo_client(l.address());
  duct::connection c = l.accept(10s);
  check_echo(c);
  client.get();
}

TEST_CASE("bad addresses are address errors that quote the address", "[listener][address]") {
  for (std::string bad : {"nowhere", "tcp://127.0.0.1", "tcp://:80", "tcp://127.0.0.1:99999", "tcp://127.0.0.1:x",
                          "tcp://[::1:80", "udp://127.0.0.1:1"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(duct::listener(bad), duct::address_error);
    CHECK_THROWS_WITH(duct::connect(bad, 10ms), Catch::Contains(bad));
  }
  CHECK_THROWS_WITH(duct::listener("unix:/" + std::string(200, 'x')), Catch::Contains("longer than"));
  CHECK_THROWS_AS(duct::listener("tcp://no-such-host.invalid:1"), duct::address_error);
  CHECK_THROWS_AS(duct::connect("unix:", 10ms), duct::address_error);
}

TEST_CASE("authkey: the right key connects, both ways challenged", "[listener][auth]") {
  duct::options keyed{.authkey = "s3cret"};
  duct::listener l("tcp://127.0.0.1:0", keyed);
  auto client = echo_client(l.address(), keyed);
  duct::connection c = l.accept(10s);
  check_echo(c);
  client.get();
}

TEST_CASE("authkey: a wrong key fails clearly on both sides and closes the connection", "[listener][auth]") {
  duct::listener l("unix:", duct::options{.authkey = "right"});
  auto client = std::async(std::launch::async, [&] {
    duct::connect(l.address(), 10s, duct::options{.authkey = "wrong"});
  });
  CHECK_THROWS_WITH(l.accept(10s), Catch::Contains("digest received was wrong"));
  CHECK_THROWS_WITH(client.get(), Catch::Contains("digest sent was rejected"));
  // The listener keeps serving the next child.
  auto good = echo_client(l.address(), duct::options{.authkey = "right"});
  duct::connection c = l.accept(10s);
  check_echo(c);
  good.get();
}

TEST_CASE("authkey: a peer that does not speak the handshake is refused in bounded time", "[listener][auth]") {
  duct::listener l("unix:", duct::options{.authkey = "k", .handshake_timeout = 200ms});
  auto client = std::async(std::launch::async, [&] {
    duct::connection plain = duct::connect(l.address(), 10s);
    bool challenged = plain.try_recv_bytes(10s).has_value();  // the challenge arrives; we never answer
    bool hung_up = !plain.try_recv_bytes(10s);                // until the listener gives up on us
    return challenged && hung_up;
  });
  CHECK_THROWS_AS(l.accept(10s), duct::timeout_error);
  CHECK(client.get());
}
