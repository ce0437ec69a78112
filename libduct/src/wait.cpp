// duct::wait(): readiness of many ducts at once, as multiprocessing.connection.wait().
#include <poll.h>

#include <cerrno>
#include <vector>

#include <duct/connection.hpp>

#include "io.hpp"

namespace duct {

std::vector<connection*> wait(std::span<connection* const> ducts, timeout t) {
  io::deadline d(t);
  std::vector<connection*> ready;
  std::vector<pollfd> fds;
  for (;;) {
    ready.clear();
    fds.clear();
    for (connection* c : ducts) {
      if (c == nullptr || c->closed() || !c->readable()) continue;
      try {
        if (c->poll(timeout{0})) {
          ready.push_back(c);
        } else {
          fds.push_back({c->fileno(), POLLIN, 0});
        }
      } catch (const closed_error&) {
        // closed by another thread since the check above: skipped, like any closed duct
      }
    }
    if (!ready.empty() || fds.empty()) return ready;
    int r = ::poll(fds.data(), fds.size(), d.poll_ms());
    if (r < 0 && errno != EINTR) io::throw_errno(errno, "wait: poll");
    if (r == 0 && d.expired()) return ready;
    // Something arrived; the loop above checks whether it completes a message.
  }
}

}  // namespace duct
