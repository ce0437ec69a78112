// Internal: the state behind a duct::connection, shared with corked_writer and wait().
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include <duct/connection.hpp>

#include "io.hpp"

namespace duct {

/// Where a received payload goes. The reader offers the payload whole when it is already buffered (no copy), or
/// asks for `n` bytes of room and fills them.
class payload_sink {
 public:
  virtual void whole(std::span<const std::byte> payload) = 0;
  virtual std::span<std::byte> room(std::size_t n) = 0;
  virtual void filled() = 0;

 protected:
  ~payload_sink() = default;
};

struct connection::state {
  state(int fd_, const options& o, std::string n, direction d);

  std::atomic<int> fd;
  options opts;
  std::string name;
  direction dir;
  std::atomic<bool> closed{false};
  std::atomic<bool> close_started{false};

  std::mutex send_mu;
  std::mutex recv_mu;

  // Receive buffer, guarded by recv_mu: bytes [rpos, rend) have arrived and are not consumed.
  static constexpr std::size_t rbuf_size = std::size_t{128} << 10;
  std::unique_ptr<std::byte[]> rbuf;
  std::size_t rpos = 0;
  std::size_t rend = 0;
  bool eof = false;  // the peer's end of stream has been read

  // ---- send side (call with send_mu held) -----------------------------------------------------------------------
  void check_can_send() const;
  /// Writes `iov` entirely; a time-out after part of it was written closes the duct.
  void write_all(struct iovec* iov, int iovcnt, const io::deadline& d);

  // ---- receive side (call with recv_mu held) --------------------------------------------------------------------
  void check_can_recv() const;
  /// Reads one frame into `sink`. Returns: false at a clean end of stream. Throws: as connection::recv_bytes.
  bool read_frame(payload_sink& sink, std::uint64_t limit, const io::deadline& d);
  /// Whether a whole frame (or end of stream, or an error recv would report at once) is ready without blocking.
  bool frame_ready();
  /// Reads what the socket has into the buffer. Returns: false if the time ran out first.
  bool fill(const io::deadline& d);

  /// Marks the duct broken: refuses further use and shuts the socket down so the peer notices too.
  void fail() noexcept;
  /// Throws closed_error for the peer's end of stream.
  [[noreturn]] void throw_closed(bool mid_frame) const;
};

}  // namespace duct
