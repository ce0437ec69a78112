// rpc::broker: one thread moving bytes between the frontends (ROUTERs clients connect to), the backends (ROUTERs
// workers connect to) and broker_core, which decides where each goes. See broker.hpp and docs/broker.md.
#include <rpc/broker.hpp>

#include <poll.h>

#include <atomic>
#include <set>
#include <thread>

#include <rpc/curve.hpp>
#include <rpc/error.hpp>
#include <zmq.hpp>

#include "broker_core.hpp"
#include "broker_wire.hpp"
#include "ipc_path.hpp"
#include "wakeup.hpp"
#include "zap_handler.hpp"
#include "zmq_util.hpp"

namespace rpc {

namespace {

detail::broker_config config_of(const broker_options& o) {
  detail::broker_config c;
  c.name = o.name;
  c.heartbeat = o.heartbeat;
  c.forget_after = o.forget_after;
  c.max_queued = o.max_queued;
  c.client_queued = o.client_queued;
  c.client_open = o.client_open;
  c.max_open = o.max_open;
  c.max_workers = o.max_workers;
  return c;
}

std::span<const std::byte> bytes_of(const zmq::message_t& m) {
  return {static_cast<const std::byte*>(m.data()), m.size()};
}

}  // namespace

struct broker::impl {
  explicit impl(broker_options o) : opts(std::move(o)), core(config_of(opts)) {
    // Without CURVE both sides share one context, so one ZeroMQ I/O thread carries both: a message crosses one
    // thread fewer. With it, each side needs its own ZAP handler, with its own allow-list.
    if (opts.curve_secret_key.empty()) {
      back.ctx = front.ctx;
      return;
    }
    back.ctx = std::make_shared<zmq::context_t>(1);
    if (!is_curve_key(opts.curve_secret_key)) throw error("broker_options::curve_secret_key is not a Z85 key of 40 characters");
    for (const auto* list : {&opts.curve_allow, &opts.curve_workers})
      for (const std::string& k : *list)
        if (!is_curve_key(k)) throw error("broker_options: '" + k + "' is not a Z85 key of 40 characters");
    front.zap = std::make_unique<detail::zap_handler>(
        *front.ctx, std::set<std::string>(opts.curve_allow.begin(), opts.curve_allow.end()), nullptr);
    back.zap = std::make_unique<detail::zap_handler>(
        *back.ctx, std::set<std::string>(opts.curve_workers.begin(), opts.curve_workers.end()), nullptr);
  }
  ~impl() {
    for (const auto& c : ipc_files) detail::release(c);
  }

  // With CURVE, one context per side: each has its own ZAP handler, with its own allow-list.
  struct side {
    std::shared_ptr<zmq::context_t> ctx = std::make_shared<zmq::context_t>(1);
    std::unique_ptr<detail::zap_handler> zap;
    std::vector<zmq::socket_t> sockets;
    std::vector<bool> sent;  // by socket: sent on this round
  };

  std::string bind(side& s, std::string_view endpoint, const char* what) {
    if (running) throw error(std::string(what) + " " + std::string(endpoint) + ": the broker is already running");
    if (s.sockets.size() >= 255) throw error(std::string(what) + " " + std::string(endpoint) + ": at most 255 of them");
    zmq::socket_t sock(*s.ctx, zmq::socket_type::router);
    sock.set(zmq::sockopt::linger, 0);
    sock.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(opts.max_message_size));
    sock.set(zmq::sockopt::sndhwm, 0);  // bounded by the protocol, as the server's ROUTER (server.cpp)
    if (s.zap) {
      sock.set(zmq::sockopt::zap_domain, "ductrpc");
      sock.set(zmq::sockopt::curve_server, true);
      sock.set(zmq::sockopt::curve_secretkey, opts.curve_secret_key);
    }
    std::string bound;
    if (!endpoint.starts_with("ipc://")) {
      bound = detail::bind_endpoint(sock, endpoint);
    } else {
      detail::ipc_claim claim = detail::claim_ipc_path(endpoint);
      try {
        bound = detail::bind_endpoint(sock, claim.endpoint);
      } catch (...) {
        detail::release(claim);
        throw;
      }
      detail::note_bound(claim);
      ipc_files.push_back(std::move(claim));
    }
    s.sockets.push_back(std::move(sock));
    s.sent.push_back(false);
    return bound;
  }

