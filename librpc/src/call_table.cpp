// A client's open calls, without I/O. See call_table.hpp.
#include "call_table.hpp"

#include <algorithm>

#include <rpc/error.hpp>

namespace rpc::detail {

call_table::request call_table::open(std::string_view method, std::span<const std::byte> packed_args, call_spec spec,
                                     std::shared_ptr<call_state> result, clock::time_point now) {
  request r{ids_.next(), {}};
  r.body = encode_event_packed(request_header(r.id), method, packed_args);
  const heartbeat beat(spec.heartbeat, now);
  if (spare_.empty()) {
    open_call c{std::move(spec), beat};
    c.result = std::move(result);
    calls_.emplace(r.id, std::move(c));
    return r;
  }
  table::node_type node = std::move(spare_.back());
  spare_.pop_back();
  node.key() = r.id;
  open_call& c = node.mapped();  // left empty by forget()
  c.spec = std::move(spec);
  c.beat = beat;
  c.result = std::move(result);
  calls_.insert(std::move(node));
  return r;
}

call_table::stream_request call_table::open_stream(std::string_view method, std::span<const std::byte> packed_args,
                                                   call_spec spec, const stream_spec& kind, clock::time_point now) {
  event_header h = request_header({});
  h.wants_progress = kind.progress;
  h.accepts_batches = !kind.progress;  // a stream's items may come several to an event
  h.accepts_deferred = false;          // a stream cannot be answered with a token
  spec.deadline.reset();               // no total limit: the consumer limits the wait for each item
  const heartbeat beat(spec.heartbeat, now);
  open_call c{std::move(spec), beat};
  c.progress = kind.progress;
  c.stream = std::make_shared<stream_state>(c.spec.where(), kind.window, kind.window_bytes);
  if (kind.chunked) {
    h.accepts_stop = true;  // we understand _ductrpc_stop: the server may stop our input's producer
    h.oneway = kind.oneway;  // a chunked publish: the server closes the call once its input has ended
    c.oneway = kind.oneway;
    c.upload = std::make_shared<upload_state>(c.spec.where());
  }
  h.id = ids_.next();
  stream_request r{h.id, {}, {c.upload, c.stream}};
  r.body = kind.chunked ? encode_event_packed(h, chunked_request, method_and_args(method, packed_args).span())
                        : encode_event_packed(h, method, packed_args);
  calls_.emplace(h.id, std::move(c));
  ++streams_;
  return r;
}

duct::buffer call_table::publish(std::string_view method, std::span<const std::byte> packed_args) {
  event_header h;
  h.id = ids_.next();
  h.oneway = true;
  return encode_event_packed(h, method, packed_args);
}

std::optional<duct::buffer> call_table::chunk(const message_id& id, std::string_view name,
                                              std::span<const std::byte> args) {
  auto it = calls_.find(id);
  if (it == calls_.end() || !it->second.upload) return std::nullopt;  // ended (its upload_state was closed first)
  duct::buffer body = encode_event_packed({ids_.next(), id}, name, args);
  if (name != "CHUNK" && it->second.oneway) {  // a publish is over for us once its input has ended
    if (it->second.upload) it->second.upload->close(nullptr);
    forget(it);
  }
  return body;
}

std::optional<duct::buffer> call_table::credit(const message_id& id, std::size_t n) {
  auto it = calls_.find(id);
  if (it == calls_.end() || !it->second.stream) return std::nullopt;  // ended meanwhile, or not a stream
  return credit_event(ids_.next(), id, n);
}

void call_table::stop(const message_id& id, effects& out) {
  auto it = calls_.find(id);
  if (it == calls_.end() || !it->second.stream) return;  // ended, or not a stream (whose future must settle)
  const auto act = it->second.stops.drop(server_stops_);
  if (act == stream_stop::action::keep) return;  // until its first event says whether the server understands
  if (act == stream_stop::action::stop) out.sends.push_back(stop_event(ids_.next(), id));
  if (it->second.upload) it->second.upload->close(call_cancelled(it->second.spec.where()));
  forget(it);
}

bool call_table::on_event(event& ev, clock::time_point now, effects& out) {
  if (!ev.header.response_to) return false;  // a request: not ours
  auto c = calls_.find(*ev.header.response_to);
  if (c == calls_.end()) return false;  // a late event of a call that has ended, or of a channel not ours
  server_stops_ = server_stops_ || understands_stop(ev);
  c->second.beat.heard(now);
  if (c->second.stream) on_stream_event(c, ev, out);
  else on_reply(c, ev, now, out);
  return true;
}

void call_table::on_reply(table::iterator c, event& ev, clock::time_point now, effects& out) {
  open_call& call = c->second;
  std::string token;  // set when the call goes on waiting for a deferred outcome
  try {
    duct::value result;
    switch (settle(ev, {call.spec.endpoint, call.spec.method}, result, token)) {
      case reply::alive: return;
      case reply::result:
        out.settles.push_back({std::move(call.result), std::move(result), nullptr});
        forget(c);
        return;
      case reply::deferred: break;  // the server gave a token: wait on it
    }
  } catch (const still_running_error&) {
    if (call.token.empty()) {  // a StillRunning the caller asked for (its own _ductrpc_wait)
      end(c, std::current_exception(), out);
      return;
    }
    token = call.token;  // the wait's own limit passed: ask again
  } catch (...) {
    // A stream in answer to a plain call, which cannot take one, is a protocol error: stop its producer too if
    // the server understands it, rather than let it run on for nobody.
    if (understands_stop(ev)) out.sends.push_back(stop_event(ids_.next(), c->first));
    end(c, std::current_exception(), out);
    return;
  }
  // Outside the handlers: the call moves to a fresh channel, and `c` is gone.
  open_call moved = std::move(call);
  forget(c);
  wait_on_token(std::move(moved), token, now, out);
}

void call_table::on_stream_event(table::iterator c, event& ev, effects& out) {
  open_call& call = c->second;
  const auto act = call.stops.arrived(ev);
  if (act != stream_stop::action::keep) {  // the consumer dropped it before this first event
    if (act == stream_stop::action::stop) out.sends.push_back(stop_event(ids_.next(), c->first));
    if (call.upload) call.upload->close(call_cancelled(call.spec.where()));
    forget(c);
    return;
  }
  if (call.upload) {
    if (auto n = credit_of(ev)) call.upload->grant(*n);
  }
  if (!settle_stream(ev, *call.stream, call.progress)) return;
  if (call.upload) call.upload->close(call.stream->error());
  forget(c);
}

void call_table::wait_on_token(open_call c, const std::string& token, clock::time_point now, effects& out) {
  if (c.spec.deadline && now >= *c.spec.deadline) {
    out.sends.push_back(cancel_event(ids_.next(), token));
    out.settles.push_back(
        {std::move(c.result), {}, std::make_exception_ptr(timeout_error(no_result_within(c.spec.where(), c.spec.limit)))});
    return;
  }
  message_id id = ids_.next();
  c.token = token;
  c.beat = heartbeat(c.spec.heartbeat, now);  // a new channel
  out.sends.push_back(
      encode_event_packed(request_header(id), "_ductrpc_wait", wait_args(token, c.spec.deadline, now).span()));
  calls_.emplace(std::move(id), std::move(c));
}

clock::time_point call_table::tick(clock::time_point now, effects& out) {
  std::vector<std::pair<message_id, std::exception_ptr>> failed;
  auto next = now + std::chrono::seconds(1);
  for (auto& [id, c] : calls_) {
    if (c.spec.deadline && now >= *c.spec.deadline) {
      if (!c.token.empty()) out.sends.push_back(cancel_event(ids_.next(), c.token));  // not left running
      failed.emplace_back(id, std::make_exception_ptr(timeout_error(no_result_within(c.spec.where(), c.spec.limit))));
      continue;
    }
    if (c.beat.lost(now)) {
      failed.emplace_back(id, std::make_exception_ptr(lost_remote_error(
                                  c.spec.where() + ": lost remote after " + std::to_string(2 * c.spec.heartbeat.count()) +
                                  " ms without a heartbeat")));
      continue;
    }
    if (c.beat.send_due(now)) {
      out.sends.push_back(encode_event_packed({ids_.next(), id}, "_zpc_hb", heartbeat_args().span()));
      c.beat.sent(now);
    }
    next = std::min(next, c.beat.next_deadline());
    if (c.spec.deadline) next = std::min(next, *c.spec.deadline);
  }
  for (auto& [id, e] : failed) fail(id, std::move(e), out);
  return next;
}

clock::time_point call_table::next_due(clock::time_point later) const {
  for (const auto& [id, c] : calls_) {
    later = std::min(later, c.beat.next_deadline());
    if (c.spec.deadline) later = std::min(later, *c.spec.deadline);
  }
  return later;
}

void call_table::fail(const message_id& id, std::exception_ptr e, effects& out) {
  auto it = calls_.find(id);
  if (it != calls_.end()) end(it, std::move(e), out);
}

void call_table::fail_all(const std::function<std::exception_ptr(const std::string& where)>& why, effects& out) {
  fail_owner(nullptr, why, out);
}

void call_table::fail_owner(const void* owner, const std::function<std::exception_ptr(const std::string& where)>& why,
                            effects& out) {
  for (auto it = calls_.begin(); it != calls_.end();) {
    auto here = it++;  // end() erases `here` only
    if (!owner || here->second.spec.owner == owner) end(here, why(here->second.spec.where()), out);
  }
}

std::optional<std::string> call_table::where(const message_id& id) const {
  auto it = calls_.find(id);
  if (it == calls_.end()) return std::nullopt;
  return it->second.spec.where();
}

void call_table::end(table::iterator c, std::exception_ptr e, effects& out) {
  open_call& call = c->second;
  if (call.upload) call.upload->close(e);
  if (call.stream) call.stream->fail(std::move(e));
  else out.settles.push_back({std::move(call.result), {}, std::move(e)});
  forget(c);
}

void call_table::forget(table::iterator c) {
  if (c->second.stream) --streams_;
  constexpr std::size_t spares = 64;
  if (spare_.size() >= spares) {
    calls_.erase(c);
    return;
  }
  table::node_type node = calls_.extract(c);
  node.mapped() = open_call{call_spec{}, node.mapped().beat};  // what it held goes now, as with erase()
  spare_.push_back(std::move(node));
}

}  // namespace rpc::detail
