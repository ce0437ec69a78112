// duct::corked_writer: batches many small messages into few system calls.
//
//   duct::corked_writer w(duct);            // holds up to 256 KiB of frames before writing them
//   for (auto& m : messages) w.send_bytes(m);
//   w.flush();                              // now everything is on the wire
//
// Frames are written whole, so other threads may keep sending on the same duct: their messages land between
// batches, never inside a frame. A message larger than the batch space is written straight through.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

#include <duct/connection.hpp>

namespace duct {

class corked_writer {
 public:
  /// Batches frames for `duct`, which must outlive the writer. `capacity` is the batch size in bytes.
  explicit corked_writer(connection& duct, std::size_t capacity = std::size_t{256} << 10);
  corked_writer(const corked_writer&) = delete;
  corked_writer& operator=(const corked_writer&) = delete;
  /// Flushes what is left; errors are swallowed here, so call flush() to see them.
  ~corked_writer();

  /// Queues one message; writes the batch first if it is full.
  /// Throws: as connection::send_bytes (only when a batch is written).
  void send_bytes(std::span<const std::byte> bytes);
  void send_bytes(std::string_view text);

  /// Queues one value through the duct's codec.
  template <class T>
  void send(const T& value) {
    pack_buffer& sb = detail::scratch();
    sb.clear();
    msgpack::pack(sb, value);
    send_packed(std::as_bytes(std::span(sb.data(), sb.size())));
  }

  /// Writes every queued frame.
  /// Throws: as connection::send_bytes.
  void flush(timeout t = forever);

  /// Bytes queued and not yet written.
  [[nodiscard]] std::size_t pending() const noexcept { return used_; }

 private:
  void send_packed(std::span<const std::byte> packed);
  connection& duct_;
  std::vector<std::byte> batch_;
  std::size_t used_ = 0;
};

}  // namespace duct
