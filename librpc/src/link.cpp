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

// The link whose reader thread this is, if it is one.
thread_local const link_core* reading_for = nullptr;

std::exception_ptr duct_closed(const std::string& where) {
  return std::make_exception_ptr(lost_remote_error(where + ": the duct closed"));
}

duct::buffer no_server_reply(message_id id, const event& request) {
  duct::pack_buffer out;
  msgpack::pack(out, std::make_tuple(std::string("NoServer"),
                                     request.name + ": no server serves this duct (start it before the peer calls)",
                                     msgpack::type::nil_t()));
  return encode_event_packed({std::move(id), request.header.id}, "ERR",
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
  if (!reader_.joinable() && !stopping_)
    reader_ = std::thread([this] {
      reading_for = this;
      pump([] { return false; }, pumper::reader);
    });
}

void link_core::claim(pipe_server& s) {
  std::lock_guard lock(server_mu_);
  if (server_ && server_ != &s) throw error("link " + name_ + ": another server serves it already");
  server_ = &s;
}

void link_core::attach(pipe_server& s, std::chrono::microseconds budget) {
  claim(s);
  {
    std::lock_guard lock(server_mu_);
    if (!serving_ && budget.count() > 0) role_ = std::make_shared<io_role>(budget, [this] { vacated(); });
    serving_ = true;
  }
  std::lock_guard lock(mu_);
  ensure_reader();
}

void link_core::detach(pipe_server& s) noexcept {
  std::shared_ptr<io_role> role;
  {
    std::unique_lock lock(server_mu_);
    if (server_ != &s) return;
    server_ = nullptr;
    serving_ = false;
    handed_cv_.wait(lock, [&] { return handing_ == 0; });  // the reader's call for `s` (if any) has returned
    role = role_;
  }
  if (!role) return;
  role->end_if_vacant();  // held by the reader, or ended: nobody reads for it any more
  help_wake_.signal();
  role->stop_monitor();  // without server_mu_, which its vacated() takes
}

void link_core::lend() noexcept { role_->enter(ticket_); }

void link_core::reclaim() noexcept {
  if (role_->leave(ticket_)) return;
  ticket_ = role_->take();  // 0 if the server has detached meanwhile
  help_wake_.signal();
}

void link_core::vacated() {
  std::lock_guard lock(server_mu_);
  if (server_ && serving_)
    server_->on_pipe_vacated([l = weak_from_this()] {
      if (auto core = l.lock()) core->relieve();  // gone: nobody to read for
    });
}

void link_core::relieve() {
  std::shared_ptr<io_role> role;
  {
    std::lock_guard lock(server_mu_);
    role = role_;
  }
  if (role) pump([&] { return !role->waiting(); }, pumper::helper);
}

std::uint64_t link_core::handoffs() {
  std::lock_guard lock(server_mu_);
  return role_ ? role_->handoffs() : 0;
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
                                                  call_spec spec, bool with_reader) {
  auto f = std::make_shared<call_state>();
  call_table::request r;
  effects fx;
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (stopping_) throw closed_error(spec.where() + ": the link was closed");
    if (with_reader) ensure_reader();
    const auto now = clock::now();
    auto due = now + spec.heartbeat;
    if (spec.deadline) due = std::min(due, *spec.deadline);
    wake = due < reader_wakes_at_;  // the reader sleeps past this call's first deadline: wake it
    r = calls_.open(method, packed_args, std::move(spec), f, now);
    if (closed_) calls_.fail(r.id, duct_closed(*calls_.where(r.id)), fx);  // gone() has failed the others
  }
  if (!fx.empty()) {
    outbox none;
    carry_out(fx, none);
    return f;
  }
  send_request(r.id, r.body);
  if (wake) wake_.signal();
  return f;
}

chunked_halves link_core::start_stream(std::string_view method, std::span<const std::byte> packed_args,
                                       call_spec spec, const stream_spec& kind) {
  call_table::stream_request r;
  effects fx;
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (stopping_) throw closed_error(spec.where() + ": the link was closed");
    ensure_reader();
    const auto now = clock::now();
    wake = now + spec.heartbeat < reader_wakes_at_;
    r = calls_.open_stream(method, packed_args, std::move(spec), kind, now);
    if (closed_) calls_.fail(r.id, duct_closed(*calls_.where(r.id)), fx);
  }
  // Attached without mu_, which the callbacks take under the state's callback lock (see zmq_client.cpp).
  const message_id id = r.id;
  r.halves.out->attach(
      [core = weak_from_this(), id](std::size_t n) {
        if (auto l = core.lock()) l->grant(id, n);
      },
      [core = weak_from_this(), id] {
        if (auto l = core.lock()) l->stop_stream(id);
      });
  if (r.halves.in) {
    r.halves.in->attach([core = weak_from_this(), id, where = r.halves.out->where()](
                            std::string_view event_name, std::span<const std::byte> args) {
      auto l = core.lock();
      if (!l) throw closed_error(where + ": the link was closed");
      return l->send_chunk(id, event_name, args);
    });
  }
  if (!fx.empty()) {
    outbox none;
    carry_out(fx, none);
    return r.halves;
  }
  send_request(r.id, r.body);
  if (wake) wake_.signal();
  return r.halves;
}

