// CURVE keys and certificates: what a server needs to encrypt its traffic and admit only the clients it knows.
//
// ZeroMQ's CURVE mechanism encrypts every message and authenticates both ends by their keys. A key is 32 bytes,
// written as 40 characters of Z85 (ZeroMQ's text encoding). The server has a key pair; each client has one too
// (a fresh, ephemeral pair if it does not care to be known), and must know the server's public key beforehand.
// The server admits only the client public keys in its allow-list (server_options::curve_allow).
//
// Certificates are files in czmq's format (zcert), which czmq's zcert_load and pyzmq's
// zmq.auth.load_certificate read too: PATH holds the public key and may be handed out; PATH_secret holds both
// keys, mode 0600.
//
//   rpc::curve_keypair server_keys = rpc::make_curve_keypair();
//   rpc::save_curve_certificate("server.key", server_keys);       // server.key and server.key_secret
//   rpc::server s({.curve_secret_key = server_keys.secret_key, .curve_allow = {client_public_key}});
//   rpc::client c(endpoint, {.curve_server_key = server_keys.public_key});   // an ephemeral client key
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace rpc {

/// A CURVE key pair, each key as 40 characters of Z85.
struct curve_keypair {
  std::string public_key;
  std::string secret_key;  ///< empty when only the public half is known (a public certificate)
};

/// Returns: a new key pair. Throws: error if this libzmq has no CURVE.
curve_keypair make_curve_keypair();

/// Returns: the public key belonging to `secret_key`. Throws: error if it is not a Z85 key of 40 characters.
std::string curve_public_key(std::string_view secret_key);

/// Whether `key` is a well-formed Z85 key (40 characters of Z85's alphabet). Throws: nothing.
bool is_curve_key(std::string_view key) noexcept;

/// Writes `keys` as a czmq certificate: `path` with the public key, `path`_secret with both (mode 0600).
/// Throws: error naming the file if either exists already (a key is never overwritten) or cannot be written.
void save_curve_certificate(const std::string& path, const curve_keypair& keys);

/// Reads a czmq certificate: public-key, and secret-key when the file has it (a _secret file).
/// Throws: error naming the file if it cannot be read or holds no well-formed public key.
curve_keypair load_curve_certificate(const std::string& path);

/// The public keys of the certificate at `path`, or of every certificate in the directory `path` (files whose
/// names end in _secret are skipped: the allow-list needs only public halves).
/// Throws: error naming the file that cannot be read or is not a certificate.
std::vector<std::string> load_curve_public_keys(const std::string& path);

}  // namespace rpc
