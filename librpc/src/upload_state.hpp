// Internal: the client's side of a chunked request — the items it writes to the server, which reads them from an
// rpc::source. Shared by the rpc::duplex its writer holds and the transport (ZeroMQ client or link) that carries
// the events.
//
// On the wire (our extension, only to a server that announced it reads chunks):
//   request       _ductrpc_chunked [method, [args...]]       the call; a zerorpc server answers NameError
//   server → us   _zpc_more [n]                              credit for n more chunks; the first is the announcement
//   us → server   CHUNK item | CHUNK_DONE nil | CHUNK_ERR [name, message, nil]
// The writer sends nothing before the announcement, and never more chunks than the credit it was granted.
//
// Locking as in stream_state: the transport calls grant()/close() under its own lock; the writer never holds this
// state's lock while it calls into the transport (send), and detach() waits for a send in progress.
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>

#include "channel.hpp"
#include "stream_state.hpp"

namespace rpc::detail {

class upload_state {
 public:
  /// Sends one event of the input (CHUNK, CHUNK_DONE or CHUNK_ERR) with these packed args on the call's channel.
  /// Returns: false if the call has ended meanwhile (the transport close()d this state first).
  using send_fn = std::function<bool(std::string_view name, std::span<const std::byte> args)>;

  explicit upload_state(std::string where) : where_(std::move(where)) {}

  /// Connects the transport. Called once, before the consumer (or writer) has the state; events may arrive before.
  void attach(send_fn send);
  /// The transport is going away: no callback is made after this returns.
  void detach() noexcept;

  // ---- the transport, on arrival ---------------------------------------------------------------------------------
  /// _zpc_more [n] from the server: n more chunks may go (the first grant also says the server reads chunks).
  void grant(std::int64_t n);
  /// The call ended: with `why` (its error), or with its result when null. Writes fail from now on.
  void close(std::exception_ptr why) noexcept;

  // ---- the writer ------------------------------------------------------------------------------------------------
  /// Sends one item, waiting for the server's announcement and credit.
  /// Throws: the error the call ended with; closed_error once the input was ended or the call has its result.
  void write(std::span<const std::byte> item);
  /// Ends the input cleanly (CHUNK_DONE). Returns: false if the call had ended already (nothing was sent).
  /// Throws: what write() throws, but only for a failure to send.
  bool end();
  /// Ends the input with an error (CHUNK_ERR), which the handler's next() throws as remote_error(name, message).
  /// Returns: false if the call had ended already.
  bool fail(const std::string& name, const std::string& message);
  /// Stopped once the call has ended: a producer can check it between expensive items.
  [[nodiscard]] std::stop_token stop_token() const noexcept { return stop_.get_token(); }
  [[nodiscard]] const std::string& where() const noexcept { return where_; }

 private:
  /// Waits until an event of the input may go: the server announced it reads chunks and, for a chunk, granted
  /// credit, which is then spent. Returns: false if the call ended first. Throws: closed_error if the input was
  /// ended already.
  bool wait_to_send(std::unique_lock<std::mutex>& lock, bool chunk);
  /// Returns: false if the call ended before the event could go.
  bool send(std::string_view name, std::span<const std::byte> args);
  /// Throws: why the call ended (its error, or closed_error once it has its result).
  [[noreturn]] void throw_ended();

  const std::string where_;
  std::mutex mu_;
  std::condition_variable ready_;
  send_credit credit_;
  bool announced_ = false;  // the server granted credit: it reads chunks
  bool input_ended_ = false;
  bool closed_ = false;     // the call ended
  std::exception_ptr why_;  // with this error (null: with its result)
  std::stop_source stop_;

  std::mutex cb_mu_;  // held while send_ runs, and by detach()
  send_fn send_;
};

/// The two halves of a chunked call on the client: the input it writes, and the reply it reads.
struct chunked_halves {
  std::shared_ptr<upload_state> in;
  std::shared_ptr<stream_state> out;
};

}  // namespace rpc::detail
