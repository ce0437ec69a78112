// Packing msgpack the way Python and node peers read it.
//
// msgpack-cxx 4 packs a double with an integral value (2.0, -0.0, 1e16) as an integer, so a Python peer gets an
// int where we sent a float. Everything libduct packs goes into a duct::pack_buffer, whose packer writes float64
// and float32 values as floats, always. Use it for your own packing too when the bytes go to such a peer:
//
//   duct::pack_buffer out;
//   msgpack::pack(out, 2.0);   // cb 40 00 00 00 00 00 00 00, not 02
#pragma once

#include <cstdint>
#include <cstring>

#include <msgpack.hpp>

#include <duct/buffer.hpp>

namespace duct {

/// A growable byte buffer for packing; see above for why it is its own type.
class pack_buffer : public msgpack::sbuffer {
 public:
  /// Starts with `initial_size` bytes and doubles as it needs. msgpack-c's own default (8 KiB) is a malloc that
  /// misses glibc's per-thread cache, which made packing a call's small arguments or result cost more than
  /// packing itself; most messages fit the 256 bytes given here.
  explicit pack_buffer(std::size_t initial_size = 256) : msgpack::sbuffer(initial_size) {}

  /// Returns: the packed bytes as a duct::buffer, without copying them (it owns this buffer's storage, which may be
  /// larger than the bytes); this pack_buffer is left empty.
  buffer take() noexcept {
    const std::size_t n = size();
    return buffer::adopt(reinterpret_cast<std::byte*>(release()), n);
  }
};

}  // namespace duct

namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(v1) {

template <>
inline packer<duct::pack_buffer>& packer<duct::pack_buffer>::pack_double(double d) {
  std::uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  char buf[9];
  buf[0] = static_cast<char>(0xcbu);
  _msgpack_store64(&buf[1], bits);
  append_buffer(buf, 9);
  return *this;
}

template <>
inline packer<duct::pack_buffer>& packer<duct::pack_buffer>::pack_float(float d) {
  std::uint32_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  char buf[5];
  buf[0] = static_cast<char>(0xcau);
  _msgpack_store32(&buf[1], bits);
  append_buffer(buf, 5);
  return *this;
}

}  // MSGPACK_API_VERSION_NAMESPACE(v1)
}  // namespace msgpack
