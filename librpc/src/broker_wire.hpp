// Internal: what rpc-broker and its workers say to each other besides relaying events (docs/broker.md): the
// commands, the CLIENT frame that names a client to a worker, READY's payload, and token prefixes.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include <duct/buffer.hpp>

namespace rpc::detail {

inline constexpr std::string_view cmd_ready = "READY";
inline constexpr std::string_view cmd_heartbeat = "HEARTBEAT";
inline constexpr std::string_view cmd_drain = "DRAIN";
inline constexpr std::string_view cmd_bye = "BYE";
inline constexpr std::string_view cmd_reset = "RESET";

/// The CLIENT frame: the frontend's index, the key's length, the key (Z85, or none), the routing id.
/// Throws: error if `key` is neither empty nor 40 characters or `frontend` is over 255.
std::string make_client(std::size_t frontend, std::string_view key, std::string_view routing_id);
/// Whether `client` is a well-formed CLIENT frame.
bool valid_client(std::string_view client) noexcept;
/// Its parts; a malformed frame gives an empty key and routing id.
std::size_t client_frontend(std::string_view client) noexcept;
std::string_view client_key(std::string_view client) noexcept;
std::string_view client_routing_id(std::string_view client) noexcept;

/// What a worker announces.
struct ready_info {
  std::uint32_t jobs = 1;
  std::chrono::milliseconds heartbeat{5000};
  std::string prefix;  // its tokens' prefix (token_prefix())
  std::string name;
  std::map<std::string, duct::buffer, std::less<>> methods;  // name -> its _zerorpc_inspect entry, packed msgpack
};
/// READY's payload. `methods_packed` is one msgpack map as _zerorpc_inspect's "methods" has it.
duct::buffer make_ready(std::uint32_t jobs, std::chrono::milliseconds heartbeat, std::string_view prefix,
                        std::string_view name, std::span<const std::byte> methods_packed);
/// Throws: error saying what is wrong with the payload (not msgpack, a field missing or out of range).
ready_info parse_ready(std::span<const std::byte> payload);

/// A fresh token prefix for a worker: "w", 12 random hex digits, "-".
std::string make_token_prefix();
/// The prefix of a worker's token (up to and including its '-'), or empty if `token` has none.
std::string_view token_prefix(std::string_view token) noexcept;

}  // namespace rpc::detail
