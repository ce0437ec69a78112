// rpc::server as a worker of rpc-broker (docs/broker.md): a DEALER per broker, over which the broker relays its
// clients' events as [CLIENT, "", BODY] and the server answers the same way. Each of the broker's clients is an
// identity of its own here (via_broker()), with its own bounds, so the server treats it as it treats a client
// of its ROUTER. Commands (READY, HEARTBEAT, DRAIN, BYE; RESET from the broker) begin with an empty frame.
#include <rpc/curve.hpp>
#include <rpc/server.hpp>

#include "broker_wire.hpp"
#include "server_impl.hpp"
#include "zmq_util.hpp"

namespace rpc {

namespace {
// No ZeroMQ routing id begins with a zero byte unless ZeroMQ made it, and those are 5 bytes long; a link's
// identity begins with "duct:". So no other client can be taken for a broker's.
constexpr std::string_view tag("\0broker:", 8);
}  // namespace

std::string server::impl::via_broker(std::size_t broker, std::string_view client) {
  std::string id(tag);
  id += static_cast<char>(broker);
  id += client;
  return id;
}

std::optional<std::pair<std::size_t, std::string_view>> server::impl::broker_of(std::string_view identity) noexcept {
  if (identity.size() <= tag.size() + 1 || !identity.starts_with(tag)) return std::nullopt;
  return std::pair{static_cast<std::size_t>(static_cast<unsigned char>(identity[tag.size()])), identity.substr(tag.size() + 1)};
}

void server::impl::connect_broker(std::string_view endpoint, const std::string& broker_key) {
  const std::string where(endpoint);
  if (running) throw error("connect " + where + ": the server is already running");
  if (brokers.size() >= 255) throw error("connect " + where + ": a server is a worker of 255 brokers at most");
  if (!broker_key.empty() && !is_curve_key(broker_key))
    throw error("connect " + where + ": the broker's key is not a Z85 key of 40 characters");
  if (!broker_key.empty() && opts.curve_secret_key.empty())
    throw error("connect " + where + ": CURVE to a broker needs the server's own key (server_options::curve_secret_key)");
  if (!endpoint.starts_with("tcp://") && !endpoint.starts_with("ipc://"))
    throw error("connect " + where + ": a broker's backend is tcp://HOST:PORT or ipc://PATH");
  detail::check_endpoint(endpoint);
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(opts.max_message_size));
  dealer.set(zmq::sockopt::sndhwm, 0);  // bounded by the protocol, as the ROUTER (server.cpp)
  if (!broker_key.empty()) {
    dealer.set(zmq::sockopt::curve_serverkey, broker_key);
    dealer.set(zmq::sockopt::curve_publickey, curve_public_key(opts.curve_secret_key));
    dealer.set(zmq::sockopt::curve_secretkey, opts.curve_secret_key);
  }
  try {
    detail::retry_eintr([&] { dealer.connect(where); });
  } catch (const zmq::error_t& e) {
    throw error("connect " + where + ": " + e.what());
  }
  if (brokers.empty()) jobs.set_prefix(detail::make_token_prefix());  // so that a job's token finds this worker
  brokers.push_back({where, std::move(dealer)});
}

void server::impl::tell_brokers(std::string_view command, std::span<const std::byte> payload) {
  for (broker_conn& b : brokers) {
    try {
      detail::send_part(b.dealer, zmq::const_buffer(), zmq::send_flags::sndmore);
      detail::send_part(b.dealer, zmq::buffer(command), payload.empty() ? zmq::send_flags::none : zmq::send_flags::sndmore);
      if (!payload.empty()) detail::send_part(b.dealer, zmq::buffer(payload.data(), payload.size()), zmq::send_flags::none);
    } catch (const zmq::error_t&) {
      ++dropped;
    }
  }
}

bool server::impl::receive_brokers(std::vector<std::pair<std::string, zmq::message_t>>& arrived,
                                   std::vector<zmq::message_t>& frames) {
  bool full = false;
  for (std::size_t i = 0; i < brokers.size(); ++i) {
    int n = 0;
    for (; n < 1000 && detail::try_recv(brokers[i].dealer, frames); ++n) {
      if (frames.size() == 3 && frames[0].size() != 0 && frames[1].size() == 0 &&
          detail::valid_client(frames[0].to_string_view())) {
        arrived.emplace_back(via_broker(i, frames[0].to_string_view()), std::move(frames[2]));
      } else if (frames.size() >= 2 && frames[0].size() == 0 && frames[1].to_string_view() == detail::cmd_reset) {
        // The broker does not know us (it restarted, or took us for dead): announce ourselves again.
        try {
          detail::send_part(brokers[i].dealer, zmq::const_buffer(), zmq::send_flags::sndmore);
          detail::send_part(brokers[i].dealer, zmq::buffer(detail::cmd_ready), zmq::send_flags::sndmore);
          detail::send_part(brokers[i].dealer, zmq::buffer(ready.data(), ready.size()), zmq::send_flags::none);
          if (mode != detail::serving_mode::serving) {
            detail::send_part(brokers[i].dealer, zmq::const_buffer(), zmq::send_flags::sndmore);
            detail::send_part(brokers[i].dealer, zmq::buffer(detail::cmd_drain), zmq::send_flags::none);
          }
        } catch (const zmq::error_t&) {
          ++dropped;
        }
      } else {
        ++dropped;
      }
    }
    full = full || n == 1000;
  }
  return full;
}

bool server::impl::send_via_broker(const std::string& identity, std::span<const std::byte> body) {
  auto b = broker_of(identity);
  if (!b) return false;
  if (b->first >= brokers.size()) {
    ++dropped;
    return true;
  }
  zmq::socket_t& dealer = brokers[b->first].dealer;
  try {
    detail::send_part(dealer, zmq::buffer(b->second), zmq::send_flags::sndmore);
    detail::send_part(dealer, zmq::const_buffer(), zmq::send_flags::sndmore);
    detail::send_part(dealer, zmq::buffer(body.data(), body.size()), zmq::send_flags::none);
  } catch (const zmq::error_t&) {
    ++dropped;
  }
  return true;
}

bool server::impl::brokers_have_input() {
  for (broker_conn& b : brokers)
    if (detail::has_input(b.dealer)) return true;
  return false;
}

}  // namespace rpc
