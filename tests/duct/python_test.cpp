// Live peers from Python's standard library: multiprocessing.connection, and the ductworks framing with JSON.
#include <catch2/catch.hpp>


#include <duct/duct.hpp>

#include "support.hpp"

using namespace std::chrono_literals;

namespace {

const duct::options mp{.framing = duct::framing::multiprocessing};

duct::child python(const std::vector<std::string>& args) {
  std::vector<std::string> argv{test::python3()};
  argv.insert(argv.end(), args.begin(), args.end());
  return duct::spawn(argv, mp);  // the control duct speaks multiprocessing framing, which Connection(fd) reads
}

void talk_to_python_listener(const std::optional<std::string>& key) {
  std::vector<std::string> args{test::peer_script("mp_peer.py"), "listen"};
  if (key) args.push_back(*key);
  duct::child peer = python(args);
  std::string address(peer.duct().recv_bytes(20s).view());
  duct::options o = mp;
  o.authkey = key;
  duct::connection c = duct::connect(address, 20s, o);
  c.send_bytes("ping");
  CHECK(c.recv_bytes(20s).view() == "pong:ping");
  std::string big(3 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  c.send_bytes(big);
  CHECK(c.recv_bytes(20s).view() == test::sha256_hex(big));
  CHECK(peer.duct().recv_bytes(20s).view() == "ok");
  CHECK(peer.wait() == 0);
}

void python_client_to_our_listener(const std::optional<std::string>& key) {
  std::vector<std::string> args{test::peer_script("mp_peer.py"), "connect"};
  if (key) args.push_back(*key);
  duct::child peer = python(args);
  duct::options o = mp;
  o.authkey = key;
  duct::listener l("tcp://127.0.0.1:0", o);
  peer.duct().send_bytes(l.address());
  duct::connection c = l.accept(20s);
  CHECK(c.recv_bytes(20s).view() == "ping");
  c.send_bytes("pong");
  CHECK(peer.duct().recv_bytes(20s).view() == "ok:pong");
  CHECK(peer.wait() == 0);
}

}  // namespace

TEST_CASE("python: we connect to multiprocessing.connection.Listener", "[python][multiprocessing]") {
  TEST_REQUIRE_PYTHON();
  talk_to_python_listener(std::nullopt);
}

TEST_CASE("python: we connect to a Listener with an authkey", "[python][multiprocessing][auth]") {
  TEST_REQUIRE_PYTHON();
  talk_to_python_listener(std::string("py-secret"));
}

TEST_CASE("python: multiprocessing.connection.Client connects to our listener", "[python][multiprocessing]") {
  TEST_REQUIRE_PYTHON();
  python_client_to_our_listener(std::nullopt);
}

TEST_CASE("python: a Client with an authkey connects to our listener", "[python][multiprocessing][auth]") {
  TEST_REQUIRE_PYTHON();
  python_client_to_our_listener(std::string("cxx-secret"));
}

TEST_CASE("python: a wrong authkey fails on both sides with Python's messages", "[python][multiprocessing][auth]") {
  TEST_REQUIRE_PYTHON();
  SECTION("their Listener, our wrong key") {
    duct::child peer = python({test::peer_script("mp_peer.py"), "listen", "right"});
    std::string address(peer.duct().recv_bytes(20s).view());
    duct::options o = mp;
    o.authkey = "wrong";
    CHECK_THROWS_WITH(duct::connect(address, 20s, o), Catch::Contains("digest sent was rejected"));
    CHECK(peer.duct().recv_bytes(20s).view() == "error:AuthenticationError:digest received was wrong");
    CHECK(peer.wait() == 0);
  }
  SECTION("our listener, their wrong key") {
    duct::child peer = python({test::peer_script("mp_peer.py"), "connect", "wrong"});
    duct::options o = mp;
    o.authkey = "right";
    duct::listener l("tcp://127.0.0.1:0", o);
    peer.duct().send_bytes(l.address());
    CHECK_THROWS_WITH(l.accept(20s), Catch::Contains("digest received was wrong"));
    CHECK(peer.duct().recv_bytes(20s).view() == "error:AuthenticationError:digest sent was rejected");
    CHECK(peer.wait() == 0);
  }
}

TEST_CASE("python: a ductworks-framing JSON peer and a C++ duct talk both ways", "[python][ductworks]") {
  TEST_REQUIRE_PYTHON();
  for (const char* where : {"unix:", "tcp://127.0.0.1:0"}) {
    CAPTURE(where);
    duct::listener l(where, duct::options{.codec = duct::codec::json});
    duct::child peer = duct::spawn({test::python3(), test::peer_script("ductworks_peer.py"), l.address()});
    duct::connection c = l.accept(20s);
    CHECK(c.recv(20s).to_json() == R"(["hello from python", 3.25, null, true, "\u00e9\ud83d\ude00"])");
    c.send(std::make_tuple(1, std::string("two"), 3.5));
    CHECK(c.recv(20s).to_json() == R"({"echo": [1, "two", 3.5]})");
    std::map<std::string, std::vector<int>> m{{"k", {1, 2}}};
    c.send(m);
    CHECK(c.recv(20s).as<std::map<std::string, std::map<std::string, std::vector<int>>>>()["echo"] == m);
    c.shutdown_write();
    CHECK_FALSE(c.try_recv(20s));
    CHECK(peer.wait() == 0);
  }
}
