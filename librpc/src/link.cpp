// rpc::link: zerorpc events over a duct. The reader thread reads every event, hands requests (and events on
// channels the server has open) to the server and replies to the client call they answer, and keeps the client
// calls' heartbeats and deadlines. See link.hpp and link_core.hpp.
#include <rpc/link.hpp>

#include <poll.h>

#include <rpc/error.hpp>

#include "access.hpp"
#include "client_impl.hpp"
#include "link_core.hpp"
#include "reply.hpp"

namespace rpc {
namespace detail {
namespace {

std::string next_identity() {
  static std::atomic<std::uint64_t> counter{0};
  // ZeroMQ routing ids never start with a zero byte unless they are its own five-byte ones: no clash with those.
  return std::string("\0link:", 6) + std::to_string(++counter);
}

duct::buffer no_server_reply(id_generator& ids, const event& request) {
  duct::pack_buffer out;
  msgpack::pack(out, std::make_tuple(std::string("NoServer"),
                                     request.name + ": no server serves this duct (start it before the peer calls)",
                                     msgpack::type::nil_t()));
  return encode_event_packed({ids.next(), request.header.id}, "ERR",
                             std::as_bytes(std::span(out.data(), out.size())));
}

}  // namespace

link_core::link_core(duct::connection conn)
    : conn_(std::move(conn)), name_(conn_.name()), identity_(next_identity()) {
  if (conn_.closed()) throw error("link: the duct is closed");
  if (!conn_.readable() || !conn_.writable()) throw error("link " + name_ + ": the duct must go both ways");
}

link_core::~link_core() { close(); }

void link_core::close() noexcept {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  closing_.signal();
  conn_.close();  // wakes a reader even in the middle of a message
  if (reader_.joinable()) {
    if (reader_.get_id() == std::this_thread::get_id()) reader_.detach();
    else reader_.join();
  }
  gone("the link was closed", true);
}

void link_core::ensure_reader() {
  if (!reader_.joinable() && !stopping_) reader_ = std::thread([this] { pump([] { return false; }, false); });
}

void link_core::claim(link_server& s) {
  std::lock_guard lock(server_mu_);
  if (server_ && server_ != &s) throw error("link " + name_ + ": another server serves it already");
  server_ = &s;
}

void link_core::attach(link_server& s) {
  claim(s);
  {
    std::lock_guard lock(server_mu_);
    serving_ = true;
  }
  std::lock_guard lock(mu_);
  ensure_reader();
}

void link_core::detach(link_server& s) noexcept {
  std::lock_guard lock(server_mu_);
  if (server_ != &s) return;
  server_ = nullptr;
  serving_ = false;
}

void link_core::send(std::span<const std::byte> body) { conn_.send_bytes(body); }

void link_core::flush(outbox& out) noexcept {
  for (const duct::buffer& b : out) {
    try {
      conn_.send_bytes(b.span());
    } catch (const std::exception&) {
      break;  // the duct is closing: the reader sees it and fails the calls
    }
  }
  out.clear();
}

std::shared_ptr<call_state> link_core::start_call(std::string_view method, std::span<const std::byte> packed_args,
                                                  link_call_options o, bool with_reader) {
  const std::string where = o.where;
  message_id id;
  std::shared_ptr<call_state> f;
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (stopping_) throw closed_error(where + ": the link was closed");
    if (closed_) throw lost_remote_error(where + ": the duct closed");
    if (with_reader) ensure_reader();
    id = ids_.next();
    heartbeat beat(o.heartbeat, clock::now());
    auto [it, _] = calls_.try_emplace(id, open_call{std::move(o), {}, std::make_shared<call_state>(), beat});
    f = it->second.result;
    auto due = it->second.beat.next_deadline();
    if (it->second.o.deadline) due = std::min(due, *it->second.o.deadline);
    wake = due < reader_wakes_at_;  // the reader sleeps past this call's first deadline: wake it
  }
  try {
    conn_.send_bytes(encode_event_packed(request_header(id), method, packed_args).span());
  } catch (const std::exception& e) {
    std::lock_guard lock(mu_);
    calls_.erase(id);
    throw lost_remote_error(where + ": " + e.what());
  }
  if (wake) wake_.signal();
  return f;
}

std::shared_ptr<stream_state> link_core::start_stream(std::string_view method, std::span<const std::byte> packed_args,
                                                      link_call_options o, bool progress) {
  event_header h = request_header({});
  h.wants_progress = progress;
  heartbeat beat(o.heartbeat, clock::now());
  open_call c{std::move(o), {}, {}, beat};
  c.progress = progress;
  return open_stream(method, packed_args, std::move(c), h).out;
}

chunked_halves link_core::start_chunked(std::string_view method, std::span<const std::byte> packed_args,
                                        link_call_options o, bool oneway) {
  event_header h = request_header({});
  h.accepts_stop = true;  // we understand _ductrpc_stop: the server may stop our input's producer
  h.oneway = oneway;      // a chunked publish: the server closes the call once its input has ended
  heartbeat beat(o.heartbeat, clock::now());
  open_call c{std::move(o), {}, {}, beat};
  c.oneway = oneway;
  c.upload = std::make_shared<upload_state>(c.o.where);
  return open_stream(chunked_request, method_and_args(method, packed_args).span(), std::move(c), h);
}

chunked_halves link_core::open_stream(std::string_view name, std::span<const std::byte> packed_args, open_call c,
                                      event_header h) {
  const std::string where = c.o.where;
  chunked_halves halves{c.upload, std::make_shared<stream_state>(where, c.o.window, c.o.window_bytes)};
  c.stream = halves.out;
  h.accepts_batches = !c.progress;  // a stream's items may come several to an event
  h.accepts_deferred = false;       // a stream cannot be answered with a token
  c.o.deadline.reset();  // a stream has no total limit: its consumer limits the wait for each item
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (stopping_) throw closed_error(where + ": the link was closed");
    if (closed_) throw lost_remote_error(where + ": the duct closed");
    ensure_reader();
    h.id = ids_.next();
    auto [it, _] = calls_.try_emplace(h.id, std::move(c));
    wake = it->second.beat.next_deadline() < reader_wakes_at_;
  }
  // Attached without mu_, which the callbacks take under the state's callback lock (see zmq_client.cpp).
  const message_id id = h.id;
  halves.out->attach(
      [core = weak_from_this(), id](std::size_t n) {
        if (auto l = core.lock()) l->grant(id, n);
      },
      [core = weak_from_this(), id] {
        if (auto l = core.lock()) l->stop_stream(id);
      });
  if (halves.in) {
    halves.in->attach([core = weak_from_this(), id, where](std::string_view event_name, std::span<const std::byte> args) {
      auto l = core.lock();
      if (!l) throw closed_error(where + ": the link was closed");
      return l->send_chunk(id, event_name, args);
    });
  }
  try {
    conn_.send_bytes(encode_event_packed(h, name, packed_args).span());
  } catch (const std::exception& e) {
    std::lock_guard lock(mu_);
    calls_.erase(h.id);
    throw lost_remote_error(where + ": " + e.what());
  }
  if (wake) wake_.signal();
  return halves;
}

