// duct::connection: one end of a duct — a message channel over a stream socket.
//
// What multiprocessing.Connection and ductworks' MessageDuctParent/Child offer, in C++:
//
//   auto [parent, child] = duct::pair();
//   parent.send(std::vector<int>{1, 2, 3});          // any msgpack-able value, through the duct's codec
//   auto v = child.recv().as<std::vector<int>>();
//   child.send_bytes("raw bytes");                   // bytes, framed, no codec
//   duct::buffer b = parent.recv_bytes();
//
// Every blocking call takes a timeout (`duct::forever` by default). One thread may block in recv while another
// sends: each direction has its own lock. A duct is move-only; moving it is cheap.
//
// Failure: a peer that goes away gives closed_error (EOF), a malformed stream gives protocol_error and closes the
// duct (it cannot be resynchronised), a timeout in the middle of a frame closes the duct too, so a duct is never
// left out of step. SIGPIPE is never raised.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <duct/buffer.hpp>
#include <duct/codec.hpp>
#include <duct/error.hpp>
#include <duct/frame.hpp>
#include <duct/msgpack.hpp>

namespace duct {

/// Time limit of a blocking call. Negative means no limit.
using timeout = std::chrono::milliseconds;
/// No time limit.
inline constexpr timeout forever{-1};

/// How a duct encodes what it carries, and what it accepts.
struct options {
  duct::framing framing = framing::ductworks;
  duct::codec codec = codec::msgpack;
  /// Largest payload this end accepts. A header announcing more is rejected before any allocation, and the duct is
  /// closed (the stream cannot be resynchronised).
  std::size_t max_message_size = std::size_t{64} << 20;
  /// For listener and connect only: run multiprocessing's mutual HMAC authkey handshake with this key.
  std::optional<std::string> authkey;
  /// For listener and connect only: how long the authkey handshake may take once the socket is connected.
  timeout handshake_timeout = std::chrono::seconds(10);
  /// How long the rest of a message may take once its first byte has come (the wait for a message to begin is
  /// the caller's timeout). A peer stalled mid-message past it gets a timeout_error and the duct is closed, as for
  /// any timeout mid-message. forever (the default): no limit of its own.
  timeout frame_timeout = forever;
  /// Decoding limits for received msgpack values.
  decode_limits limits;
};

/// Which ways a duct carries messages.
enum class direction : std::uint8_t { duplex, receive_only, send_only };

class corked_writer;

class connection {
 public:
  /// A closed duct.
  connection() noexcept;
  /// Takes ownership of `fd`, a connected stream socket. `name` names the duct in error messages ("fd N" if empty).
  /// Throws: usage_error if fd is negative.
  static connection adopt(int fd, const options& opts = {}, std::string name = {},
                          direction dir = direction::duplex);

  connection(connection&&) noexcept;
  connection& operator=(connection&&) noexcept;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  /// Closes the duct.
  ~connection();

  // ---- values, through the codec -------------------------------------------------------------------------------

  /// Sends `value` (anything msgpack-cxx can pack) encoded by the duct's codec.
  /// Throws: codec_error if the codec cannot carry it; see send_bytes for the rest.
  template <class T>
  void send(const T& value, timeout t = forever);

  /// Receives the next message and decodes it with the duct's codec.
  /// Throws: closed_error at end of stream; codec_error if the payload does not decode (the duct stays usable);
  /// see recv_bytes for the rest.
  value recv(timeout t = forever);

  /// As recv(), but returns an empty optional when the peer closed the duct cleanly between messages.
  std::optional<value> try_recv(timeout t = forever);

  // ---- bytes, framed --------------------------------------------------------------------------------------------

  /// Sends `bytes` as one message.
  /// Throws: usage_error on a receive-only end; closed_error if the duct or the peer is closed; timeout_error (the
  /// duct is closed if part of the frame was written); protocol_error if the framing cannot express the size.
  void send_bytes(std::span<const std::byte> bytes, timeout t = forever);
  void send_bytes(std::string_view text, timeout t = forever);

