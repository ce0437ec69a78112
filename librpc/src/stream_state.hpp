// Internal: the client's side of one streamed reply, shared by the rpc::source its consumer holds and the transport
// (ZeroMQ client or link) that receives the events. Items wait here for the consumer; credit goes back to the server
// as the consumer takes them (receive_window), so no more than the window is ever buffered or on its way.
//
// Locking: the transport calls push/end/fail under its own lock; the consumer never holds this state's lock while it
// calls into the transport (grant, stop), so the two never wait for each other in opposite orders. The transport
// detach()es before it goes away; callbacks are never called after that.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <duct/codec.hpp>

#include "channel.hpp"

namespace rpc::detail {

class stream_state {
 public:
  using grant_fn = std::function<void(std::size_t)>;  // sends _zpc_more [n] on the call's channel
  using stop_fn = std::function<void()>;              // forgets the call, telling the server if it understands

  /// `window` items at most buffered or on their way, and about `window_bytes` of them if not 0 (receive_window).
  stream_state(std::string where, std::size_t window, std::size_t window_bytes = 0)
      : where_(std::move(where)), window_(window, window_bytes) {}

  /// As above, with the transport connected from the start: for a state made while the transport holds a lock of
  /// its own, which attach() would take cb_mu_ under (the opposite order of a grant, which holds cb_mu_ and then
  /// takes the transport's lock).
  stream_state(std::string where, std::size_t window, grant_fn grant, stop_fn stop)
      : where_(std::move(where)), window_(window, 0), grant_(std::move(grant)), stop_(std::move(stop)) {}

  /// Connects the transport. Called once, before the consumer (or writer) has the state; events may arrive before.
  void attach(grant_fn grant, stop_fn stop);
  /// The transport is going away: no callback is made after this returns.
  void detach() noexcept;

  // ---- the transport, on arrival -----------------------------------------------------------------------------------
  /// An item that arrived in an event of `size` bytes (for the window's byte budget).
  void push(duct::value item, std::size_t size = 0);
  /// As push() for each of `items`, which arrived together in `size` bytes; wakes the consumer once.
  void push_many(std::vector<duct::value>& items, std::size_t size);
  /// As push(), for a receiver that holds its peer to the credit it granted. Returns: false (the item is dropped)
  /// if the peer had none left for it.
  bool offer(duct::value item);
  /// Opens the whole window. Returns: the credit to grant the peer now (see receive_window::top_up).
  std::size_t open_window();
  /// STREAM_DONE: the clean end.
  void end();
  /// The result of a call that reported progress: the end, with this result.
  void finish(duct::value result);
  /// The stream ended with `e` (ERR, lost remote, closed).
  void fail(std::exception_ptr e);
  [[nodiscard]] const std::string& where() const noexcept { return where_; }
  /// The error that ended the stream, or null (still open, or ended cleanly).
  [[nodiscard]] std::exception_ptr error();

  // ---- the consumer ---------------------------------------------------------------------------------------------
  /// The next item, nothing at the clean end; throws the error that ended the stream, or timeout_error at
  /// `deadline` (which also stops the stream).
  std::optional<duct::value> next(std::optional<clock::time_point> deadline);
  /// The result finish() gave. Throws: protocol_error if the stream ended without one.
  duct::value take_result();
  /// Ends the stream from the consumer's side with `why` (cancelled_error unless given), and stops the producer.
  void cancel(std::exception_ptr why = nullptr) noexcept;

 private:
  void call_grant(std::size_t n);
  void call_stop() noexcept;

  const std::string where_;
  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<duct::value> items_;
  receive_window window_;
  bool ended_ = false;
  std::exception_ptr error_;
  std::optional<duct::value> result_;

  std::mutex cb_mu_;  // held while a callback runs, and by detach()
  grant_fn grant_;
  stop_fn stop_;
};

}  // namespace rpc::detail
