// Internal: what a reply event means for the call it answers, shared by the ZeroMQ client and the duct link.
#pragma once

#include <optional>
#include <string>

#include <duct/buffer.hpp>
#include <duct/codec.hpp>
#include <rpc/event.hpp>

#include "channel.hpp"
#include "stream_state.hpp"

namespace rpc::detail {

enum class reply { alive, result, deferred };

/// Names a call in error messages ("endpoint: method"), put together only when an error needs it: most replies
/// carry none, and building the name was two allocations per reply. Refers to strings that must outlive it.
struct call_name {
  call_name(const std::string& where) : first(where) {}  // NOLINT: a whole name converts implicitly
  call_name(std::string_view endpoint, std::string_view method) : first(endpoint), second(method) {}
  [[nodiscard]] std::string str() const {
    return second.empty() ? std::string(first) : std::string(first) + ": " + std::string(second);
  }
  std::string_view first, second;
};

/// What a reply event means for its call: `result` set for OK; `token` set for DEFERRED (the server answers a call
/// that ran past its budget with a token, only because we announced we understand that); alive for events that only
/// show the server is there (_zpc_hb, _zpc_more). `where` prefixes error messages.
/// Throws: the call's error for ERR (typed by its name), protocol_error for a stream or anything unexpected.
reply settle(const event& ev, call_name where, duct::value& result, std::string& token);

/// Routes an event of a streamed call (or of one that asked for `progress`) into its state: an item, the clean end
/// (or the result), or the error that ends it. Returns: whether the call has ended.
bool settle_stream(event& ev, stream_state& st, bool progress);

/// The body of the `_zpc_more [n]` event that grants the server `n` more events on `channel`.
duct::buffer credit_event(message_id id, const message_id& channel, std::size_t n);
/// The n of a `_zpc_more [n]` event, or nothing if `ev` is not one (or is malformed).
std::optional<std::int64_t> credit_of(const event& ev);

/// [method, args], `packed_args` being the call's args array: the args of a request that carries another call
/// (_ductrpc_chunked, _ductrpc_submit).
duct::buffer method_and_args(std::string_view method, std::span<const std::byte> packed_args);

/// The error a call stopped from our side ends with: cancelled_error naming `where` ("endpoint: method").
std::exception_ptr call_cancelled(const std::string& where);
/// The request name of a chunked call (our extension: a zerorpc server answers NameError).
inline constexpr std::string_view chunked_request = "_ductrpc_chunked";

/// The body of the _ductrpc_stop event that stops `channel` (a stream, or a call reporting progress).
duct::buffer stop_event(message_id id, const message_id& channel);
/// Whether an event of a stream (STREAM, STREAM_BATCH, PROGRESS, or the credit that opens a chunked request) says
/// the server understands _ductrpc_stop: only our server sets the header key, and only on those.
inline bool understands_stop(const event& ev) { return ev.header.accepts_stop; }

/// Whether a request comes from our client: any of the header keys only it sends says so. Only then may a reply
/// carry our own header keys.
inline bool from_our_client(const event_header& h) {
  return h.accepts_deferred || h.accepts_batches || h.wants_progress;
}

/// A streamed call's stop rules, the same over both transports. A source dropped before the stream's first event
/// waits for it, to learn whether the server understands _ductrpc_stop.
class stream_stop {
 public:
  enum class action {
    keep,    ///< go on with the call
    forget,  ///< forget the call, telling the server nothing (it notices the silence)
    stop,    ///< send _ductrpc_stop, then forget the call
  };
  /// The consumer dropped the stream. `server_stops`: another reply from the same server already said that it
  /// understands _ductrpc_stop, so the stop need not wait for this call's first event (which, for a method that
  /// answers once, is its result: the call would run to its end).
  /// Returns: keep (no event yet: wait for the first), forget or stop.
  action drop(bool server_stops) noexcept {
    if (!heard_ && server_stops) return action::stop;
    if (!heard_) {
      dropped_ = true;
      return action::keep;
    }
    return can_stop_ ? action::stop : action::forget;
  }
  /// An event of the stream arrived. Returns: keep (settle it), or, for a stream dropped before it, forget or stop.
  action arrived(const event& ev) noexcept {
    can_stop_ = can_stop_ || ev.header.accepts_stop;
    heard_ = true;
    if (!dropped_) return action::keep;
    return understands_stop(ev) ? action::stop : action::forget;
  }

 private:
  bool heard_ = false;     // an event of the stream has arrived
  bool can_stop_ = false;  // one of them said the server understands _ductrpc_stop
  bool dropped_ = false;   // the consumer dropped the stream before any arrived
};

/// The `_ductrpc_cancel [token]` request (id `id`) that cancels the job of a deferred call whose caller gave up on
/// it, so that it is not left running for nobody. Its answer, like any late reply, is dropped.
duct::buffer cancel_event(message_id id, const std::string& token);

/// A request's header: a fresh id, and the announcement that we understand DEFERRED replies.
event_header request_header(message_id id);

/// The arguments of the _ductrpc_wait that goes on waiting for `token`: the call's remaining time, or a minute at a
/// time when it has no deadline. `now`: the time it is sent.
duct::buffer wait_args(const std::string& token, std::optional<clock::time_point> deadline, clock::time_point now);

/// "no result within N ms", the message of a call's timeout_error.
std::string no_result_within(const std::string& where, std::chrono::milliseconds limit);

}  // namespace rpc::detail
