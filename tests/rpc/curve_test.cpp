// CURVE: keys and czmq certificates, and a server that admits only the client keys of its allow-list.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <fstream>
#include <future>
#include <mutex>
#include <vector>

#include <rpc/client.hpp>
#include <rpc/curve.hpp>
#include <rpc/server.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

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

TEST_CASE("curve: only the clients of the allow-list are served - refusals name key and address", "[rpc][curve]") {
  rpc::curve_keypair alice = rpc::make_curve_keypair(), mallory = rpc::make_curve_keypair();
  curve_server s({alice.public_key});
  rpc::client ok(s.endpoint, {.curve_server_key = s.keys.public_key, .curve_public_key = alice.public_key,
                              .curve_secret_key = alice.secret_key});
  CHECK(ok.call("add", 1, 2).as<int>() == 3);
  CHECK(s.refusals().empty());

  rpc::client stranger(s.endpoint, {.curve_server_key = s.keys.public_key, .curve_public_key = mallory.public_key,
                                    .curve_secret_key = mallory.secret_key});
  CHECK_THROWS_AS(stranger.call_for(30s, "add", 1, 2), rpc::connection_error);
  test::eventually([&] { return !s.refusals().empty(); });
  CHECK(s.refusals().front().key == mallory.public_key);
  CHECK(s.refusals().front().address == "127.0.0.1");

  // Each refused client hears why at once, not after its time limit (which is long here so that it could not pass
  // for the handshake's failure), on the blocking path and the asynchronous one.
  rpc::client ephemeral(s.endpoint, {.curve_server_key = s.keys.public_key});  // a fresh key: not on the list
  CHECK_THROWS_WITH(ephemeral.call_for(30s, "add", 1, 2), Catch::Matchers::Contains("refused our CURVE key"));
  CHECK_THROWS_AS(ephemeral.async_call_for(30s, "add", 1, 2).get(), rpc::connection_error);
  // A stream and a chunked call hear it from their source and duplex (as over a duct: see stream.hpp).
  rpc::source items = ephemeral.stream("count", 3);
  CHECK_THROWS_AS(items.next(), rpc::connection_error);
  rpc::duplex upload = ephemeral.chunked_call("sum");
  CHECK_THROWS_AS(upload.finish(), rpc::connection_error);
  rpc::client plain(s.endpoint);  // no CURVE at all: its handshake fails before any call goes out
  CHECK_THROWS_WITH(plain.call_for(30s, "add", 1, 2), Catch::Matchers::Contains("give its public key"));
  CHECK_THROWS_AS(plain.async_call_for(30s, "add", 1, 2).get(), rpc::connection_error);
  rpc::client wrong_server(s.endpoint, {.curve_server_key = rpc::make_curve_keypair().public_key,
                                        .curve_public_key = alice.public_key, .curve_secret_key = alice.secret_key});
  CHECK_THROWS_WITH(wrong_server.call_for(30s, "add", 1, 2), Catch::Matchers::Contains("server's public key"));
  CHECK_THROWS_AS(wrong_server.async_call_for(30s, "add", 1, 2).get(), rpc::connection_error);
  // A refused client's later calls fail at once too: ZeroMQ does not try a refused connection again.
  CHECK_THROWS_AS(stranger.call_for(30s, "add", 1, 2), rpc::connection_error);
  CHECK_THROWS_AS(stranger.async_call_for(30s, "add", 1, 2).get(), rpc::connection_error);
  CHECK_THROWS_AS(stranger.async_call_for(30s, "add", 1, 2).get(), rpc::connection_error);
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

TEST_CASE("curve: a job belongs to the key that started it: others can neither list, poll, wait for nor cancel it",
          "[rpc][curve][deferred]") {
  rpc::curve_keypair alice = rpc::make_curve_keypair(), bob = rpc::make_curve_keypair();
  rpc::curve_keypair server_keys = rpc::make_curve_keypair();
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  rpc::server s({.defer_after = std::chrono::milliseconds(20), .curve_secret_key = server_keys.secret_key,
                 .curve_allow = {alice.public_key, bob.public_key}});
  s.bind("hold", [released](int x) {
    released.wait();
    return x;
  });
  const std::string endpoint = s.listen("tcp://127.0.0.1:0");
  s.start();
  auto as = [&](const rpc::curve_keypair& k) {
    return rpc::client_options{.curve_server_key = server_keys.public_key, .curve_public_key = k.public_key,
                               .curve_secret_key = k.secret_key};
  };
  rpc::client a(endpoint, as(alice)), a_again(endpoint, as(alice)), b(endpoint, as(bob));
  const std::string token = a.submit("hold", 7);
  CHECK(token.size() == 32);
  auto tokens = [](rpc::client& c) {
    std::vector<std::string> out;
    for (const auto& j : nlohmann::json::parse(c.call("_ductrpc_list").to_json())) out.push_back(j["token"]);
    return out;
  };
  CHECK(tokens(a) == std::vector<std::string>{token});
  CHECK(tokens(a_again) == std::vector<std::string>{token});  // the same key from another connection
  CHECK(tokens(b).empty());
  CHECK_THROWS_AS(b.poll(token), rpc::unknown_token_error);  // as if there were no such job
  CHECK_THROWS_AS(b.wait(token, std::chrono::milliseconds(10)), rpc::unknown_token_error);
  CHECK_THROWS_AS(b.cancel(token), rpc::unknown_token_error);
  auto deferred = b.async_call("hold", 8);  // deferred behind the scenes: bob's own job
  test::eventually([&] { return tokens(b).size() == 1; });
  CHECK(tokens(a) == std::vector<std::string>{token});
  release.set_value();
  CHECK(a_again.wait(token, std::chrono::seconds(10)).as<int>() == 7);
  CHECK(deferred.get().as<int>() == 8);
}

TEST_CASE("deferred: without CURVE, _ductrpc_list shows nothing unless the server enables it", "[rpc][deferred]") {
  for (bool enabled : {false, true}) {
    rpc::server s({.list_jobs = enabled});
    s.bind("add", [](int a, int b) { return a + b; });
    rpc::client c(s.listen("tcp://127.0.0.1:0"));
    s.start();
    const std::string token = c.submit("add", 1, 2);
    CHECK(c.wait(token, std::chrono::seconds(5)).as<int>() == 3);  // the token still works
    CHECK(nlohmann::json::parse(c.call("_ductrpc_list").to_json()).size() == (enabled ? 1u : 0u));
  }
}

TEST_CASE("curve: a client that takes the routing id of one that left does not inherit its key or its jobs",
          "[rpc][curve][deferred]") {
  rpc::curve_keypair alice = rpc::make_curve_keypair(), mallory = rpc::make_curve_keypair();
  curve_server s({alice.public_key, mallory.public_key});
  zmq::context_t ctx;
  auto dealer = [&](const rpc::curve_keypair& k) {
    zmq::socket_t d(ctx, zmq::socket_type::dealer);
    d.set(zmq::sockopt::linger, 0);
    d.set(zmq::sockopt::routing_id, "same-id");
    d.set(zmq::sockopt::curve_serverkey, s.keys.public_key);
    d.set(zmq::sockopt::curve_publickey, k.public_key);
    d.set(zmq::sockopt::curve_secretkey, k.secret_key);
    d.set(zmq::sockopt::rcvtimeo, 5000);
    d.connect(s.endpoint);
    return d;
  };
  rpc::id_generator ids;
  std::string token;
  {
    zmq::socket_t a = dealer(alice);
    test::send_body(a, rpc::encode_event({ids.next()}, "_ductrpc_submit",
                                         std::make_tuple("add", std::make_tuple(1, 2))).span());
    rpc::event reply = test::recv_event(a);
    REQUIRE(reply.name == "OK");
    token = reply.args().via.array.ptr[0].as<std::string>();
  }  // alice leaves
  rpc::client alice_again(s.endpoint, {.curve_server_key = s.keys.public_key, .curve_public_key = alice.public_key,
                                       .curve_secret_key = alice.secret_key});
  test::eventually([&] {  // until the server has noticed alice's socket gone and takes the id again
    zmq::socket_t m = dealer(mallory);
    test::send_body(m, rpc::encode_event({ids.next()}, "_ductrpc_poll", std::make_tuple(token)).span());
    std::vector<zmq::message_t> frames;
    if (!zmq::recv_multipart(m, std::back_inserter(frames)) || frames.empty()) return false;
    rpc::event e = rpc::decode_event(std::as_bytes(std::span(static_cast<const char*>(frames.back().data()),
                                                             frames.back().size())));
    REQUIRE(e.name == "ERR");  // never alice's job
    CHECK(e.args().via.array.ptr[0].as<std::string>() == "UnknownToken");
    return true;
  });
  CHECK(alice_again.wait(token, std::chrono::seconds(5)).as<int>() == 3);  // still alice's, from a new connection
}
