// zerorpc events, sans-I/O: bytes in, events out, and back.
//
// On the wire an event is one msgpack array [header, name, args] (docs/zerorpc.md has the whole protocol):
//   header  {"message_id": ID, "v": 3}, plus "response_to": CHANNEL_ID on every event after a channel's first
//   name    the method name, or OK, ERR, STREAM, STREAM_DONE, _zpc_hb, _zpc_more
//   args    usually an array: the call's arguments, [result] for OK, [name, message, traceback] for ERR; for STREAM
//           the item itself
//
// IDs are opaque, but their msgpack type matters: Python sends bin, node sends str, and each matches replies by the
// decoded value, so an ID must go back out with the type it came in. message_id keeps it.
//
//   rpc::event e = rpc::decode_event(body);            // throws rpc::protocol_error for anything malformed
//   duct::buffer reply = rpc::encode_event({ids.next(), e.header.message_id}, "OK", std::make_tuple(5));
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <duct/buffer.hpp>
#include <duct/codec.hpp>
#include <duct/msgpack.hpp>
#include <rpc/error.hpp>

namespace rpc {

/// The protocol version we speak and write in every header.
inline constexpr int protocol_version = 3;

/// A message id: its bytes and whether it travels as msgpack bin (Python) or str (node).
class message_id {
 public:
  message_id() = default;
  message_id(std::string_view bytes, bool binary) : size_(static_cast<std::uint32_t>(bytes.size())), binary_(binary) {
    if (bytes.size() <= inline_capacity) std::memcpy(inline_.data(), bytes.data(), bytes.size());
    else long_.assign(bytes);
  }

  /// Reads an id from a msgpack object. Throws: protocol_error unless it is a str or bin.
  static message_id from_object(const msgpack::object& o);

  /// The id's bytes (valid as long as this id lives, unchanged).
  [[nodiscard]] std::string_view bytes() const noexcept {
    return size_ <= inline_capacity ? std::string_view(inline_.data(), size_) : std::string_view(long_);
  }
  [[nodiscard]] bool binary() const noexcept { return binary_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }

  /// Python compares decoded values, so bin "abc" and str "abc" are different ids.
  friend bool operator==(const message_id& a, const message_id& b) noexcept {
    return a.binary_ == b.binary_ && a.bytes() == b.bytes();
  }

  template <class Packer>
  void msgpack_pack(Packer& p) const {
    const std::string_view b = bytes();
    const auto size = static_cast<std::uint32_t>(b.size());
    if (binary_) {
      p.pack_bin(size);
      p.pack_bin_body(b.data(), size);
    } else {
      p.pack_str(size);
      p.pack_str_body(b.data(), size);
    }
  }

 private:
  // Every id is copied into a few tables per call: the usual ones (zerorpc-python's 32 hex digits, zerorpc-node's
  // 36-character uuids) are kept inline, where std::string would allocate for anything over 15 bytes.
  static constexpr std::size_t inline_capacity = 40;
  std::array<char, inline_capacity> inline_{};  // the bytes, if they fit (only the first size_ are meaningful)
  std::string long_;                          // the bytes, if they do not
  std::uint32_t size_ = 0;
  bool binary_ = true;
};

namespace detail {
/// A hash of a few dozen bytes (ids, identities), eight at a time, seeded at random per process: unlike std::hash,
/// which is not seeded, a peer cannot pick message ids that all fall into one bucket of the server's tables.
std::size_t hash_bytes(std::string_view bytes) noexcept;
}  // namespace detail

// Deliberately not noexcept: libstdc++'s unordered containers then keep each node's hash code, so that inserting
// and erasing do not hash a neighbouring node's id again, and a lookup compares codes before bytes.
struct message_id_hash {
  std::size_t operator()(const message_id& id) const {
    return detail::hash_bytes(id.bytes()) ^ static_cast<std::size_t>(id.binary());
  }
};

/// Makes ids the way zerorpc-python does: 8 hex digits of a counter that starts at a random value, then 24 random
/// hex digits fixed per generator; 32 ASCII bytes sent as bin. Not thread-safe: one per thread or under a lock.
class id_generator {
 public:
  id_generator();
  message_id next();

