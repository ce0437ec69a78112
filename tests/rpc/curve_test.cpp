// CURVE: keys and czmq certificates, and a server that admits only the client keys of its allow-list.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <fstream>
#include <mutex>
#include <vector>

#include <rpc/client.hpp>
#include <rpc/curve.hpp>
#include <rpc/server.hpp>

#include "fixtures.hpp"
#include "support.hpp"

using namespace std::chrono_literals;

namespace {

struct refusal {
  std::string key, address;
};

struct curve_server {
  rpc::curve_keypair keys = rpc::make_curve_keypair();
  std::mutex mu;
  std::vector<refusal> refused;
  rpc::server server;
  std::string endpoint;

  explicit curve_server(std::vector<std::string> allow)
      : server({.curve_secret_key = keys.secret_key,
                .curve_allow = std::move(allow),
                .on_curve_refused = [this](const std::string& key, const std::string& address) {
                  std::lock_guard lock(mu);
                  refused.push_back({key, address});
                }}) {
    server.bind("add", [](int a, int b) { return a + b; });
    endpoint = server.listen("tcp://127.0.0.1:0");
    server.start();
  }
  std::vector<refusal> refusals() {
    std::lock_guard lock(mu);
    return refused;
  }
};

}  // namespace

TEST_CASE("curve: key pairs, and the public half derived from the secret", "[rpc][curve]") {
  rpc::curve_keypair a = rpc::make_curve_keypair(), b = rpc::make_curve_keypair();
  CHECK(rpc::is_curve_key(a.public_key));
  CHECK(rpc::is_curve_key(a.secret_key));
  CHECK(a.public_key != b.public_key);
  CHECK(rpc::curve_public_key(a.secret_key) == a.public_key);
  CHECK_FALSE(rpc::is_curve_key("short"));
  CHECK_FALSE(rpc::is_curve_key(std::string(40, ' ')));
  CHECK_THROWS_WITH(rpc::curve_public_key("nope"), Catch::Contains("40 characters of Z85"));
}

TEST_CASE("curve: certificates are written as czmq's, read back, and never overwritten", "[rpc][curve]") {
  test::temp_dir dir;
  const std::string path = dir.file("server.key");
  rpc::curve_keypair keys = rpc::make_curve_keypair();
  rpc::save_curve_certificate(path, keys);
  struct stat st {};
  REQUIRE(::stat((path + "_secret").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  rpc::curve_keypair pub = rpc::load_curve_certificate(path), both = rpc::load_curve_certificate(path + "_secret");
  CHECK(pub.public_key == keys.public_key);
  CHECK(pub.secret_key.empty());
  CHECK(both.public_key == keys.public_key);
  CHECK(both.secret_key == keys.secret_key);
  std::ifstream text(path);
  std::string all((std::istreambuf_iterator<char>(text)), {});
  CHECK_THAT(all, Catch::Contains("metadata\ncurve\n    public-key = \"" + keys.public_key + "\"\n"));
  CHECK_THROWS_WITH(rpc::save_curve_certificate(path, rpc::make_curve_keypair()),
                    Catch::Contains(path + "_secret: exists already"));
  CHECK(rpc::load_curve_certificate(path + "_secret").secret_key == keys.secret_key);  // untouched

  std::ofstream(dir.file("junk")) << "hello\n";
  CHECK_THROWS_WITH(rpc::load_curve_certificate(dir.file("junk")), Catch::Contains("junk: not a CURVE certificate"));
  std::ofstream(dir.file("bad")) << "curve\n    public-key = \"tooshort\"\n";
  CHECK_THROWS_WITH(rpc::load_curve_certificate(dir.file("bad")), Catch::Contains("bad:2: public-key is not"));
  CHECK_THROWS_WITH(rpc::load_curve_certificate(dir.file("missing")), Catch::Contains("missing"));

  test::temp_dir certs;
  rpc::curve_keypair c1 = rpc::make_curve_keypair(), c2 = rpc::make_curve_keypair();
  rpc::save_curve_certificate(certs.file("alice"), c1);
  rpc::save_curve_certificate(certs.file("bob"), c2);
  std::vector<std::string> listed = rpc::load_curve_public_keys(certs.path());
  std::sort(listed.begin(), listed.end());
  std::vector<std::string> want{c1.public_key, c2.public_key};
  std::sort(want.begin(), want.end());
  CHECK(listed == want);  // the _secret files are skipped
}

TEST_CASE("curve: only the clients of the allow-list are served; refusals name key and address", "[rpc][curve]") {
  rpc::curve_keypair alice = rpc::make_curve_keypair(), mallory = rpc::make_curve_keypair();
  curve_server s({alice.public_key});
  rpc::client ok(s.endpoint, {.curve_server_key = s.keys.public_key, .curve_public_key = alice.public_key,
                              .curve_secret_key = alice.secret_key});
  CHECK(ok.call("add", 1, 2).as<int>() == 3);
  CHECK(s.refusals().empty());

  rpc::client stranger(s.endpoint, {.curve_server_key = s.keys.public_key, .curve_public_key = mallory.public_key,
                                    .curve_secret_key = mallory.secret_key});
  CHECK_THROWS_AS(stranger.call_for(500ms, "add", 1, 2), rpc::timeout_error);
  test::eventually([&] { return !s.refusals().empty(); });
  CHECK(s.refusals().front().key == mallory.public_key);
  CHECK(s.refusals().front().address == "127.0.0.1");

  rpc::client ephemeral(s.endpoint, {.curve_server_key = s.keys.public_key});  // a fresh key: not on the list
  CHECK_THROWS_AS(ephemeral.call_for(500ms, "add", 1, 2), rpc::timeout_error);
  rpc::client plain(s.endpoint);  // no CURVE at all: its handshake fails before any call goes out
  CHECK_THROWS_AS(plain.call_for(500ms, "add", 1, 2), rpc::timeout_error);
  rpc::client wrong_server(s.endpoint, {.curve_server_key = rpc::make_curve_keypair().public_key,
                                        .curve_public_key = alice.public_key, .curve_secret_key = alice.secret_key});
  CHECK_THROWS_AS(wrong_server.call_for(500ms, "add", 1, 2), rpc::timeout_error);
  CHECK(ok.call("add", 2, 2).as<int>() == 4);  // the refused ones disturbed nobody
}

TEST_CASE("curve: with no allow-list any client that knows the server's key is served", "[rpc][curve]") {
  curve_server s({});
  rpc::client c(s.endpoint, {.curve_server_key = s.keys.public_key});
  CHECK(c.call("add", 20, 22).as<int>() == 42);
}

TEST_CASE("curve: malformed keys are refused up front", "[rpc][curve]") {
  CHECK_THROWS_WITH(rpc::server({.curve_secret_key = "x"}), Catch::Contains("curve_secret_key"));
  CHECK_THROWS_WITH(rpc::server({.curve_secret_key = rpc::make_curve_keypair().secret_key, .curve_allow = {"y"}}),
                    Catch::Contains("curve_allow: 'y'"));
  CHECK_THROWS_WITH(rpc::client("tcp://127.0.0.1:1", {.curve_server_key = "z"}), Catch::Contains("curve_server_key"));
  rpc::curve_keypair a = rpc::make_curve_keypair(), b = rpc::make_curve_keypair();
  CHECK_THROWS_WITH(rpc::client("tcp://127.0.0.1:1", {.curve_server_key = a.public_key, .curve_public_key = a.public_key,
                                                      .curve_secret_key = b.secret_key}),
                    Catch::Contains("not one Z85 key pair"));
}
