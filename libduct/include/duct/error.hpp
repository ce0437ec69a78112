// Errors raised by ducts.
//
// Absence that is normal is a return value (`try_recv()` gives an empty optional at a clean end of stream,
// `poll()` gives false); everything else is an exception derived from `duct::error`. Every message names what
// failed: the duct's address or fd, the operation, and the operating system's reason where there is one.
//
//   duct::error                 base; `code()` holds the errno-based error code when the OS reported one
//   ├─ duct::closed_error       end of stream or a duct closed locally (multiprocessing's EOFError)
//   ├─ duct::protocol_error     bad magic byte, length over the limit, malformed frame or payload
//   ├─ duct::timeout_error      a blocking call ran out of time
//   ├─ duct::address_error      an address that cannot be parsed, bound or resolved
//   ├─ duct::auth_error         the authkey handshake failed
//   └─ duct::usage_error        the duct cannot do that (a one-way end used in the wrong direction)
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>

namespace duct {

/// Base of every error libduct throws.
class error : public std::runtime_error {
 public:
  explicit error(const std::string& what, std::error_code code = {}) : std::runtime_error(what), code_(code) {}
  /// The operating system's error behind this one, or an empty code.
  [[nodiscard]] std::error_code code() const noexcept { return code_; }

 private:
  std::error_code code_;
};

/// End of stream, or an operation on a duct that is already closed.
/// `mid_message()` tells a peer that went away in the middle of a frame from one that closed between messages.
class closed_error : public error {
 public:
  closed_error(const std::string& what, bool mid_message, std::error_code code = {})
      : error(what, code), mid_message_(mid_message) {}
  [[nodiscard]] bool mid_message() const noexcept { return mid_message_; }

 private:
  bool mid_message_;
};

/// The bytes on the wire do not form a valid frame or payload. A framing error closes the duct, since the stream
/// cannot be resynchronised; a payload the codec cannot decode leaves the duct usable.
class protocol_error : public error {
 public:
  using error::error;
};

/// A blocking call did not finish in time. If the time ran out in the middle of a frame the duct is closed,
/// because the stream would be out of step; `duct_closed()` says whether that happened.
class timeout_error : public error {
 public:
  explicit timeout_error(const std::string& what, bool duct_closed = false) : error(what), duct_closed_(duct_closed) {}
  [[nodiscard]] bool duct_closed() const noexcept { return duct_closed_; }

 private:
  bool duct_closed_;
};

/// An address that cannot be parsed, resolved, bound or connected to.
class address_error : public error {
 public:
  using error::error;
};

/// The multiprocessing authkey handshake failed (wrong key, or a peer that does not speak it).
class auth_error : public error {
 public:
  using error::error;
};

/// An operation the duct cannot do: sending on a receive-only end, receiving on a send-only end.
class usage_error : public error {
 public:
  using error::error;
};

}  // namespace duct
