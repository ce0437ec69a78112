// Frame headers for both framings. See frame.hpp.
#include <duct/frame.hpp>

#include <cstdio>
#include <string>

#include <duct/error.hpp>

namespace duct {
namespace {

void put_be32(std::byte* p, std::uint32_t v) {
  for (int i = 3; i >= 0; --i, v >>= 8) p[i] = std::byte(v & 0xff);
}
void put_be64(std::byte* p, std::uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = std::byte(v & 0xff);
}
std::uint64_t get_be(const std::byte* p, int n) {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | std::to_integer<std::uint64_t>(p[i]);
  return v;
}

[[noreturn]] void too_large(std::uint64_t size, std::uint64_t limit, std::string_view where) {
  throw protocol_error(std::string(where) + ": incoming message of " + std::to_string(size) +
                       " bytes exceeds the limit of " + std::to_string(limit) + " bytes");
}

}  // namespace

std::string_view to_string(framing f) noexcept {
  return f == framing::ductworks ? "ductworks" : "multiprocessing";
}

std::size_t encode_header(framing f, std::uint64_t payload_size, std::span<std::byte, max_header_size> out) {
  if (f == framing::ductworks) {
    if (payload_size > 0xffffffffu)
      throw protocol_error("ductworks framing cannot carry a message of " + std::to_string(payload_size) + " bytes");
    out[0] = ductworks_magic;
    put_be32(&out[1], static_cast<std::uint32_t>(payload_size));
    return 5;
  }
  if (payload_size > 0x7fffffffu) {
    put_be32(&out[0], 0xffffffffu);
    put_be64(&out[4], payload_size);
    return 12;
  }
  put_be32(&out[0], static_cast<std::uint32_t>(payload_size));
  return 4;
}

std::optional<frame_header> parse_header(framing f, std::span<const std::byte> bytes, std::uint64_t limit,
                                         std::string_view where) {
  if (f == framing::ductworks) {
    if (bytes.empty()) return std::nullopt;
    if (bytes[0] != ductworks_magic) {
      char seen[8];
      std::snprintf(seen, sizeof seen, "0x%02x", std::to_integer<unsigned>(bytes[0]));
      throw protocol_error(std::string(where) + ": bad magic byte " + seen +
                           " (expected 0x54); is the peer using the multiprocessing framing?");
    }
    if (bytes.size() < 5) return std::nullopt;
    std::uint64_t size = get_be(&bytes[1], 4);
    if (size > limit) too_large(size, limit, where);
    return frame_header{5, size};
  }
  if (bytes.size() < 4) return std::nullopt;
  std::uint64_t raw = get_be(&bytes[0], 4);
  if (raw == 0xffffffffu) {
    if (bytes.size() < 12) return std::nullopt;
    std::uint64_t size = get_be(&bytes[4], 8);
    if (size > limit) too_large(size, limit, where);
    return frame_header{12, size};
  }
  if (raw > 0x7fffffffu)
    throw protocol_error(std::string(where) + ": negative message length in multiprocessing header");
  if (raw > limit) too_large(raw, limit, where);
  return frame_header{4, raw};
}

}  // namespace duct
