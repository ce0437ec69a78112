// duct::corked_writer: frames batched in memory, written whole. See corked_writer.hpp.
#include <duct/corked_writer.hpp>

#include <sys/uio.h>

#include <cstring>

#include "connection_state.hpp"

namespace duct {

corked_writer::corked_writer(connection& duct, std::size_t capacity)
    : duct_(duct), batch_(capacity < 64 ? 64 : capacity) {}

corked_writer::~corked_writer() {
  try {
    flush();
  } catch (...) {  // NOLINT(bugprone-empty-catch): documented, flush() reports errors
  }
}

void corked_writer::send_bytes(std::span<const std::byte> bytes) {
  const framing f = duct_.opts().framing;
  std::array<std::byte, max_header_size> header;
  std::size_t header_size = encode_header(f, bytes.size(), std::span<std::byte, max_header_size>(header));
  std::size_t frame_size = header_size + bytes.size();
  if (frame_size > batch_.size() - used_) {
    flush();
    if (frame_size > batch_.size()) {
      duct_.send_bytes(bytes);
      return;
    }
  }
  std::memcpy(batch_.data() + used_, header.data(), header_size);
  if (!bytes.empty()) std::memcpy(batch_.data() + used_ + header_size, bytes.data(), bytes.size());
  used_ += frame_size;
}

void corked_writer::send_bytes(std::string_view text) {
  send_bytes(std::as_bytes(std::span(text.data(), text.size())));
}

void corked_writer::send_packed(std::span<const std::byte> packed) {
  if (duct_.opts().codec == codec::msgpack) {
    send_bytes(packed);
  } else {
    buffer payload = encode(duct_.opts().codec, packed);
    send_bytes(payload.span());
  }
}

void corked_writer::flush(timeout t) {
  if (used_ == 0) return;
  if (!duct_.state_) throw closed_error("duct is closed (default-constructed or moved from)", false);
  connection::state& s = *duct_.state_;
  io::deadline d(t);
  iovec iov{batch_.data(), used_};
  std::lock_guard lock(s.send_mu);
  s.check_can_send();
  used_ = 0;  // whatever happens next, these frames are not sent twice
  s.write_all(&iov, 1, d);
}

}  // namespace duct
