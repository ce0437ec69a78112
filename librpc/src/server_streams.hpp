// Internal: the server's side of a streamed reply (the rpc::sink a streaming handler writes to) and of progress
// reports (the rpc::progress of a caller that asked for them). Both queue their events under the server's lock, as
// the client's credit allows. Used by the call path (server_calls.cpp).
#pragma once

#include <atomic>
#include <memory>
#include <span>
#include <stop_token>
#include <string>

#include <rpc/error.hpp>
#include <rpc/stream.hpp>

#include "server_impl.hpp"

namespace rpc {

namespace detail {

// A streaming handler's sink: each write waits for the client's credit on the call's channel, then queues a STREAM.
class server_sink final : public sink {
 public:
  server_sink(server::impl& s, std::string identity, message_id channel, std::string method, std::stop_token stop,
              std::shared_ptr<std::atomic<bool>> lost, bool announce_stop, bool batches)
      : s_(s), identity_(std::move(identity)), channel_(std::move(channel)), method_(std::move(method)),
        stop_(std::move(stop)), lost_(std::move(lost)), announce_stop_(announce_stop),
        batches_(batches) {}

  void write_packed(std::span<const std::byte> item) override {
    server::impl::locked g(s_);
    bool last = false;
    if (!take_credit(g, &last)) {
      if (lost_->load()) throw lost_remote_error(method_ + ": the client was lost: the stream cannot go on");
      throw cancelled_error("Cancelled", method_ + ": the stream was cancelled");
    }
    if (batches_ && item.size() < 16 * 1024) {  // a large item is worth an event of its own, saving a copy
      s_.queue_item(identity_, channel_, announce_stop_, item);
      if (last) s_.close_batch();  // no more may follow until the client grants more: it goes now, from here
    } else {
      event_header h{s_.ids.next(), channel_};
      h.accepts_stop = announce_stop_;
      s_.send(identity_, h, "STREAM", item);
    }
    if (!last) g.leave_router_sends_to_io();
    g.flush();
  }

  [[nodiscard]] std::stop_token stop_token() const override { return stop_; }

  /// Waits until the client has granted credit for one more event on the channel, and spends it (`mu` held);
  /// `last` tells whether that was the last of it. Returns: false if the call is gone meanwhile (cancelled, its
  /// client lost, the server stopping).
  bool take_credit(server::impl::locked& g, bool* last = nullptr) {
    for (;;) {
      if (stop_.stop_requested() || !s_.running) return false;
      auto peer = s_.peers.find(identity_);
      channel* ch = peer == s_.peers.end() ? nullptr : peer->second.find(channel_);
      if (!ch) return false;
      if (ch->credit.spend()) {
        if (last) *last = !ch->credit.available();
        return true;
      }
      // Out of credit: what is queued goes now, or the client would wait for the batch's timer to grant more.
      s_.close_batch();
      if (s_.pipe_out_waiting()) s_.wake.signal();  // the I/O thread's next unlock sends it
      if (!s_.router_out.empty() && !s_.router_io_asked) {
        s_.router_io_asked = true;
        s_.wake.signal();
      }
      g.wait(s_.credit_cv);
    }
  }

 private:
  server::impl& s_;
  const std::string identity_;
  const message_id channel_;
  const std::string method_;
  const std::stop_token stop_;
  const std::shared_ptr<std::atomic<bool>> lost_;
  const bool announce_stop_;  // our client: it may stop the stream with _ductrpc_stop
  const bool batches_;        // a client that takes STREAM_BATCH events
};

// The header of a PROGRESS event: only our client asks for progress, and it may stop the call with _ductrpc_stop.
inline event_header progress_header(message_id id, const message_id& channel) {
  event_header h{std::move(id), channel};
  h.accepts_stop = true;
  return h;
}

// A handler's progress reports for a caller that asked for them: each is a PROGRESS event, sent when the caller's
// credit allows; until then a newer report replaces the one waiting.
class server_progress final : public progress {
 public:
  server_progress(server::impl& s, std::string identity, message_id channel, std::stop_token stop)
      : s_(s), identity_(std::move(identity)), channel_(std::move(channel)), stop_(std::move(stop)) {}

  void report_packed(std::span<const std::byte> value) override {
    server::impl::locked g(s_);
    auto peer = s_.peers.find(identity_);
    channel* ch = peer == s_.peers.end() ? nullptr : peer->second.find(channel_);
    if (!ch || stop_.stop_requested()) return;  // the call is over or going: nobody to tell
    if (ch->credit.spend()) {
      s_.pending_progress.erase(call_key{identity_, channel_});
      s_.send(identity_, progress_header(s_.ids.next(), channel_), "PROGRESS", value);
    } else {
      s_.pending_progress.insert_or_assign(call_key{identity_, channel_}, duct::buffer(value));
    }
    g.flush();
  }
  [[nodiscard]] bool wanted() const override { return true; }
  [[nodiscard]] std::stop_token stop_token() const override { return stop_; }

 private:
  server::impl& s_;
  const std::string identity_;
  const message_id channel_;
  const std::stop_token stop_;
};
}  // namespace detail

}  // namespace rpc