bool link_core::send_chunk(const message_id& id, std::string_view name, std::span<const std::byte> args) {
  duct::buffer body;
  std::string where;
  {
    std::lock_guard lock(mu_);
    auto it = calls_.find(id);
    if (it == calls_.end()) return false;  // it ended meanwhile: its upload_state was closed first
    where = it->second.o.where;
    body = encode_event_packed({ids_.next(), id}, name, args);
    if (name != "CHUNK" && it->second.oneway) {  // a publish is over for us once its input has ended
      it->second.upload->close(nullptr);
      calls_.erase(it);
    }
  }
  try {
    conn_.send_bytes(body.span());
  } catch (const std::exception& e) {
    throw lost_remote_error(where + ": " + e.what());
  }
  return true;
}

void link_core::publish(std::string_view method, std::span<const std::byte> packed_args, const std::string& where) {
  event_header h;
  {
    std::lock_guard lock(mu_);
    if (stopping_) throw closed_error(where + ": the link was closed");
    if (closed_) throw lost_remote_error(where + ": the duct closed");
    h.id = ids_.next();
  }
  h.oneway = true;
  try {
    conn_.send_bytes(encode_event_packed(h, method, packed_args).span());
  } catch (const std::exception& e) {
    throw lost_remote_error(where + ": " + e.what());
  }
}

