// multiprocessing's authkey handshake. See auth.hpp.
#include <duct/auth.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <cstring>
#include <string>

#include "io.hpp"

namespace duct::auth {
namespace {

constexpr std::size_t random_bytes = 40;        // what Python 3.12+ sends
constexpr std::size_t legacy_challenge = 20;    // Python <= 3.11: bare random bytes
constexpr std::size_t md5_digest = 16;
constexpr std::size_t max_digest_name = 8;      // "sha3_384"
constexpr std::size_t max_handshake_message = 256;

// Python's names for the digests it allows, and OpenSSL's for them.
const EVP_MD* digest_by_python_name(std::string_view name) {
  if (name == "md5") return EVP_md5();
  if (name == "sha256") return EVP_sha256();
  if (name == "sha384") return EVP_sha384();
  if (name == "sha3_256") return EVP_sha3_256();
  if (name == "sha3_384") return EVP_sha3_384();
  return nullptr;
}

std::string_view as_text(std::span<const std::byte> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// Splits a challenge body or a response into its digest name and payload, as Python 3.12 does:
// 16 or 20 bytes means the legacy unprefixed form (MD5); otherwise "{name}" must lead.
struct digest_and_payload {
  std::string_view name;  // empty: legacy
  std::span<const std::byte> payload;
  bool ok = false;
};
digest_and_payload split(std::span<const std::byte> message) {
  if (message.size() == md5_digest || message.size() == legacy_challenge) return {"", message, true};
  std::string_view text = as_text(message);
  if (!text.starts_with('{')) return {};
  auto close = text.find('}', 1);
  if (close == std::string_view::npos || close > max_digest_name + 1) return {};
  std::string_view name = text.substr(1, close - 1);
  if (!digest_by_python_name(name)) return {};
  return {name, message.subspan(close + 1), true};
}

buffer hmac(std::string_view digest_name, std::string_view key, std::span<const std::byte> message) {
  const EVP_MD* md = digest_by_python_name(digest_name.empty() ? "md5" : digest_name);
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int len = 0;
  if (!HMAC(md, key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
            message.size(), out.data(), &len))
    throw auth_error("HMAC computation failed");
  return buffer(std::as_bytes(std::span(out.data(), len)));
}

// "{name}", the digest tag before a challenge or a response. Appended piece by piece: GCC 12 at -O2/-O3 reports a
// false -Wrestrict overlap inside "{" + std::string(...) (a libstdc++ inlining artefact), which -Werror turns fatal.
std::string braced(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out += '{';
  out += name;
  out += '}';
  return out;
}

}  // namespace

buffer make_challenge_body(std::string_view digest) {
  if (!digest_by_python_name(digest)) throw auth_error("unsupported authkey digest '" + std::string(digest) + "'");
  std::string prefix = braced(digest);
  buffer body(prefix.size() + random_bytes);
  std::memcpy(body.data(), prefix.data(), prefix.size());
  if (RAND_bytes(reinterpret_cast<unsigned char*>(body.data() + prefix.size()), static_cast<int>(random_bytes)) != 1)
    throw auth_error("cannot generate random challenge bytes");
  return body;
}

buffer make_response(std::string_view key, std::span<const std::byte> body) {
  if (body.size() < legacy_challenge)
    throw auth_error("authkey challenge too short: " + std::to_string(body.size()) + " bytes");
  digest_and_payload d = split(body);
  if (!d.ok) throw auth_error("authkey challenge names no supported digest");
  buffer mac = hmac(d.name, key, body);  // the MAC covers the whole body, "{name}" prefix included
  if (d.name.empty()) return mac;
  std::string prefix = braced(d.name);
  buffer out(prefix.size() + mac.size());
  std::memcpy(out.data(), prefix.data(), prefix.size());
  std::memcpy(out.data() + prefix.size(), mac.data(), mac.size());
  return out;
}

bool verify_response(std::string_view key, std::span<const std::byte> body, std::span<const std::byte> response) {
  digest_and_payload d = split(response);
  if (!d.ok) return false;
  buffer expected = hmac(d.name, key, body);
  return expected.size() == d.payload.size() && CRYPTO_memcmp(expected.data(), d.payload.data(), expected.size()) == 0;
}

void deliver_challenge(connection& duct, std::string_view key, timeout t) {
  io::deadline d(t);
  buffer body = make_challenge_body();
  std::string message = std::string(challenge_tag) + std::string(body.view());
  duct.send_bytes(message, d.left());
  buffer response = duct.recv_bytes(max_handshake_message, d.left());
  if (!verify_response(key, body.span(), response.span())) {
    duct.send_bytes(failure, d.left());
    std::string name = duct.name();
    duct.close();
    throw auth_error(name + ": authentication failed: digest received was wrong");
  }
  duct.send_bytes(welcome, d.left());
}

void answer_challenge(connection& duct, std::string_view key, timeout t) {
  io::deadline d(t);
  buffer message = duct.recv_bytes(max_handshake_message, d.left());
  if (!message.view().starts_with(challenge_tag)) {
    std::string name = duct.name();
    duct.close();
    throw auth_error(name + ": authentication failed: expected a challenge from the peer");
  }
  std::span<const std::byte> body = message.span().subspan(challenge_tag.size());
  buffer response = make_response(key, body);
  duct.send_bytes(response.span(), d.left());
  buffer verdict = duct.recv_bytes(max_handshake_message, d.left());
  if (verdict.view() != welcome) {
    std::string name = duct.name();
    duct.close();
    throw auth_error(name + ": authentication failed: digest sent was rejected");
  }
}

}  // namespace duct::auth
