// Codecs: how a value becomes a payload and back. Sans-I/O.
//
// Every value is a msgpack value (msgpack-cxx's object model, so MSGPACK_DEFINE'd user types work everywhere). The
// codec decides what goes on the wire:
//   msgpack  the msgpack bytes themselves (the default)
//   json     UTF-8 JSON text exactly as Python's json.dumps writes it (", " and ": " separators, ASCII with \uXXXX
//            escapes), which is what ductworks sends and expects; bytes (msgpack bin) cannot be carried
//   raw      the bytes of a string or bin value, with no encoding at all; received as bin
//
// Decoding never trusts a size: a msgpack payload is checked as it is read, in one pass, and no container claiming
// more elements than there are bytes left, no body longer than what remains and no nesting past the limit gets any
// memory: a hostile payload costs memory in proportion to its own size at most.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include <duct/buffer.hpp>
#include <duct/error.hpp>
#include <msgpack.hpp>

namespace duct {

enum class codec : std::uint8_t { msgpack, json, raw };

/// "msgpack", "json" or "raw".
std::string_view to_string(codec c) noexcept;

/// A payload the codec could not decode, or a value it cannot encode. A decoding failure leaves the duct usable
/// (the frame was whole); the undecodable payload is kept in `payload()` so nothing is lost.
class codec_error : public protocol_error {
 public:
  codec_error(const std::string& what, buffer payload = {}) : protocol_error(what), payload_(std::move(payload)) {}
  [[nodiscard]] const buffer& payload() const noexcept { return payload_; }

 private:
  buffer payload_;
};

/// A value asked for as a C++ type it does not hold.
class type_error : public error {
 public:
  using error::error;
};

/// A received value: a msgpack object together with the memory it lives in.
class value {
 public:
  value() = default;
  explicit value(msgpack::object_handle handle) : handle_(std::move(handle)) {}

  /// The msgpack object (valid as long as this value lives).
  [[nodiscard]] const msgpack::object& get() const noexcept { return handle_.get(); }
  /// The value of `part`, an object inside this value, which takes over this value's memory without copying it.
  /// This value is left empty.
  [[nodiscard]] value take_part(const msgpack::object& part) && {
    return value(msgpack::object_handle(part, std::move(handle_.zone())));
  }

  /// Converts to T with msgpack-cxx's conversions (MSGPACK_DEFINE for user types).
  /// Throws: type_error naming the type the value holds.
  template <class T>
  [[nodiscard]] T as() const {
    try {
      return handle_.get().as<T>();
    } catch (const msgpack::type_error&) {
      throw type_error("value of msgpack type " + type_name(handle_.get()) + " cannot be converted to the type asked for");
    }
  }

  /// The value as JSON text, written the way Python's json.dumps would (bin shown as {"$bin": "hex"}).
  [[nodiscard]] std::string to_json() const;

  /// "nil", "bool", "int", "float", "str", "bin", "array", "map" or "ext".
  static std::string type_name(const msgpack::object& o);

 private:
  msgpack::object_handle handle_;
};

/// Limits applied while decoding a msgpack payload.
struct decode_limits {
  std::size_t max_depth = 256;  ///< nesting of arrays and maps
};

/// Checks that `bytes` is exactly one well-formed msgpack value within `limits`, where no container claims more
/// elements than bytes remain. Cheap: one pass, no allocation.
/// Throws: codec_error describing the first problem (without the payload; the caller attaches it).
void check_msgpack(std::span<const std::byte> bytes, const decode_limits& limits = {});

/// Turns a payload into a value.
/// Throws: codec_error (carrying a copy of the payload) if the payload is not valid for the codec.
value decode(codec c, std::span<const std::byte> payload, const decode_limits& limits = {});

/// Turns a value already packed as msgpack into the payload for codec `c`. For the msgpack codec that is `packed`
/// itself, copied.
/// Throws: codec_error if the codec cannot carry the value (bin or ext in JSON, a non-string under raw).
buffer encode(codec c, std::span<const std::byte> packed);

/// Whether `text` is well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view text) noexcept;

/// Writes `o` as JSON, byte for byte as Python's json.dumps(ensure_ascii=True) does.
/// With `bin_as_object`, bin becomes {"$bin": "hex"}; otherwise bin, ext and non-scalar map keys throw codec_error.
void write_json(const msgpack::object& o, std::string& out, bool bin_as_object = false);

}  // namespace duct