void link_core::send_request(const message_id& id, const duct::buffer& body) noexcept {
  try {
    conn_.send_bytes(body.span());
  } catch (const std::exception& e) {
    effects fx;
    {
      std::lock_guard lock(mu_);
      if (const auto where = calls_.where(id))
        calls_.fail(id, std::make_exception_ptr(lost_remote_error(*where + ": cannot send: " + e.what())), fx);
    }
    outbox none;
    carry_out(fx, none);
  }
}

void link_core::carry_out(effects& fx, outbox& out) noexcept {
  for (duct::buffer& b : fx.sends) out.push_back(std::move(b));
  fx.sends.clear();
  for (settlement& s : fx.settles) s.state->settle(std::move(s.value), std::move(s.error));
  if (!fx.settles.empty()) settled();
  fx.settles.clear();
}

bool link_core::send_chunk(const message_id& id, std::string_view name, std::span<const std::byte> args) {
  std::optional<duct::buffer> body;
  {
    std::lock_guard lock(mu_);
    body = calls_.chunk(id, name, args);
  }
  if (!body) return false;  // it ended meanwhile: its upload_state was closed first
  try {
    conn_.send_bytes(body->span());
  } catch (const std::exception& e) {
    // The input cannot reach the server: the call ends here, its reply side too, with the reason.
    std::exception_ptr why;
    effects fx;
    {
      std::lock_guard lock(mu_);
      const auto where = calls_.where(id);
      why = std::make_exception_ptr(
          lost_remote_error((where ? *where : "duct:" + name_) + ": cannot send " + std::string(name) + ": " + e.what()));
      calls_.fail(id, why, fx);
    }
    outbox none;
    carry_out(fx, none);
    std::rethrow_exception(why);
  }
  return true;
}

void link_core::publish(std::string_view method, std::span<const std::byte> packed_args, const std::string& where) {
  duct::buffer body;
  {
    std::lock_guard lock(mu_);
    if (stopping_) throw closed_error(where + ": the link was closed");
    if (closed_) throw lost_remote_error(where + ": the duct closed");
    body = calls_.publish(method, packed_args);
  }
  try {
    conn_.send_bytes(body.span());
  } catch (const std::exception& e) {
    throw lost_remote_error(where + ": " + e.what());
  }
}

void link_core::grant(const message_id& id, std::size_t n) {
  outbox out;
  {
    std::lock_guard lock(mu_);
    if (auto body = calls_.credit(id, n)) out.push_back(std::move(*body));
  }
  flush(out);
}

void link_core::stop_stream(const message_id& id) {
  effects fx;
  {
    std::lock_guard lock(mu_);
    calls_.stop(id, fx);
  }
  outbox out;
  carry_out(fx, out);
  flush(out);
}

void link_core::abandon(const void* owner) noexcept {
  effects fx;
  {
    std::lock_guard lock(mu_);
    calls_.fail_owner(
        owner, [](const std::string& where) { return std::make_exception_ptr(closed_error(where + ": the client was closed")); },
        fx);
  }
  outbox none;
  carry_out(fx, none);
}

template <class Done>
void link_core::pump(Done done, pumper who) {
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
        pipe_server* pinned = nullptr;
        {
          std::lock_guard lock(read_mu_);
          if (!conn_.poll(duct::timeout{0})) break;
          pinned = dispatch(conn_.recv_bytes(), out, who);
        }
        if (pinned) run_pinned(*pinned);  // the calls kept for this thread, with the duct free for other readers
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
    std::chrono::milliseconds wait(0);
    effects fx;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      if (!more) {
        const auto now = clock::now();
        reader_wakes_at_ = calls_.tick(now, fx);
        wait = ms_until(reader_wakes_at_, now);
      }
    }
    carry_out(fx, out);
    flush(out);
    // A helper looks again now and then: two of them may share help_wake_, and only one drains a signal.
    if (who == pumper::helper) wait = std::min(wait, std::chrono::milliseconds(10));
    const int own = who == pumper::direct ? direct_wake_.fd() : who == pumper::helper ? help_wake_.fd() : -1;
    pollfd fds[4] = {{conn_.fileno(), POLLIN, 0}, {wake_.fd(), POLLIN, 0}, {closing_.fd(), POLLIN, 0}, {own, POLLIN, 0}};
    if (::poll(fds, 4, static_cast<int>(wait.count())) > 0) {
      if (fds[1].revents & POLLIN) wake_.drain();
      if (fds[3].revents & POLLIN) (who == pumper::direct ? direct_wake_ : help_wake_).drain();
    }
  }
}