 private:
  std::uint32_t counter_;
  std::array<char, 32> text_;  // the last id: 8 hex digits of the counter, then the fixed random part
};

/// The header key with which our client announces that it understands deferred replies (a DEFERRED event carrying
/// a token). A plain zerorpc peer never sends it, so it is never sent a DEFERRED.
inline constexpr std::string_view deferred_header_key = "ductrpc_deferred";

/// The header key with which our server tells our client, on a streamed reply, that it may stop the stream early with
/// a `_ductrpc_stop` event on the channel (a plain zerorpc server only notices a client that goes silent).
inline constexpr std::string_view stop_header_key = "ductrpc_stop";

/// The header key with which our client asks for progress reports (PROGRESS events, each carrying one value) before
/// the result of a call. A peer that does not send it is never sent a PROGRESS.
inline constexpr std::string_view progress_header_key = "ductrpc_progress";

/// The header key of a one-way request (junction's publish): the server runs the method and answers nothing. A
/// plain zerorpc server ignores the key and answers anyway; our client drops answers to channels it never opened.
inline constexpr std::string_view oneway_header_key = "ductrpc_oneway";

/// The header key with which our client, asking for a stream, announces that it takes STREAM_BATCH events: several
/// items in one event ([item, ...] as its args), each counting as one event against the credit. A plain zerorpc
/// client never sends it, so it only ever gets STREAM events.
inline constexpr std::string_view batch_header_key = "ductrpc_batch";

struct event_header {
  message_id id;                           ///< this event's own id ("message_id")
  std::optional<message_id> response_to;   ///< the channel it belongs to, on every event after the first
  int version = protocol_version;          ///< "v"
  bool accepts_deferred = false;           ///< deferred_header_key: true
  bool accepts_stop = false;               ///< stop_header_key: true
  bool wants_progress = false;             ///< progress_header_key: true
  bool oneway = false;                     ///< oneway_header_key: true
  bool accepts_batches = false;            ///< batch_header_key: true
};

namespace detail {
struct access;  // how the library decodes into an event in place (librpc/src/access.hpp)
}  // namespace detail

/// A decoded event. It owns the memory `args()` points into.
class event {
 public:
  event_header header;
  std::string name;

  /// The args object: an array for calls, OK and ERR; the bare item for STREAM; nil or [] for STREAM_DONE.
  [[nodiscard]] const msgpack::object& args() const noexcept { return args_.get(); }
  /// The args as a value of their own, taking over the event's memory without a copy (args() is nil after).
  [[nodiscard]] duct::value take_args() && { return std::move(args_); }
  /// The channel this event belongs to: response_to if set, otherwise its own id (it opens a channel).
  [[nodiscard]] const message_id& channel() const noexcept {
    return header.response_to ? *header.response_to : header.id;
  }

  /// The size of the event's body on the wire, in bytes (0 for an event that was not decoded).
  std::size_t wire_size = 0;

 private:
  friend struct detail::access;
  duct::value args_;  // nil until decoded
};

/// Decodes one event body.
/// Throws: protocol_error naming the problem: not msgpack, not [header, name, args], a name that is not a string or
/// not valid UTF-8 (Python drops such events), a missing or mistyped message_id or response_to. A header that is
/// not a map is taken as empty, as zerorpc does, and so fails for lack of a message_id.
event decode_event(std::span<const std::byte> body, const duct::decode_limits& limits = {});

namespace detail {
/// Packs the array head, the header and the name of an event.
void pack_event_head(duct::pack_buffer& out, const event_header& h, std::string_view name);
}  // namespace detail

/// Encodes an event with any msgpack-able args, header keys in zerorpc-python's order (message_id, v,
/// response_to), floats kept as floats.
template <class Args>
duct::buffer encode_event(const event_header& h, std::string_view name, const Args& args) {
  duct::pack_buffer out;
  detail::pack_event_head(out, h, name);
  msgpack::packer<duct::pack_buffer> p(out);
  p.pack(args);
  return out.take();
}

/// As encode_event, with args that are already packed msgpack (one value).
duct::buffer encode_event_packed(const event_header& h, std::string_view name, std::span<const std::byte> packed_args);

}  // namespace rpc
