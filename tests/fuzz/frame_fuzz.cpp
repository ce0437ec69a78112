// Fuzz target: both duct framings, as a receiver meets them. The first byte picks the framing; the rest is what a
// peer wrote on the socket. It is read twice: by the sans-I/O header parser walking frame after frame, and by a
// real duct over a socketpair, whose recv_bytes must end in a message, a clean close or a clear error, never a
// crash, a hang or an allocation past its limit.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include <duct/connection.hpp>
#include <duct/frame.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const duct::framing f = data[0] & 1 ? duct::framing::multiprocessing : duct::framing::ductworks;
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  constexpr std::uint64_t limit = 1 << 16;

  std::span<const std::byte> rest = bytes;
  try {
    while (auto h = duct::parse_header(f, rest, limit, "fuzz")) {
      if (h->header_size + h->payload_size > rest.size()) break;
      rest = rest.subspan(h->header_size + h->payload_size);
    }
  } catch (const duct::protocol_error&) {
    // refused: what a receiver must do with a bad header
  }

  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 0;
  if (::write(fds[1], bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
    ::close(fds[0]);
    ::close(fds[1]);
    return 0;
  }
  ::close(fds[1]);  // the peer is gone after what it wrote: every read ends
  duct::connection c = duct::connection::adopt(fds[0], {.framing = f, .max_message_size = limit});
  try {
    for (;;) (void)c.recv_bytes(std::chrono::milliseconds(100));
  } catch (const duct::error&) {
    // closed, a protocol error or a time-out: each a clear error
  }
  return 0;
}
