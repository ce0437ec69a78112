// Fuzz target: the authkey handshake of multiprocessing.connection, from both sides, against a peer that says
// anything. The input is the peer's messages (each a byte of length, then the bytes); the handshake must end in
// success or a clear auth_error/closed_error, never a crash, a hang or a read past its 256-byte cap; the
// sans-I/O checks (make_response, verify_response) take any bytes too.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include <duct/auth.hpp>
#include <duct/connection.hpp>

namespace {

// The peer's side: sends the first messages of the input (a handshake reads three at most; many more would fill
// the socket, which nobody reads yet), then closes.
void play_peer(duct::connection& peer, std::span<const std::uint8_t> script) {
  try {
    for (int sent = 0; !script.empty() && sent < 8; ++sent) {
      const std::size_t n = std::min<std::size_t>(script[0], script.size() - 1);
      peer.send_bytes(std::span(reinterpret_cast<const std::byte*>(script.data() + 1), n));
      script = script.subspan(n + 1);
    }
  } catch (const duct::error&) {
  }
  peer.close();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string key = "sesame";
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  try {
    (void)duct::auth::make_response(key, bytes);
  } catch (const duct::error&) {
  }
  const std::size_t half = bytes.size() / 2;
  (void)duct::auth::verify_response(key, bytes.first(half), bytes.subspan(half));

  // Eight short messages fit in the socket's buffer: the peer writes them all before the handshake reads.
  auto [ours, peer] = duct::pair(true, {.framing = duct::framing::multiprocessing});
  play_peer(peer, std::span(data + 1, size - 1));
  try {
    if (data[0] & 1) duct::auth::deliver_challenge(ours, key, std::chrono::milliseconds(200));
    else duct::auth::answer_challenge(ours, key, std::chrono::milliseconds(200));
  } catch (const duct::error&) {
  }
  return 0;
}