void link_core::grant(const message_id& id, std::size_t n) {
  duct::buffer body;
  {
    std::lock_guard lock(mu_);
    if (!calls_.count(id)) return;  // it ended meanwhile
    body = credit_event(ids_.next(), id, n);
  }
  outbox out;
  out.push_back(std::move(body));
  flush(out);
}

void link_core::stop_stream(const message_id& id) {
  outbox out;
  {
    std::lock_guard lock(mu_);
    auto it = calls_.find(id);
    if (it == calls_.end()) return;
    const auto act = it->second.stops.drop(false);
    if (act == stream_stop::action::keep) return;
    if (act == stream_stop::action::stop) out.push_back(stop_event(ids_.next(), id));
    if (it->second.upload) it->second.upload->close(call_cancelled(it->second.o.where));
    calls_.erase(it);
  }
  flush(out);
}

void link_core::abandon(const void* owner) noexcept {
  std::lock_guard lock(mu_);
  std::vector<message_id> mine;
  for (const auto& [id, c] : calls_)
    if (c.o.owner == owner) mine.push_back(id);
  for (const message_id& id : mine)
    fail(id, std::make_exception_ptr(closed_error(calls_.at(id).o.where + ": the client was closed")));
  settled();
}

void link_core::fail(const message_id& id, std::exception_ptr e) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  fail_call(it->second, std::move(e));
  calls_.erase(it);
}

void link_core::fail_call(open_call& c, std::exception_ptr e) {
  if (c.upload) c.upload->close(e);
  if (c.stream) c.stream->fail(std::move(e));
  else c.result->settle({}, std::move(e));
}

template <class Done>
void link_core::pump(Done done, bool direct) {
  outbox out;
  for (;;) {
    bool more = false;  // events may still be buffered in the duct, where poll() on its socket cannot see them
    try {
      // Take what has arrived, but not without end: a flood must not hold up heartbeats.
      for (int i = 0;; ++i) {
        if (done() || i == 1000) {
          more = true;
          break;
        }
        std::optional<duct::buffer> body;
        {
          std::lock_guard lock(read_mu_);
          if (conn_.poll(duct::timeout{0})) body = conn_.recv_bytes();
        }
        if (!body) break;
        dispatch(std::move(*body), out);
      }
    } catch (const std::exception& e) {
      {
        std::lock_guard lock(mu_);
        if (stopping_) return;  // close() reports it
      }
      gone(e.what(), false);
      return;
    }
    flush(out);
    if (done()) {
      if (more && read_mu_.try_lock()) {  // leave nothing buffered behind for a reader asleep on the socket
        std::lock_guard hold(read_mu_, std::adopt_lock);
        try {
          if (conn_.poll(duct::timeout{0})) wake_.signal();
        } catch (const std::exception&) {
          wake_.signal();  // let the reader find out
        }
      }
      return;
    }
    std::chrono::milliseconds wait;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      wait = more ? std::chrono::milliseconds(0) : tick(clock::now(), out);
    }
    flush(out);
    pollfd fds[4] = {{conn_.fileno(), POLLIN, 0},
                     {wake_.fd(), POLLIN, 0},
                     {closing_.fd(), POLLIN, 0},
                     {direct ? direct_wake_.fd() : -1, POLLIN, 0}};
    if (::poll(fds, 4, static_cast<int>(wait.count())) > 0) {
      if (fds[1].revents & POLLIN) wake_.drain();
      if (fds[3].revents & POLLIN) direct_wake_.drain();
    }
  }
}

bool link_core::read_here() {
  std::lock_guard lock(mu_);
  return !reader_.joinable() && !stopping_;
}

duct::value link_core::call(std::string_view method, std::span<const std::byte> packed_args, link_call_options o) {
  std::shared_ptr<call_state> f = start_call(method, packed_args, std::move(o), false);
  // No reader thread (a link used only for blocking calls so far): read the reply here, and save a thread hand-off.
  // A second caller meanwhile finds direct_mu_ taken and starts the reader thread; both then read.
  if (read_here() && direct_mu_.try_lock()) {
    std::lock_guard hold(direct_mu_, std::adopt_lock);
    direct_active_ = true;
    pump([&] { return f->settled(); }, true);
    direct_active_ = false;
  } else {
    std::lock_guard lock(mu_);
    ensure_reader();
  }
  return detail::access::make_future(std::move(f)).get();
}

