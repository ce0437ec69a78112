// ipc:// endpoints and the files behind them: nothing that is not ours is replaced, a stale socket is, ours goes
// when the server stops, and "ipc://" alone makes a private directory.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>

#include <rpc/client.hpp>
#include <rpc/server.hpp>

#include "support.hpp"

namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

struct answering : rpc::server {
  answering() { bind("add", [](int a, int b) { return a + b; }); }
};

}  // namespace

TEST_CASE("ipc: a file that is not a socket is refused and left as it is", "[rpc][server][ipc]") {
  test::temp_dir dir;
  const std::string path = dir.file("precious.txt");
  std::ofstream(path) << "keep me";
  answering s;
  CHECK_THROWS_WITH(s.listen("ipc://" + path), Catch::Contains(path + " exists and is not a socket"));
  std::ifstream in(path);
  std::string text;
  std::getline(in, text);
  CHECK(text == "keep me");
}

TEST_CASE("ipc: another server's live socket is refused, and that server goes on serving", "[rpc][server][ipc]") {
  test::temp_dir dir;
  const std::string endpoint = "ipc://" + dir.file("busy.sock");
  answering first;
  first.listen(endpoint);
  first.start();
  answering second;
  CHECK_THROWS_WITH(second.listen(endpoint), Catch::Contains("another server listens on " + dir.file("busy.sock")));
  rpc::client c(endpoint);
  CHECK(c.call("add", 1, 2).as<int>() == 3);
}

TEST_CASE("ipc: a stale socket is replaced - the server removes its own when it stops", "[rpc][server][ipc]") {
  test::temp_dir dir;
  const std::string path = dir.file("stale.sock");
  {  // a socket whose server died without removing it
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strcpy(sa.sun_path, path.c_str());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    ::close(fd);
  }
  REQUIRE(exists(path));
  {
    answering s;
    s.listen("ipc://" + path);
    s.start();
    rpc::client c("ipc://" + path);
    CHECK(c.call("add", 2, 3).as<int>() == 5);
    s.stop();
    CHECK_FALSE(exists(path));  // gone when it stops
  }
  {
    answering never_started;
    never_started.listen("ipc://" + path);
    CHECK(exists(path));
  }
  CHECK_FALSE(exists(path));  // and when a server that never started goes
}

TEST_CASE("ipc: 'ipc://' alone listens in a fresh private directory, removed at the end", "[rpc][server][ipc]") {
  std::string endpoint, dir;
  {
    answering s;
    endpoint = s.listen("ipc://");
    s.start();
    REQUIRE(endpoint.starts_with("ipc://"));
    const std::string path = endpoint.substr(6);
    dir = path.substr(0, path.rfind('/'));
    struct stat st {};
    REQUIRE(::stat(dir.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    rpc::client c(endpoint);
    CHECK(c.call("add", 20, 22).as<int>() == 42);
  }
  CHECK_FALSE(exists(endpoint.substr(6)));
  CHECK_FALSE(exists(dir));
}