  void run() {
    std::vector<pollfd> fds;
    for (auto* s : {&front, &back})
      for (auto& sock : s->sockets) fds.push_back({detail::retry_eintr([&] { return sock.get(zmq::sockopt::fd); }), POLLIN, 0});
    fds.push_back({wake.fd(), POLLIN, 0});
    std::vector<zmq::message_t> frames;
    bool more = true;  // read before the first sleep
    while (running) {
      try {
        more = step(fds, frames, more);
      } catch (const std::exception&) {
        // Nothing a peer sends gets here (each message's faults are caught where it is read); what does (memory
        // running out, a socket failing) costs this round's work, not the broker.
        ++dropped_here;
        more = false;
      }
    }
  }

  // One round: sleep until input or the core's next deadline (unless `more` input may be waiting), read each socket,
  // tick, send. Returns: whether input may be waiting still.
  bool step(std::vector<pollfd>& fds, std::vector<zmq::message_t>& frames, bool more) {
    {
      if (!more) {
        const auto wait = std::clamp(std::chrono::ceil<std::chrono::milliseconds>(core.next_due() - detail::clock::now()),
                                     std::chrono::milliseconds(0), std::chrono::milliseconds(1000));
        detail::poll_fds(fds.data(), fds.size(), wait);
        if (fds.back().revents & POLLIN) wake.drain();
      }
      more = false;
      for (std::size_t i = 0; i < front.sockets.size(); ++i) more |= from_clients(i, frames);
      for (std::size_t i = 0; i < back.sockets.size(); ++i) more |= from_workers(i, frames);
      core.tick(detail::clock::now());
      send_out();
      // Sending may take the edge ZeroMQ signals input by (a send may process the socket's commands): ask each
      // socket sent on before sleeping. The others were last touched by a read that found nothing, so their
      // descriptors will wake us.
      for (auto* s : {&front, &back})
        for (std::size_t i = 0; i < s->sockets.size(); ++i)
          if (s->sent[i]) {
            s->sent[i] = false;
            more = more || detail::has_input(s->sockets[i]);
          }
      workers_n = core.workers();
      queued_n = core.queued();
      open_n = core.open_channels();
      dropped_n = core.dropped() + dropped_here;
    }
    return more;
  }

  // Each reads a bounded batch, so that one side's flood does not starve the other. Returns: whether more may wait.
  bool from_clients(std::size_t index, std::vector<zmq::message_t>& frames) {
    zmq::socket_t& sock = front.sockets[index];
    int n = 0;
    for (; n < 1000 && detail::try_recv(sock, frames); ++n) {
      // [routing id, "", body] from any zerorpc client; [routing id, body] is taken too, as the server does.
      if (frames.size() < 2 || frames.size() > 3 || (frames.size() == 3 && frames[1].size() != 0)) {
        ++dropped_here;
        continue;
      }
      const std::string client = detail::make_client(index, detail::peer_key(frames.back()), frames.front().to_string_view());
      core.from_client(client, duct::buffer(bytes_of(frames.back())), detail::clock::now());
    }
    return n == 1000;
  }

  bool from_workers(std::size_t index, std::vector<zmq::message_t>& frames) {
    zmq::socket_t& sock = back.sockets[index];
    int n = 0;
    for (; n < 1000 && detail::try_recv(sock, frames); ++n) {
      if (frames.size() < 3) {
        ++dropped_here;
        continue;
      }
      std::string worker = static_cast<char>(index) + frames[0].to_string();
      const auto now = detail::clock::now();
      if (frames[1].size() == 0) {  // [worker, "", COMMAND, PAYLOAD?]
        core.command(worker, frames[2].to_string_view(), frames.size() >= 4 ? bytes_of(frames[3]) : std::span<const std::byte>(),
                     now);
      } else if (frames.size() == 4 && frames[2].size() == 0 && detail::valid_client(frames[1].to_string_view()) &&
                 detail::client_frontend(frames[1].to_string_view()) < front.sockets.size()) {
        core.from_worker(worker, frames[1].to_string(), duct::buffer(bytes_of(frames[3])), now);
      } else {
        ++dropped_here;
      }
    }
    return n == 1000;
  }

