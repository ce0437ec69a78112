// rpc::client over ZeroMQ: a blocking call, run entirely on the calling thread over a DEALER of that thread's own
// (sending, waiting and heartbeating itself: no hand-off to another thread). See zmq_client.hpp.
#include <rpc/error.hpp>

#include "reply.hpp"
#include "zmq_client.hpp"

namespace rpc::detail {

direct_socket& zmq_client::my_socket() {
  std::lock_guard lock(sockets_mu);
  auto& slot = sockets[std::this_thread::get_id()];
  if (!slot) {
    std::unique_ptr<detail::handshake_watch> watch;
    zmq::socket_t socket = make_socket(watch);
    const int fd = retry_eintr([&] { return socket.get(zmq::sockopt::fd); });
    slot = std::make_unique<direct_socket>(direct_socket{std::move(socket), std::move(watch), fd, {}});
  }
  return *slot;
}

// A blocking call the server deferred: wait on its token, a held _ductrpc_wait at a time, until the outcome or the
// call's own deadline.
duct::value zmq_client::collect(const std::string& token, std::optional<detail::clock::time_point> deadline,
                                const std::string& where, std::optional<std::chrono::milliseconds> limit) {
  for (;;) {
    if (deadline && detail::clock::now() >= *deadline) {
      try {  // its job is not left running for nobody
        send_async(detail::cancel_event(my_socket().ids.next(), token));
      } catch (const error&) {
        // the job then runs to its end and its outcome expires unfetched
      }
      throw timeout_error(detail::no_result_within(where, *limit));
    }
    try {
      // No client-side limit on the wait itself: the server answers at the wait's limit, and heartbeats cover the rest.
      return call("_ductrpc_wait", detail::wait_args(token, deadline, detail::clock::now()), std::chrono::milliseconds(-1));
    } catch (const still_running_error&) {
      // the wait's limit passed before the call ended: ask again, or give up at our deadline (checked above)
    }
  }
}

duct::value zmq_client::call(std::string_view method, const duct::buffer& packed_args,
                             std::optional<std::chrono::milliseconds> limit) {
  limit = limit_of(limit);
  auto where = [&] { return endpoint + ": " + std::string(method); };  // for an error message: made only then
  if (!running) throw closed_error(where() + ": the client is closing");
  check_size(method, packed_args.size());
  direct_socket& mine = my_socket();
  const message_id id = mine.ids.next();
  auto now = detail::clock::now();
  std::optional<detail::clock::time_point> deadline;
  if (limit) deadline = now + *limit;
  detail::heartbeat beat(opts.heartbeat, now);
  auto refused_here = [&] {
    return connection_error(where(), mine.watch->failure().value_or("no connection to the server is ready"));
  };
  // The thread's socket was refused before (see send_async()): this call would wait for ever.
  if (mine.watch->failure()) throw refused_here();
  try {
    if (!send_body(mine.socket, encode_event_packed(detail::request_header(id), method, packed_args.span())))
      throw refused_here();
  } catch (const zmq::error_t& e) {
    throw error(where() + ": " + e.what());
  }
  std::vector<zmq::message_t> frames;
  // What a message read means for this call: its result, or nothing yet (a heartbeat, a reply to an earlier call).
  auto take = [&]() -> std::optional<duct::value> {
    if (frames.empty()) return std::nullopt;
    std::optional<event> ev = decode_reply(frames.back());
    // Replies to earlier calls of this thread that timed out are ignored, like any event of an unknown channel.
    if (!ev || ev->header.response_to != id) return std::nullopt;
    beat.heard(detail::clock::now());
    if (detail::understands_stop(*ev))  // call() cannot take a stream: stop it at once
      send_body(mine.socket, detail::stop_event(mine.ids.next(), id));
    duct::value result;
    std::string token;
    switch (detail::settle(*ev, {endpoint, method}, result, token)) {
      case reply::alive: return std::nullopt;
      case reply::result: return result;
      case reply::deferred: return collect(token, deadline, where(), limit);
    }
    return std::nullopt;
  };
  // First it waits inside ZeroMQ's own receive, for a short while: a reply that comes within it (nearly all do)
  // costs what a blocking zmq_recv costs, three system calls fewer than the wait on the socket's descriptor below
  // (which needs a read that finds nothing first, to re-arm the descriptor's edge, then our poll, then ZeroMQ's
  // own look once woken). That wait sees neither the closing signal nor the handshake watch, so it lasts at most
  // first_wait: a close() or a refused handshake is noticed that much later at worst.
  {
    auto until = std::min(now + first_wait, beat.next_deadline());
    if (deadline) until = std::min(until, *deadline);
    for (;;) {
      const auto wait = static_cast<int>(detail::ms_until(until, now).count());
      if (wait <= 0) break;
      if (wait != mine.recv_timeout) {
        mine.socket.set(zmq::sockopt::rcvtimeo, wait);
        mine.recv_timeout = wait;
      }
      if (!detail::recv_within(mine.socket, frames)) break;
      if (auto result = take()) return std::move(*result);
      now = detail::clock::now();
    }
  }
  // Then it reads before it sleeps, and sleeps on the socket's descriptor only once a read has found nothing:
  // ZeroMQ signals that descriptor by edges, and only after such a read.
  for (bool first = true;; first = false) {
    if (!first) {
      now = detail::clock::now();
      auto until = beat.next_deadline();
      if (deadline) until = std::min(until, *deadline);
      pollfd fds[] = {{mine.fd, POLLIN, 0}, {closing_signal.fd(), POLLIN, 0}, {mine.watch->fd(), POLLIN, 0}};
      detail::poll_fds(fds, 3, detail::ms_until(until, now));
      if (fds[1].revents & POLLIN) throw closed_error(where() + ": the client was closed");
      if ((fds[2].revents & POLLIN) && mine.watch->read()) throw refused_here();
    }
    while (detail::try_recv(mine.socket, frames))
      if (auto result = take()) return std::move(*result);
    now = detail::clock::now();
    if (deadline && now >= *deadline) throw timeout_error(detail::no_result_within(where(), *limit));
    if (beat.lost(now))
      throw lost_remote_error(where() + ": lost remote after " + std::to_string(2 * opts.heartbeat.count()) +
                              " ms without a heartbeat");
    if (beat.send_due(now)) {
      send_body(mine.socket, encode_event_packed({mine.ids.next(), id}, "_zpc_hb", detail::heartbeat_args().span()));
      beat.sent(now);
    }
  }
}

}  // namespace rpc::detail