void link_core::dispatch(duct::buffer body, outbox& out) {
  auto ev = std::make_shared<event>();  // decoded in place: an event is large to move
  try {
    detail::decode_event_into(body.span(), *ev);
  } catch (const protocol_error&) {
    return;  // not an event: nobody to answer
  }
  if (ev->header.response_to) {
    std::lock_guard lock(mu_);
    if (calls_.count(*ev->header.response_to)) {
      on_reply(*ev->header.response_to, *ev, out);
      settled();
      return;
    }
  }
  {
    std::lock_guard lock(server_mu_);
    if (server_ && serving_) {
      server_->on_link_event(*this, std::move(ev));
      return;
    }
  }
  if (!ev->header.response_to) {
    std::lock_guard lock(mu_);
    out.push_back(no_server_reply(ids_, *ev));
  }
}

void link_core::on_reply(const message_id& id, event& ev, outbox& out) {
  auto it = calls_.find(id);
  open_call& c = it->second;
  c.beat.heard(clock::now());
  if (c.stream) {
    on_stream_event(id, ev, out);
    return;
  }
  if (understands_stop(ev)) out.push_back(stop_event(ids_.next(), id));  // call() cannot take a stream: stop it
  try {
    duct::value result;
    std::string token;
    switch (settle(ev, c.o.where, result, token)) {
      case reply::alive: return;
      case reply::result: c.result->settle(std::move(result), nullptr); break;
      case reply::deferred: wait_on_token(std::move(c), token, out); break;
    }
  } catch (const still_running_error&) {
    if (c.token.empty()) {  // a StillRunning the caller asked for (its own _ductrpc_wait)
      fail(id, std::current_exception());
      return;
    }
    std::string token = c.token;
    wait_on_token(std::move(c), token, out);  // the wait's own limit passed: ask again
  } catch (...) {
    fail(id, std::current_exception());
    return;
  }
  calls_.erase(id);
}

// An event on a streamed call: an item, the clean end, or the error that ends it.
void link_core::on_stream_event(const message_id& id, event& ev, outbox& out) {
  open_call& c = calls_.at(id);
  stream_state& st = *c.stream;
  const auto act = c.stops.arrived(ev);
  if (act != stream_stop::action::keep) {  // the consumer dropped it before this first event
    if (act == stream_stop::action::stop) out.push_back(stop_event(ids_.next(), id));
    if (c.upload) c.upload->close(call_cancelled(c.o.where));
    calls_.erase(id);
    return;
  }
  if (c.upload) {
    if (auto n = credit_of(ev)) c.upload->grant(*n);
  }
  if (!settle_stream(ev, st, c.progress)) return;
  if (c.upload) c.upload->close(st.error());
  calls_.erase(id);
}

// Goes on waiting for a deferred call on a fresh channel: _ductrpc_wait, held by the server.
void link_core::wait_on_token(open_call c, const std::string& token, outbox& out) {
  auto now = clock::now();
  if (c.o.deadline && now >= *c.o.deadline) {
    c.result->settle({}, std::make_exception_ptr(timeout_error(no_result_within(c.o.where, c.o.limit))));
    return;
  }
  message_id id = ids_.next();
  c.token = token;
  c.beat = heartbeat(c.o.heartbeat, now);
  out.push_back(encode_event_packed(request_header(id), "_ductrpc_wait", wait_args(token, c.o.deadline).span()));
  calls_.emplace(std::move(id), std::move(c));
}

