// multiprocessing's authkey handshake, interoperable with Python 3.11 (HMAC-MD5) and 3.12+ ({digest}HMAC).
//
// Mutual: the accepting side challenges first (deliver_challenge, then answer_challenge); the connecting side does
// the reverse. listener and connect run it for you when options.authkey is set; these functions are for ducts made
// another way. Each handshake message is one framed message of at most 256 bytes.
//
// We challenge with "#CHALLENGE#{sha256}" + 40 random bytes, as Python 3.12+ does. A 3.11 peer answers with a bare
// 16-byte HMAC-MD5 over the same message, which we accept, as 3.12 does. We answer a bare 20-byte challenge with
// HMAC-MD5 and a "{digest}" one with that digest.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include <duct/buffer.hpp>
#include <duct/connection.hpp>

namespace duct::auth {

inline constexpr std::string_view challenge_tag = "#CHALLENGE#";
inline constexpr std::string_view welcome = "#WELCOME#";
inline constexpr std::string_view failure = "#FAILURE#";

/// The body of a fresh challenge: "{digest}" followed by 40 random bytes.
/// Throws: auth_error if `digest` is not one Python allows (md5, sha256, sha384, sha3_256, sha3_384).
buffer make_challenge_body(std::string_view digest = "sha256");

/// The reply to a challenge body (the bytes after "#CHALLENGE#").
/// Throws: auth_error for a body that is too short or names an unsupported digest.
buffer make_response(std::string_view key, std::span<const std::byte> body);

/// Whether `response` proves knowledge of `key` for challenge `body`. Constant-time comparison.
bool verify_response(std::string_view key, std::span<const std::byte> body, std::span<const std::byte> response);

/// Challenges the peer; sends "#WELCOME#" or "#FAILURE#".
/// Throws: auth_error "digest received was wrong" (after telling the peer), or any duct error.
void deliver_challenge(connection& duct, std::string_view key, timeout t = std::chrono::seconds(10));

/// Answers the peer's challenge.
/// Throws: auth_error "digest sent was rejected" if the peer refused us, or for a malformed challenge.
void answer_challenge(connection& duct, std::string_view key, timeout t = std::chrono::seconds(10));

}  // namespace duct::auth
