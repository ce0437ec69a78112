// Framing: how messages are cut out of a byte stream. Sans-I/O: these functions only look at bytes.
//
// Two framings, both as the Python peers write them (docs/duct.md has them, and the authkey handshake):
//   ductworks        0x54 ('T') | length: uint32 big-endian | payload
//   multiprocessing  length: int32 big-endian | payload; above 0x7fffffff: ffffffff | uint64 big-endian | payload
//
// A decoder never trusts a length: `parse_header` rejects one above the caller's limit before anyone allocates.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace duct {

enum class framing : std::uint8_t {
  ductworks,        ///< Python ductworks (the default)
  multiprocessing,  ///< Python multiprocessing.connection
};

/// "ductworks" or "multiprocessing".
std::string_view to_string(framing f) noexcept;

/// The longest header either framing writes.
inline constexpr std::size_t max_header_size = 12;

/// The magic byte that starts every ductworks frame.
inline constexpr std::byte ductworks_magic{0x54};

/// A header as it appeared on the wire.
struct frame_header {
  std::size_t header_size;     ///< bytes the header took
  std::uint64_t payload_size;  ///< bytes of payload that follow
};

/// Writes the header for a payload of `payload_size` bytes into `out`.
/// Returns: the number of header bytes written.
/// Throws: protocol_error if the framing cannot express that size (ductworks stops at 4 GiB - 1).
std::size_t encode_header(framing f, std::uint64_t payload_size, std::span<std::byte, max_header_size> out);

/// Reads a header from the start of `bytes`.
/// Returns: the header, or an empty optional if `bytes` holds only part of one.
/// Throws: protocol_error for a bad magic byte, a negative multiprocessing length, or a payload size above
/// `limit`; the message names `where` (an address or fd).
std::optional<frame_header> parse_header(framing f, std::span<const std::byte> bytes, std::uint64_t limit,
                                         std::string_view where);

}  // namespace duct