std::chrono::milliseconds link_core::tick(clock::time_point now, outbox& out) {
  std::vector<std::pair<message_id, std::exception_ptr>> failed;
  auto next = now + std::chrono::seconds(1);
  for (auto& [id, c] : calls_) {
    if (c.o.deadline && now >= *c.o.deadline) {
      failed.emplace_back(id, std::make_exception_ptr(timeout_error(no_result_within(c.o.where, c.o.limit))));
      continue;
    }
    if (c.beat.lost(now)) {
      failed.emplace_back(id, std::make_exception_ptr(lost_remote_error(
                                  c.o.where + ": lost remote after " + std::to_string(2 * c.o.heartbeat.count()) +
                                  " ms without a heartbeat")));
      continue;
    }
    if (c.beat.send_due(now)) {
      out.push_back(encode_event_packed({ids_.next(), id}, "_zpc_hb", heartbeat_args().span()));
      c.beat.sent(now);
    }
    next = std::min(next, c.beat.next_deadline());
    if (c.o.deadline) next = std::min(next, *c.o.deadline);
  }
  for (auto& [id, e] : failed) fail(id, std::move(e));
  if (!failed.empty()) settled();
  reader_wakes_at_ = next;
  return ms_until(next, now);
}

bool link_core::wait_closed(std::chrono::milliseconds limit) {
  std::unique_lock lock(mu_);
  auto is_closed = [&] { return closed_.load(); };
  if (limit == std::chrono::milliseconds::max()) {
    closed_cv_.wait(lock, is_closed);
    return true;
  }
  return closed_cv_.wait_for(lock, limit, is_closed);
}

void link_core::gone(const std::string& why, bool by_us) noexcept {
  {
    std::lock_guard lock(mu_);
    if (closed_.exchange(true)) return;
    closed_cv_.notify_all();
    for (auto& [id, c] : calls_) {
      if (by_us) fail_call(c, std::make_exception_ptr(closed_error(c.o.where + ": " + why)));
      else fail_call(c, std::make_exception_ptr(lost_remote_error(c.o.where + ": the duct closed: " + why)));
    }
    calls_.clear();
    settled();
  }
  std::lock_guard lock(server_mu_);
  if (server_ && serving_) server_->on_link_closed(*this);
}

}  // namespace detail

// ---- rpc::link -------------------------------------------------------------------------------------------------------

link::link(duct::connection duct) : core_(std::make_shared<detail::link_core>(std::move(duct))) {}
void link::close() noexcept { core_->close(); }
bool link::closed() const noexcept { return core_->closed(); }
bool link::wait_closed(std::chrono::milliseconds limit) { return core_->wait_closed(limit); }
const std::string& link::name() const noexcept { return core_->name(); }

// ---- rpc::client over a link ------------------------------------------------------------------------------------------

namespace {

struct link_client final : client::impl {
  link_client(const link& l, client_options o) : impl("duct:" + l.name(), o), core(detail::access::core(l)) {
    if (core->closed()) throw closed_error(endpoint + ": the link is closed");
  }
  ~link_client() override { core->abandon(this); }

  duct::value call(std::string_view method, const duct::buffer& packed_args,
                   std::optional<std::chrono::milliseconds> limit) override {
    return core->call(method, packed_args.span(), options(method, limit));
  }
  future start(std::string_view method, const duct::buffer& packed_args,
               std::optional<std::chrono::milliseconds> limit) override {
    return detail::access::make_future(core->start_call(method, packed_args.span(), options(method, limit)));
  }
  std::shared_ptr<detail::stream_state> stream(std::string_view method, const duct::buffer& packed_args,
                                               bool progress) override {
    return core->start_stream(method, packed_args.span(), options(method, std::nullopt), progress);
  }
  detail::chunked_halves chunked(std::string_view method, const duct::buffer& packed_args, bool oneway) override {
    return core->start_chunked(method, packed_args.span(), options(method, std::nullopt), oneway);
  }
  void publish(std::string_view method, const duct::buffer& packed_args) override {
    core->publish(method, packed_args.span(), endpoint + ": " + std::string(method));
  }
  detail::link_call_options options(std::string_view method, std::optional<std::chrono::milliseconds> limit) const {
    detail::link_call_options o;
    o.owner = this;
    o.where = endpoint + ": " + std::string(method);
    o.heartbeat = opts.heartbeat;
    o.window = opts.stream_window;
    o.window_bytes = opts.stream_window_bytes;
    if ((limit = limit_of(limit))) {
      o.limit = *limit;
      o.deadline = detail::clock::now() + *limit;
    }
    return o;
  }

  std::shared_ptr<detail::link_core> core;
};

}  // namespace

std::unique_ptr<client::impl> make_link_client(const link& l, client_options opts) {
  return std::make_unique<link_client>(l, opts);
}

}  // namespace rpc
