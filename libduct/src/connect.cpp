// duct::connect: dial with retries while nobody listens yet, then authenticate.
#include <duct/listener.hpp>

#include <algorithm>
#include <cstring>
#include <thread>

#include <duct/auth.hpp>

#include "transport.hpp"

namespace duct {

connection connect(std::string_view address_text, timeout t, const options& opts) {
  address a = parse_address(address_text);
  if (a.scheme == address::kind::unix_private)
    throw address_error("cannot connect to 'unix:' without a path; use the address the listener reports");
  const std::string where = describe(a);
  io::deadline d(t);
  auto backoff = std::chrono::milliseconds(2);
  for (;;) {
    dial_result r = a.scheme == address::kind::tcp ? tcp_dial(a, d) : unix_dial(a);
    if (r.fd >= 0) {
      connection c = connection::adopt(r.fd, opts, where);
      if (opts.authkey) {
        io::deadline hd(opts.handshake_timeout);
        auth::answer_challenge(c, *opts.authkey, hd.left());
        auth::deliver_challenge(c, *opts.authkey, hd.left());
      }
      return c;
    }
    if (!r.retry) io::throw_errno(r.error, "cannot connect to " + where);
    if (d.expired()) {
      throw timeout_error("cannot connect to " + where + " within " + std::to_string(t.count()) +
                          " ms: " + std::strerror(r.error));
    }
    // Nobody listens yet: the parent may still be starting. Back off, but never past the deadline.
    auto left = d.left();
    std::this_thread::sleep_for(d.infinite() ? backoff : std::min<std::chrono::milliseconds>(backoff, left));
    backoff = std::min(backoff * 2, std::chrono::milliseconds(100));
  }
}

}  // namespace duct
