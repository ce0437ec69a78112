// Ducts across processes: fork, spawn with DUCT_FD, exit status, killed peers, descriptor hygiene.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

#include <duct/duct.hpp>

#include "support.hpp"

using namespace std::chrono_literals;

TEST_CASE("a pair survives fork, and each side closes the other's end", "[process][fork]") {
  auto [parent_end, child_end] = duct::pair();
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    parent_end.close();  // must not disturb the parent's copy
    int code = 0;
    try {
      while (auto m = child_end.try_recv()) child_end.send(m->as<int>() * 2);
    } catch (...) {
      code = 1;
    }
    ::_exit(code);
  }
  child_end.close();
  for (int i = 0; i < 100; ++i) {
    parent_end.send(i);
    REQUIRE(parent_end.recv(10s).as<int>() == 2 * i);
  }
  parent_end.close();
  int st = 0;
  REQUIRE(::waitpid(pid, &st, 0) == pid);
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
}

TEST_CASE("spawn gives the child its end in DUCT_FD and reports its exit", "[process][spawn]") {
  duct::child echo = duct::spawn({test::peer_program(), "echo"});
  CHECK(echo.pid() > 0);
  echo.duct().send_bytes("round trip");
  CHECK(echo.duct().recv_bytes(10s).view() == "round trip");
  echo.duct().close();  // end of stream: the child finishes
  CHECK(echo.wait() == 0);
  CHECK(echo.wait() == 0);  // remembered

  duct::child seven = duct::spawn({test::peer_program(), "exit", "7"});
  CHECK(seven.duct().recv_bytes(10s).view() == "ready");
  CHECK(seven.wait() == 7);
}

TEST_CASE("nothing but the duct leaks into the child", "[process][spawn]") {
  auto [keep_a, keep_b] = duct::pair();
  duct::listener l("unix:");
  duct::child c = duct::spawn({test::peer_program(), "fds"});
  auto fds = c.duct().recv(10s).as<std::vector<int>>();
  for (int ours : {keep_a.fileno(), keep_b.fileno(), l.fileno(), c.duct().fileno()}) {
    CAPTURE(ours);
    CHECK(std::find(fds.begin(), fds.end(), ours) == fds.end());
  }
  CHECK(c.wait() == 0);
}

TEST_CASE("a peer killed with SIGKILL is end of stream, and its status says so", "[process][spawn]") {
  duct::child c = duct::spawn({test::peer_program(), "hang"});
  REQUIRE(c.duct().recv_bytes(10s).view() == "ready");
  CHECK_FALSE(c.wait(20ms));
  c.kill(SIGKILL);
  CHECK_THROWS_AS(c.duct().recv_bytes(10s), duct::closed_error);
  auto status = c.wait(10s);
  REQUIRE(status);
  CHECK(*status == -SIGKILL);
}

TEST_CASE("a child that dies mid-frame gives a mid-message closed_error", "[process][spawn]") {
  duct::child c = duct::spawn({test::peer_program(), "partial"});
  try {
    c.duct().recv_bytes(10s);
    FAIL("no exception");
  } catch (const duct::closed_error& e) {
    CHECK(e.mid_message());
  }
  CHECK(c.wait() == 0);
}

TEST_CASE("spawn of a missing program names it", "[process][spawn]") {
  CHECK_THROWS_WITH(duct::spawn({"/nonexistent/worker"}), Catch::Contains("/nonexistent/worker"));
  CHECK_THROWS_AS(duct::spawn({}), duct::usage_error);
}

TEST_CASE("from_env explains a missing or bad DUCT_FD", "[process][spawn]") {
  ::unsetenv("DUCT_FD");
  CHECK_THROWS_WITH(duct::from_env(), Catch::Contains("DUCT_FD is not set"));
  ::setenv("DUCT_FD", "12x", 1);
  CHECK_THROWS_WITH(duct::from_env(), Catch::Contains("not a file descriptor"));
  int not_a_socket = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ::setenv("DUCT_FD", std::to_string(not_a_socket).c_str(), 1);
  CHECK_THROWS_WITH(duct::from_env(), Catch::Contains("not name an open socket"));
  ::close(not_a_socket);
  ::unsetenv("DUCT_FD");
}