  void send_out() {
    for (detail::broker_out& m : core.out()) {
      try {
        if (m.to_worker) {
          const std::size_t i = static_cast<unsigned char>(m.peer[0]);
          zmq::socket_t& sock = back.sockets[i];
          back.sent[i] = true;
          const std::string_view rid = std::string_view(m.peer).substr(1);
          detail::send_part(sock, zmq::buffer(rid), zmq::send_flags::sndmore);
          if (m.client.empty()) {  // a command
            detail::send_part(sock, zmq::const_buffer(), zmq::send_flags::sndmore);
          } else {
            detail::send_part(sock, zmq::buffer(m.client), zmq::send_flags::sndmore);
            detail::send_part(sock, zmq::const_buffer(), zmq::send_flags::sndmore);
          }
          detail::send_part(sock, zmq::buffer(m.body.data(), m.body.size()), zmq::send_flags::none);
        } else {
          const std::size_t i = detail::client_frontend(m.peer);
          zmq::socket_t& sock = front.sockets[i];
          front.sent[i] = true;
          detail::send_part(sock, zmq::buffer(detail::client_routing_id(m.peer)), zmq::send_flags::sndmore);
          detail::send_part(sock, zmq::const_buffer(), zmq::send_flags::sndmore);
          detail::send_part(sock, zmq::buffer(m.body.data(), m.body.size()), zmq::send_flags::none);
        }
      } catch (const zmq::error_t&) {
        ++dropped_here;  // the socket refused it (a peer that is gone): this one is lost, the broker goes on
      }
    }
    core.out().clear();
  }

  broker_options opts;
  side front, back;
  std::vector<detail::ipc_claim> ipc_files;
  detail::broker_core core;  // the broker's thread's alone once started
  detail::wakeup wake;
  std::atomic<bool> running{false};
  bool started = false;
  std::thread thread;
  std::uint64_t dropped_here = 0;
  std::atomic<std::size_t> workers_n{0}, queued_n{0}, open_n{0};
  std::atomic<std::uint64_t> dropped_n{0};
};

broker::broker(broker_options opts) : impl_(std::make_unique<impl>(std::move(opts))) {}

broker::~broker() { stop(); }

std::string broker::frontend(std::string_view endpoint) { return impl_->bind(impl_->front, endpoint, "frontend"); }

std::string broker::backend(std::string_view endpoint) { return impl_->bind(impl_->back, endpoint, "backend"); }

void broker::start() {
  if (impl_->started) throw error("the broker was started before: make a new one");
  if (impl_->front.sockets.empty() || impl_->back.sockets.empty())
    throw error("the broker needs a frontend and a backend before it starts");
  impl_->started = true;
  impl_->running = true;
  impl_->thread = std::thread([this] { impl_->run(); });
}

void broker::stop() noexcept {
  if (!impl_->running.exchange(false)) return;
  impl_->wake.signal();
  if (impl_->thread.joinable()) impl_->thread.join();
  for (auto* s : {&impl_->front, &impl_->back}) s->sockets.clear();
  for (const auto& c : impl_->ipc_files) detail::release(c);
  impl_->ipc_files.clear();
}

std::size_t broker::workers() const noexcept { return impl_->workers_n; }
std::size_t broker::queued() const noexcept { return impl_->queued_n; }
std::size_t broker::open_channels() const noexcept { return impl_->open_n; }
std::uint64_t broker::dropped_events() const noexcept { return impl_->dropped_n; }

}  // namespace rpc
