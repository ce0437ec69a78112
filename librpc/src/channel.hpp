// Internal, sans-I/O: the state of zerorpc channels. No sockets, no clocks of its own: time comes in as arguments,
// so every rule here is tested with made-up instants.
//
// A channel is opened by its first event; every later event in either direction carries response_to = its id.
// Per channel we keep:
//   send_credit     how many events we may still send (zerorpc's _zpc_more): 1 to start, each send spends one
//   receive_window  how much credit we grant the peer, so that what it may send plus what we hold never exceeds a
//                   fixed capacity: memory stays bounded however fast the peer produces
//   heartbeat       when our next _zpc_hb is due, and whether the peer has been silent too long (LostRemote)
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include <rpc/event.hpp>

namespace rpc::detail {

using clock = std::chrono::steady_clock;

/// Milliseconds from `now` until `t`, rounded up and never negative: a poll timeout for a deadline.
inline std::chrono::milliseconds ms_until(clock::time_point t, clock::time_point now) {
  return std::chrono::ceil<std::chrono::milliseconds>(std::max(t - now, clock::duration(0)));
}

/// The packed args of every _zpc_hb event: [0] (the 0 is for v2 peers).
const duct::buffer& heartbeat_args();

/// Our permission to send: zerorpc starts each side with one event's credit; the peer grants more with _zpc_more.
class send_credit {
 public:
  [[nodiscard]] bool available() const noexcept { return credit_ > 0; }
  [[nodiscard]] std::int64_t remaining() const noexcept { return credit_; }
  /// One event sent. Returns: false (and spends nothing) if there was no credit.
  bool spend() noexcept;
  /// The peer granted `n` more (negative grants are ignored; the total is capped so a hostile peer cannot overflow).
  void grant(std::int64_t n) noexcept;

 private:
  std::int64_t credit_ = 1;
};

/// Our side of the peer's credit. Invariant: outstanding (granted, not yet arrived) + buffered <= capacity, except
/// for the one event every peer may send before any grant. With a byte budget, the capacity adapts to the size of
/// what arrives: about `bytes` worth of events, between a floor of 16 (or `capacity` if smaller) and `capacity`
/// events — many small items in flight keep a stream fast, few large ones keep its memory small.
class receive_window {
 public:
  explicit receive_window(std::size_t capacity = 100, std::size_t bytes = 0) noexcept
      : capacity_(capacity), bytes_(bytes) {}

  /// An event (other than _zpc_more and _zpc_hb) of `size` bytes arrived. Returns: false if the peer had no credit
  /// left for it.
  bool on_arrival(std::size_t size = 0) noexcept;
  /// The consumer took one buffered event. Returns: the credit to grant now with _zpc_more, or 0: we top up to the
  /// capacity whenever fewer than half of it is outstanding, as zerorpc's client does.
  std::size_t on_consumed() noexcept;
  /// Opens the whole window at once. Returns: the credit to grant now (the capacity less what is outstanding or
  /// buffered) — for a receiver that invites a stream rather than waiting to be sent one event first.
  std::size_t top_up() noexcept;

  [[nodiscard]] std::size_t buffered() const noexcept { return buffered_; }
  [[nodiscard]] std::size_t outstanding() const noexcept { return outstanding_; }
  /// The capacity now: the fixed one, or with a byte budget what the average event so far allows.
  [[nodiscard]] std::size_t capacity() const noexcept;

 private:
  std::size_t capacity_;
  std::size_t bytes_;  // the byte budget; 0: none
  std::size_t outstanding_ = 1;
  std::size_t buffered_ = 0;
  std::uint64_t seen_events_ = 0, seen_bytes_ = 0;
};

/// zerorpc's heartbeat on one channel: we send _zpc_hb every period from the channel's opening, and the peer is lost
/// when nothing at all has come from it for two periods.
class heartbeat {
 public:
  heartbeat(clock::duration period, clock::time_point opened) noexcept
      : period_(period), next_send_(opened + period), last_heard_(opened) {}

  void heard(clock::time_point now) noexcept { last_heard_ = now; }
  [[nodiscard]] bool send_due(clock::time_point now) const noexcept { return now >= next_send_; }
  /// A heartbeat went out at `now`; the next is due one period after the one that was due.
  void sent(clock::time_point now) noexcept;
  [[nodiscard]] bool lost(clock::time_point now) const noexcept { return now - last_heard_ > 2 * period_; }
  /// The next instant something must happen on this channel (a heartbeat to send, or the peer to be declared lost).
  [[nodiscard]] clock::time_point next_deadline() const noexcept;

 private:
  clock::duration period_;
  clock::time_point next_send_;
  clock::time_point last_heard_;
};

struct channel {
  channel(message_id channel_id, clock::duration hb_period, clock::time_point now, std::size_t capacity)
      : id(std::move(channel_id)), beat(hb_period, now), window(capacity) {}
  message_id id;
  heartbeat beat;
  send_credit credit;
  receive_window window;
};

/// The open channels of one connection, by id.
class channel_table {
 public:
  explicit channel_table(clock::duration hb_period = std::chrono::seconds(5), std::size_t window = 100)
      : period_(hb_period), window_(window) {}

  /// Opens a channel. Returns: it, or nullptr if one with that id is open already.
  channel* open(const message_id& id, clock::time_point now);
  /// Returns: the open channel with that id, or nullptr (zerorpc drops events for unknown channels).
  channel* find(const message_id& id) noexcept;
  void close(const message_id& id) noexcept { channels_.erase(id); }
  [[nodiscard]] std::size_t size() const noexcept { return channels_.size(); }

  /// The channels whose heartbeat is due at `now`.
  std::vector<channel*> heartbeats_due(clock::time_point now);
  /// The channels whose peer has gone silent for two periods at `now`.
  std::vector<message_id> lost(clock::time_point now) const;
  /// Every open channel's id.
  [[nodiscard]] std::vector<message_id> ids() const;
  /// When the earliest channel needs attention, or nothing if none is open.
  [[nodiscard]] std::optional<clock::time_point> next_deadline() const noexcept;

 private:
  clock::duration period_;
  std::size_t window_;
  std::unordered_map<message_id, channel, message_id_hash> channels_;
};

}  // namespace rpc::detail