bool link_core::read_here() {
  std::lock_guard lock(mu_);
  return !reader_.joinable() && !stopping_;
}

duct::value link_core::call(std::string_view method, std::span<const std::byte> packed_args, call_spec spec) {
  std::shared_ptr<call_state> f = start_call(method, packed_args, std::move(spec), false);
  // No reader thread (a link used only for blocking calls so far): read the reply here, and save a thread hand-off.
  // A second caller meanwhile finds direct_mu_ taken and starts the reader thread; both then read. A handler the
  // reader runs, calling out over the duct it reads, reads its reply itself too: nobody else would before the
  // budget passed.
  if ((reading_for == this || read_here()) && direct_mu_.try_lock()) {
    std::lock_guard hold(direct_mu_, std::adopt_lock);
    direct_active_ = true;
    pump([&] { return f->settled(); }, pumper::direct);
    direct_active_ = false;
  } else {
    std::lock_guard lock(mu_);
    ensure_reader();
  }
  return detail::access::make_future(std::move(f)).get();
}

pipe_server* link_core::dispatch(duct::buffer body, outbox& out, pumper who) {
  auto ev = std::make_shared<event>();  // decoded in place: an event is large to move
  try {
    detail::decode_event_into(body.span(), *ev);
  } catch (const protocol_error&) {
    return nullptr;  // not an event: nobody to answer
  }
  if (ev->header.response_to) {
    effects fx;
    bool ours = false;
    {
      std::lock_guard lock(mu_);
      ours = calls_.on_event(*ev, clock::now(), fx);
    }
    if (ours) {
      carry_out(fx, out);
      return nullptr;
    }
  }
  {
    std::lock_guard lock(server_mu_);
    if (server_ && serving_) {
      const bool keep = who == pumper::reader && role_ && (role_->mine(ticket_) || (ticket_ = role_->take()) != 0);
      server_->on_pipe_event(*this, std::move(ev), keep);
      ++handing_;
      return server_;
    }
  }
  if (!ev->header.response_to) {
    std::lock_guard lock(mu_);
    out.push_back(no_server_reply(calls_.next_id(), *ev));
  }
  return nullptr;
}

void link_core::run_pinned(pipe_server& s) noexcept {
  s.run_pipe_calls(*this);
  std::lock_guard lock(server_mu_);
  if (--handing_ == 0) handed_cv_.notify_all();
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
  effects fx;
  {
    std::lock_guard lock(mu_);
    if (closed_.exchange(true)) return;
    closed_cv_.notify_all();
    calls_.fail_all(
        [&](const std::string& where) {
          if (by_us) return std::make_exception_ptr(closed_error(where + ": " + why));
          return std::make_exception_ptr(lost_remote_error(where + ": the duct closed: " + why));
        },
        fx);
  }
  outbox none;
  carry_out(fx, none);
  std::lock_guard lock(server_mu_);
  if (server_ && serving_) server_->on_pipe_closed(*this);
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
    return core->call(method, packed_args.span(), spec(method, limit));
  }
  future start(std::string_view method, const duct::buffer& packed_args,
               std::optional<std::chrono::milliseconds> limit) override {
    return detail::access::make_future(core->start_call(method, packed_args.span(), spec(method, limit)));
  }
  std::shared_ptr<detail::stream_state> stream(std::string_view method, const duct::buffer& packed_args,
                                               bool progress) override {
    detail::stream_spec kind = window();
    kind.progress = progress;
    return core->start_stream(method, packed_args.span(), spec(method, std::nullopt), kind).out;
  }
  detail::chunked_halves chunked(std::string_view method, const duct::buffer& packed_args, bool oneway) override {
    detail::stream_spec kind = window();
    kind.chunked = true;
    kind.oneway = oneway;
    return core->start_stream(method, packed_args.span(), spec(method, std::nullopt), kind);
  }
  void publish(std::string_view method, const duct::buffer& packed_args) override {
    core->publish(method, packed_args.span(), endpoint + ": " + std::string(method));
  }
  detail::call_spec spec(std::string_view method, std::optional<std::chrono::milliseconds> limit) const {
    detail::call_spec s;
    s.owner = this;
    s.endpoint = endpoint;
    s.method = method;
    s.heartbeat = opts.heartbeat;
    if ((limit = limit_of(limit))) {
      s.limit = *limit;
      s.deadline = detail::clock::now() + *limit;
    }
    return s;
  }
  detail::stream_spec window() const {
    detail::stream_spec kind;
    kind.window = opts.stream_window;
    kind.window_bytes = opts.stream_window_bytes;
    return kind;
  }

  std::shared_ptr<detail::link_core> core;
};

}  // namespace

std::unique_ptr<client::impl> make_link_client(const link& l, client_options opts) {
  return std::make_unique<link_client>(l, opts);
}

}  // namespace rpc
