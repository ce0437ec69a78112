// Fan-out (rpc::group): one call on several servers at once, every server's result or error in the answer.
#include <catch2/catch.hpp>

#include <future>

#include <duct/connection.hpp>
#include <rpc/group.hpp>
#include <rpc/link.hpp>
#include <rpc/server.hpp>

#include "fixtures.hpp"

using namespace std::chrono_literals;

TEST_CASE("group: a call on every member returns each one's result or error, in order", "[rpc][group]") {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  rpc::server good, failing, silent;
  good.bind("whoami", [] { return std::string("good"); });
  failing.bind("whoami", []() -> std::string { throw rpc::remote_error("ValueError", "not today"); });
  silent.bind("whoami", [released] {
    released.wait();
    return std::string("late");
  });
  std::string good_ep = good.listen("tcp://127.0.0.1:0"), failing_ep = failing.listen("tcp://127.0.0.1:0"),
              silent_ep = silent.listen("tcp://127.0.0.1:0");
  good.start();
  failing.start();
  silent.start();
  // A fourth member over a duct, and a fifth whose duct is closed already.
  auto [server_end, client_end] = duct::pair();
  rpc::link served(std::move(server_end)), calling(std::move(client_end));
  rpc::server local;
  local.bind("whoami", [] { return std::string("local"); });
  local.listen(served);
  local.start();
  auto [gone_a, gone_b] = duct::pair();
  rpc::link gone(std::move(gone_a));

  rpc::group all;
  all.add(good_ep);
  all.add(failing_ep);
  all.add(silent_ep);
  all.add(calling);
  all.add(gone);
  gone.close();
  REQUIRE(all.size() == 5);

  auto start = std::chrono::steady_clock::now();
  std::vector<rpc::outcome> out = all.call_all_for(300ms, "whoami");
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE(out.size() == 5);
  CHECK(out[0].ok());
  CHECK(out[0].value().as<std::string>() == "good");
  CHECK(out[0].endpoint == good_ep);
  CHECK_FALSE(out[1].ok());
  CHECK_THROWS_AS(out[1].value(), rpc::remote_error);
  CHECK(out[1].message() == "ValueError: not today");
  CHECK_THROWS_AS(out[2].value(), rpc::timeout_error);
  CHECK(out[2].endpoint == silent_ep);
  CHECK(out[3].value().as<std::string>() == "local");
  CHECK_THROWS_AS(out[4].value(), rpc::closed_error);
  // The members were called at once: the silent one's limit was the only wait.
  CHECK(took >= 300ms);
  CHECK(took < 3s);
  release.set_value();
  silent.stop();
}
