// Address parsing for listener and connect.
#include "address.hpp"

#include <charconv>

#include <duct/error.hpp>

namespace duct {

address parse_address(std::string_view text) {
  auto fail = [&](const std::string& why) -> address_error {
    return address_error("bad duct address '" + std::string(text) + "': " + why);
  };
  if (text.starts_with("unix:")) {
    std::string_view path = text.substr(5);
    if (path.empty()) return {address::kind::unix_private, {}, {}, {}};
    return {address::kind::unix_path, std::string(path), {}, {}};
  }
  if (text.starts_with("tcp://")) {
    std::string_view rest = text.substr(6);
    std::string_view host, port;
    if (rest.starts_with('[')) {
      auto close = rest.find(']');
      if (close == std::string_view::npos) throw fail("missing ']' after IPv6 address");
      host = rest.substr(1, close - 1);
      rest.remove_prefix(close + 1);
      if (!rest.starts_with(':')) throw fail("expected ':PORT' after ']'");
      port = rest.substr(1);
    } else {
      auto colon = rest.rfind(':');
      if (colon == std::string_view::npos) throw fail("expected tcp://HOST:PORT");
      host = rest.substr(0, colon);
      port = rest.substr(colon + 1);
    }
    if (host.empty()) throw fail("empty host");
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535)
      throw fail("port must be a number from 0 to 65535");
    return {address::kind::tcp, {}, std::string(host), std::string(port)};
  }
  throw fail("expected unix:PATH, unix: or tcp://HOST:PORT");
}

}  // namespace duct
