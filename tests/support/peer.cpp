// duct-test-peer: the child side of the process tests. The first argument picks what it does.
//   echo                 echo every message on DUCT_FD back until end of stream
//   fds                  send the list of open descriptors (from /proc/self/fd), then exit
//   exit N               send "ready", then exit with status N
//   hang                 send "ready", then wait to be killed
//   connect ADDR [KEY]   connect to ADDR (with authkey KEY), send our pid, echo one message, exit
//   partial              write half a frame to DUCT_FD, then exit
#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <duct/duct.hpp>

namespace {

int echo(duct::connection& c) {
  while (auto m = c.try_recv_bytes()) c.send_bytes(m->span());
  return 0;
}

std::vector<int> open_fds() {
  std::vector<int> fds;
  DIR* d = ::opendir("/proc/self/fd");
  int own = ::dirfd(d);
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    int fd = std::atoi(e->d_name);
    if (fd != own) fds.push_back(fd);
  }
  ::closedir(d);
  return fds;
}

}  // namespace

int main(int argc, char** argv) try {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return 2;
  const std::string& mode = args[0];
  if (mode == "connect") {
    duct::options o;
    if (args.size() > 2) o.authkey = args[2];
    duct::connection c = duct::connect(args.at(1), std::chrono::seconds(20), o);
    c.send(static_cast<int>(::getpid()));
    auto m = c.recv_bytes(std::chrono::seconds(20));
    c.send_bytes(m.span());
    return 0;
  }
  duct::connection parent = duct::from_env();
  if (mode == "echo") return echo(parent);
  if (mode == "fds") {
    parent.send(open_fds());
    return 0;
  }
  if (mode == "exit") {
    parent.send_bytes("ready");
    return std::atoi(args.at(1).c_str());
  }
  if (mode == "hang") {
    parent.send_bytes("ready");
    for (;;) ::pause();
  }
  if (mode == "partial") {
    const unsigned char half[] = {0x54, 0, 0, 0, 10, 'a', 'b'};
    if (::write(parent.fileno(), half, sizeof half) != static_cast<ssize_t>(sizeof half)) return 3;
    return 0;
  }
  return 2;
} catch (const std::exception& e) {
  std::cerr << "duct-test-peer: " << e.what() << "\n";
  return 1;
}