  /// Receives the next message as bytes.
  /// Throws: usage_error on a send-only end; closed_error at end of stream (mid_message() says whether the peer
  /// stopped inside a frame); protocol_error for a bad frame or a payload above max_message_size (the duct is
  /// closed); timeout_error.
  buffer recv_bytes(timeout t = forever);
  /// As recv_bytes(t), refusing (and closing the duct, as multiprocessing does) a message longer than `max_length`.
  buffer recv_bytes(std::size_t max_length, timeout t = forever);

  /// As recv_bytes(), but returns an empty optional when the peer closed the duct cleanly between messages.
  std::optional<buffer> try_recv_bytes(timeout t = forever);

  /// Receives the next message into `out`.
  /// Returns: the message's size.
  /// Throws: buffer_too_short (holding the whole message) if it does not fit; otherwise as recv_bytes().
  std::size_t recv_bytes_into(std::span<std::byte> out, timeout t = forever);

  // ---- state ----------------------------------------------------------------------------------------------------

  /// Waits until a message (or end of stream) can be read without blocking.
  /// Returns: true if recv would not block, false when the time ran out.
  bool poll(timeout t = timeout{0});

  /// The socket's file descriptor, for poll/epoll; -1 once closed.
  [[nodiscard]] int fileno() const noexcept;
  /// The name used in error messages: the address ("tcp://127.0.0.1:4000", "unix:/path") or "fd N".
  [[nodiscard]] const std::string& name() const noexcept;
  [[nodiscard]] const options& opts() const noexcept;
  [[nodiscard]] bool closed() const noexcept;
  [[nodiscard]] bool readable() const noexcept;
  [[nodiscard]] bool writable() const noexcept;

  /// Shuts down the sending side: the peer's next recv sees end of stream, while this end can still receive.
  /// Throws: usage_error on a receive-only end; closed_error if the duct is closed.
  void shutdown_write();

  /// Closes the duct. Idempotent, never throws. A thread blocked in recv or send on this duct is woken with
  /// closed_error. After fork(), closing one process's copy does not disturb the other's.
  void close() noexcept;

  /// Implementation state (opaque).
  struct state;

 private:
  friend class corked_writer;
  explicit connection(std::unique_ptr<state> s) noexcept;
  void send_packed(std::span<const std::byte> packed, timeout t);
  std::unique_ptr<state> state_;
};

/// The message received by recv_bytes_into did not fit the buffer; it is kept here.
class buffer_too_short : public error {
 public:
  buffer_too_short(const std::string& what, buffer message) : error(what), message_(std::move(message)) {}
  [[nodiscard]] const buffer& message() const noexcept { return message_; }

 private:
  buffer message_;
};

/// Waits until at least one of `ducts` can be read without blocking (multiprocessing.connection.wait).
/// Returns: the ready ones, in the order given; empty when the time ran out. Closed ducts are skipped.
std::vector<connection*> wait(std::span<connection* const> ducts, timeout t = forever);
inline std::vector<connection*> wait(std::initializer_list<connection*> ducts, timeout t = forever) {
  return wait(std::span<connection* const>(ducts.begin(), ducts.size()), t);
}

/// A pair of connected ducts over a socketpair (close-on-exec), as multiprocessing.Pipe() gives.
/// With `duplex` false the first end only receives and the second only sends.
/// Throws: error if the socketpair cannot be made.
std::pair<connection, connection> pair(bool duplex = true, const options& opts = {});

namespace detail {
/// A per-thread scratch buffer for packing values before they are framed.
pack_buffer& scratch();
}  // namespace detail

template <class T>
void connection::send(const T& value, timeout t) {
  pack_buffer& sb = detail::scratch();
  sb.clear();
  msgpack::pack(sb, value);
  send_packed(std::as_bytes(std::span(sb.data(), sb.size())), t);
}

}  // namespace duct
