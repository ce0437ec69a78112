// Internal: the address schemes libduct understands. Adding a transport means a scheme here and its own files.
#pragma once

#include <string>
#include <string_view>

namespace duct {

struct address {
  enum class kind { unix_path, unix_private, tcp };
  kind scheme;
  std::string path;  ///< unix_path: the socket path
  std::string host;  ///< tcp: host name or numeric address, without IPv6 brackets
  std::string port;  ///< tcp: port number as written
};

/// Parses "unix:PATH", "unix:" or "tcp://HOST:PORT" ("[v6]" hosts allowed).
/// Throws: address_error naming the address and what is wrong with it.
address parse_address(std::string_view text);

}  // namespace duct
