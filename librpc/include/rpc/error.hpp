// Errors raised by librpc. Each message names what failed: the endpoint, the method, the channel.
//
//   rpc::error
//   ├─ rpc::protocol_error        bytes from a peer that are not a zerorpc event
//   ├─ rpc::remote_error          the remote method failed: name(), message(), traceback() as zerorpc's ERR carries
//   │  ├─ rpc::unknown_method_error   the server has no such method (zerorpc's NameError)
//   │  ├─ rpc::cancelled_error        the call was cancelled (ERR "Cancelled")
//   │  ├─ rpc::shutting_down_error    the server is shutting down and takes no new calls (ERR "ShuttingDown")
//   │  ├─ rpc::still_running_error    a wait for a deferred call ran out before the call finished (ERR "StillRunning")
//   │  └─ rpc::unknown_token_error    no deferred call has that token, or its outcome expired (ERR "UnknownToken")
//   ├─ rpc::timeout_error         the call's own time limit ran out
//   ├─ rpc::lost_remote_error     the server stopped heartbeating (it died, hangs, or the network is gone)
//   └─ rpc::closed_error          the client or server was stopped with the call still open
#pragma once

#include <stdexcept>
#include <string>

namespace rpc {

/// Base of every error librpc throws.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Bytes from a peer that do not form a zerorpc event. The event is dropped; the connection stays usable.
class protocol_error : public error {
 public:
  using error::error;
};

/// A remote method failed. Thrown by handlers to choose the ERR name a client sees, and by clients on receiving ERR.
class remote_error : public error {
 public:
  remote_error(std::string name, std::string message, std::string traceback = {})
      : error(name + ": " + message), name_(std::move(name)), message_(std::move(message)),
        traceback_(std::move(traceback)) {}
  /// The error's name, as Python spells exception classes ("ValueError", "NameError", "TypeError").
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] const std::string& message() const noexcept { return message_; }
  /// The remote traceback, or empty.
  [[nodiscard]] const std::string& traceback() const noexcept { return traceback_; }

 private:
  std::string name_, message_, traceback_;
};

/// The server has no method of that name.
class unknown_method_error : public remote_error {
 public:
  using remote_error::remote_error;
};

/// The call was cancelled before it finished.
class cancelled_error : public remote_error {
 public:
  using remote_error::remote_error;
};

/// The server is draining and refused the call; it never ran.
class shutting_down_error : public remote_error {
 public:
  using remote_error::remote_error;
};

/// The server refused the call for now: the client is over one of its bounds (calls running or queued, kept
/// results) or the server's queue is full (Overloaded). Nothing of the call ran; try again later.
class overloaded_error : public remote_error {
 public:
  using remote_error::remote_error;
};

/// A wait for a deferred call ended before the call did; the call goes on.
class still_running_error : public remote_error {
 public:
  using remote_error::remote_error;
};

/// The server knows no deferred call by that token (never issued, or its outcome has expired).
class unknown_token_error : public remote_error {
 public:
  using remote_error::remote_error;
};

/// A call ran past its own time limit.
class timeout_error : public error {
 public:
  using error::error;
};

/// Nothing was heard from the server for two heartbeat periods.
class lost_remote_error : public error {
 public:
  using error::error;
};

/// No connection to the server could carry the call: its security handshake failed (the server refused our CURVE
/// key, we hold the wrong server key, or one side speaks CURVE and the other does not). The message says which.
/// A server that goes away after a handshake has succeeded is not this: its calls end with lost_remote_error.
class connection_error : public error {
 public:
  /// `where`: the endpoint and method; `reason`: why, without them.
  connection_error(const std::string& where, std::string reason) : error(where + ": " + reason), reason_(std::move(reason)) {}
  /// Why, without the endpoint and method: "the server refused our CURVE key (ZAP status 400): ...".
  [[nodiscard]] const std::string& reason() const noexcept { return reason_; }

 private:
  std::string reason_;
};

/// The client or server stopped while the call was open.
class closed_error : public error {
 public:
  using error::error;
};

}  // namespace rpc
