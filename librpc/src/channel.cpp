// Channel state: credit, receive window, heartbeat, table. See channel.hpp.
#include "channel.hpp"

#include <algorithm>

namespace rpc::detail {

const duct::buffer& heartbeat_args() {
  static const duct::buffer args = [] {
    duct::pack_buffer out;
    msgpack::pack(out, std::make_tuple(0));
    return duct::buffer(std::as_bytes(std::span(out.data(), out.size())));
  }();
  return args;
}

bool send_credit::spend() noexcept {
  if (credit_ <= 0) return false;
  --credit_;
  return true;
}

void send_credit::grant(std::int64_t n) noexcept {
  constexpr std::int64_t cap = std::int64_t{1} << 40;
  if (n > 0) credit_ = std::min(cap, credit_ + std::min(n, cap));
}

bool receive_window::on_arrival(std::size_t size) noexcept {
  ++seen_events_;
  seen_bytes_ += size;
  ++buffered_;
  if (outstanding_ == 0) return false;
  --outstanding_;
  return true;
}

std::size_t receive_window::capacity() const noexcept {
  const std::size_t floor = std::min<std::size_t>(capacity_, 16);
  if (bytes_ == 0) return capacity_;
  if (seen_bytes_ == 0) return floor;  // nothing measured yet: start small
  const std::uint64_t average = std::max<std::uint64_t>(1, seen_bytes_ / seen_events_);
  return std::max(floor, static_cast<std::size_t>(std::min<std::uint64_t>(bytes_ / average, capacity_)));
}

std::size_t receive_window::on_consumed() noexcept {
  if (buffered_ > 0) --buffered_;
  if (outstanding_ >= capacity() / 2) return 0;
  return top_up();
}

std::size_t receive_window::top_up() noexcept {
  const std::size_t cap = capacity();
  std::size_t used = outstanding_ + buffered_;
  std::size_t grant = cap > used ? cap - used : 0;
  outstanding_ += grant;
  return grant;
}

void heartbeat::sent(clock::time_point now) noexcept {
  next_send_ += period_;
  if (next_send_ <= now) next_send_ = now + period_;  // we fell behind: do not send a burst to catch up
}

clock::time_point heartbeat::next_deadline() const noexcept {
  return std::min(next_send_, last_heard_ + 2 * period_ + clock::duration(1));
}

channel* channel_table::open(const message_id& id, clock::time_point now) {
  auto [it, inserted] = channels_.try_emplace(id, id, period_, now, window_);
  return inserted ? &it->second : nullptr;
}

channel* channel_table::find(const message_id& id) noexcept {
  auto it = channels_.find(id);
  return it == channels_.end() ? nullptr : &it->second;
}

std::vector<channel*> channel_table::heartbeats_due(clock::time_point now) {
  std::vector<channel*> due;
  for (auto& [id, ch] : channels_)
    if (ch.beat.send_due(now)) due.push_back(&ch);
  return due;
}

std::vector<message_id> channel_table::ids() const {
  std::vector<message_id> all;
  for (const auto& [id, ch] : channels_) all.push_back(id);
  return all;
}

std::vector<message_id> channel_table::lost(clock::time_point now) const {
  std::vector<message_id> gone;
  for (const auto& [id, ch] : channels_)
    if (ch.beat.lost(now)) gone.push_back(id);
  return gone;
}

std::optional<clock::time_point> channel_table::next_deadline() const noexcept {
  std::optional<clock::time_point> earliest;
  for (const auto& [id, ch] : channels_) {
    auto d = ch.beat.next_deadline();
    if (!earliest || d < *earliest) earliest = d;
  }
  return earliest;
}

}  // namespace rpc::detail
